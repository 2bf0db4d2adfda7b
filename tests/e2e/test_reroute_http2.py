"""(Written by the third adversarial review of 2026-12-01; every case held.) the route-change check and sanitizing over HTTP/2 (curl --http2-prior-knowledge).

Same scenarios as test_reroute.py (one instance, and per-phase instances both ways), but the
client speaks HTTP/2 cleartext with prior knowledge (Envoy's codec AUTO takes it).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from jwtmint import claims, mint
from support import ISSUER, MISSING
import test_reroute as rr

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


class H2:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def echo(self):
        assert self.status == 200, self
        return json.loads(self.body)

    def header(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def __repr__(self):
        return f"H2({self.status}, {self.headers!r}, {self.body[:300]!r})"


def h2get(proxy, path, headers=None):
    cmd = ["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "-", "--max-time", "10",
           "-H", "host: www.example.com"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://127.0.0.1:{proxy.port}{path}")
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8", "replace")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0].startswith("HTTP/2"), lines[0]
    status = int(lines[0].split()[1])
    hdrs = [(k.strip().lower(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:])]
    return H2(status, hdrs, body)


def refused(r):
    assert (r.status, r.body) == rr.MOVED, r


def echo_header(r, name):
    data = r.echo()
    return {k.lower(): v for k, v in data["headers"].items()}.get(name.lower(), [])


def bearer(t):
    return {"authorization": f"Bearer {t}"}


def test_h2_claim_header_moving_the_request_in_one_instance_is_refused(envoy):
    cfg, routes = rr.claim_routed()
    proxy = envoy(cfg, routes=routes)
    no_scope = mint(rr.KEY, claims(iss=ISSUER, sub="eve", org="internal"))
    refused(h2get(proxy, "/svc/x", bearer(no_scope)))
    outside = mint(rr.KEY, claims(iss=ISSUER, sub="bob", org="sales"))
    r = h2get(proxy, "/svc/x", bearer(outside))
    assert echo_header(r, "x-route") == ["default"] and echo_header(r, "x-org") == ["sales"]


def test_h2_spoofed_header_removed_moving_the_request_in_one_instance_is_refused(envoy):
    lax, strict, routes = rr.lax_and_strict()
    proxy = envoy(rr.policies(lax, strict), routes=routes)
    r = h2get(proxy, "/p/x")
    assert (r.status, r.body) == (401, MISSING), r
    refused(h2get(proxy, "/p/x", {"x-user": "anyone"}))


def test_h2_per_phase_spoofed_header_stripped_in_pre_authz_cannot_reach_a_post_authz_route(envoy):
    lax, strict, routes = rr.lax_and_strict("preAuthz", "postAuthz")
    proxy = rr.per_phase(envoy, [lax, strict], routes)
    r = h2get(proxy, "/p/x")
    assert (r.status, r.body) == (401, MISSING), r
    refused(h2get(proxy, "/p/x", {"x-user": "anyone"}))


def test_h2_per_phase_claim_routing_onto_a_post_authz_route_cannot_skip_its_scopes(envoy):
    cfg, routes = rr.claim_routed()
    default, internal = cfg["policies"]
    proxy = rr.per_phase(envoy, [rr.with_phase_resource(default, "preAuthz"),
                                 rr.with_phase_resource(internal, "postAuthz")], routes)
    no_scope = mint(rr.KEY, claims(iss=ISSUER, sub="eve", org="internal"))
    r = h2get(proxy, "/svc/x", {**bearer(no_scope), "x-org": "internal"})
    assert (r.status, r.body) == (403, "Jwt scopes are not allowed"), r
    refused(h2get(proxy, "/svc/x", bearer(no_scope)))
    outside = mint(rr.KEY, claims(iss=ISSUER, sub="bob", org="sales"))
    assert echo_header(h2get(proxy, "/svc/x", bearer(outside)), "x-route") == ["default"]


def test_h2_per_phase_reversed_post_lax_pre_strict(envoy):
    """The lax policy in postAuthz, the strict one in preAuthz: the preAuthz instance enforces
    strict first on the lax route? No: the lax route is governed by lax (postAuthz); the
    postAuthz instance strips x-user and the request falls to strict's route."""
    lax, strict, routes = rr.lax_and_strict("postAuthz", "preAuthz")
    proxy = rr.per_phase(envoy, [lax, strict], routes)
    r = h2get(proxy, "/p/x")
    assert (r.status, r.body) == (401, MISSING), r
    refused(h2get(proxy, "/p/x", {"x-user": "anyone"}))


def test_h2_repeated_token_headers_and_cookie_fields_must_all_be_valid(envoy):
    """HTTP/2 sends repeated fields separately (no HTTP/1 comma join, and cookie crumbs)."""
    from jwtmint import shared_key, tamper_signature
    from support import provider, spec
    key = shared_key("ES256", kid="r3-h2")
    good = mint(key, claims(iss=ISSUER, sub="alice"))
    forged = tamper_signature(mint(key, claims(iss=ISSUER, sub="admin")))
    proxy = envoy(spec(provider(key, issuer=ISSUER, keepToken=True,
                                tokenSource={"headers": [{"name": "x-jwt"}], "cookies": ["jwt"]})))

    def run(extra):
        cmd = ["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"]
        for h in extra:
            cmd += ["-H", h]
        cmd.append(f"http://127.0.0.1:{proxy.port}/get")
        out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
        body, _, code = out.rpartition("\n")
        return int(code), body

    for hdrs in ([f"x-jwt: {good}", f"x-jwt: {forged}"], [f"x-jwt: {forged}", f"x-jwt: {good}"],
                 [f"cookie: jwt={good}", f"cookie: jwt={forged}"], [f"cookie: a=1", f"cookie: jwt={forged}", f"x-jwt: {good}"]):
        code, body = run(hdrs)
        assert code == 401, (hdrs, code, body[:300])
    code, body = run([f"x-jwt: {good}", f"cookie: a=1", f"cookie: jwt={good}"])
    assert code == 200, body
