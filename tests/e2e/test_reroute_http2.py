"""(Written by the third adversarial review of 2026-12-01; every case held.) The route-change check and sanitizing over HTTP/2 (curl --http2-prior-knowledge).

Same scenarios as test_reroute.py (one instance, and per-phase instances both ways), but the
client speaks HTTP/2 cleartext with prior knowledge (Envoy's codec AUTO takes it).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from jwtmint import claims, mint
from support import ISSUER, MISSING, bearer
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
    """GET over HTTP/2; ``headers`` a dict, or a list of ``"name: value"`` lines (repeatable)."""
    lines = headers if isinstance(headers, list) else [f"{k}: {v}" for k, v in (headers or {}).items()]
    cmd = ["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "-", "--max-time", "10",
           "-H", "host: www.example.com"]
    for line in lines:
        cmd += ["-H", line]
    cmd.append(f"http://127.0.0.1:{proxy.port}{path}")
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8", "replace")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0].startswith("HTTP/2"), lines[0]
    status = int(lines[0].split()[1])
    hdrs = [(k.strip().lower(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:])]
    return H2(status, hdrs, body)


def echo_header(r, name):
    data = r.echo()
    return {k.lower(): v for k, v in data["headers"].items()}.get(name.lower(), [])


def test_h2_claim_header_moving_the_request_in_one_instance_is_refused(envoy):
    cfg, routes = rr.claim_routed()
    proxy = envoy(cfg, routes=routes)
    no_scope = mint(rr.KEY, claims(iss=ISSUER, sub="eve", org="internal"))
    rr.refused(h2get(proxy, "/svc/x", bearer(no_scope)))
    outside = mint(rr.KEY, claims(iss=ISSUER, sub="bob", org="sales"))
    r = h2get(proxy, "/svc/x", bearer(outside))
    assert echo_header(r, "x-route") == ["default"] and echo_header(r, "x-org") == ["sales"]


def test_h2_spoofed_header_removed_moving_the_request_in_one_instance_is_refused(envoy):
    lax, strict, routes = rr.lax_and_strict()
    proxy = envoy(rr.policies(lax, strict), routes=routes)
    r = h2get(proxy, "/p/x")
    assert (r.status, r.body) == (401, MISSING), r
    rr.refused(h2get(proxy, "/p/x", {"x-user": "anyone"}))


@pytest.mark.parametrize("lax_phase,strict_phase", [("preAuthz", "postAuthz"), ("postAuthz", "preAuthz")])
def test_h2_per_phase_a_stripped_spoofed_header_cannot_reach_the_other_phases_route(envoy, lax_phase, strict_phase):
    """The lax policy's instance strips x-user, the request falls to the strict route, which the
    other phase's instance never saw: refused, whichever phase each policy is of."""
    lax, strict, routes = rr.lax_and_strict(lax_phase, strict_phase)
    proxy = rr.per_phase(envoy, [lax, strict], routes)
    r = h2get(proxy, "/p/x")
    assert (r.status, r.body) == (401, MISSING), r
    rr.refused(h2get(proxy, "/p/x", {"x-user": "anyone"}))


def test_h2_per_phase_claim_routing_onto_a_post_authz_route_cannot_skip_its_scopes(envoy):
    cfg, routes = rr.claim_routed()
    default, internal = cfg["policies"]
    proxy = rr.per_phase(envoy, [rr.with_phase_resource(default, "preAuthz"),
                                 rr.with_phase_resource(internal, "postAuthz")], routes)
    no_scope = mint(rr.KEY, claims(iss=ISSUER, sub="eve", org="internal"))
    r = h2get(proxy, "/svc/x", {**bearer(no_scope), "x-org": "internal"})
    assert (r.status, r.body) == (403, "Jwt scopes are not allowed"), r
    rr.refused(h2get(proxy, "/svc/x", bearer(no_scope)))
    outside = mint(rr.KEY, claims(iss=ISSUER, sub="bob", org="sales"))
    assert echo_header(h2get(proxy, "/svc/x", bearer(outside)), "x-route") == ["default"]


def test_h2_repeated_token_headers_and_cookie_fields_must_all_be_valid(envoy):
    """HTTP/2 sends repeated fields separately (no HTTP/1 comma join, and cookie crumbs)."""
    from jwtmint import shared_key, tamper_signature
    from support import provider, spec
    key = shared_key("ES256", kid="r3-h2")
    good = mint(key, claims(iss=ISSUER, sub="alice"))
    forged = tamper_signature(mint(key, claims(iss=ISSUER, sub="admin")))
    proxy = envoy(spec(provider(key, issuer=ISSUER, keepToken=True,
                                tokenSource={"headers": [{"name": "x-jwt"}], "cookies": ["jwt"]})))

    for hdrs in ([f"x-jwt: {good}", f"x-jwt: {forged}"], [f"x-jwt: {forged}", f"x-jwt: {good}"],
                 [f"cookie: jwt={good}", f"cookie: jwt={forged}"], ["cookie: a=1", f"cookie: jwt={forged}", f"x-jwt: {good}"]):
        r = h2get(proxy, "/get", hdrs)
        assert r.status == 401, (hdrs, r)
    r = h2get(proxy, "/get", [f"x-jwt: {good}", "cookie: a=1", f"cookie: jwt={good}"])
    assert r.status == 200, r
