"""Hostile requests: the filter answers 4xx and Envoy keeps serving (no panic, no dead VM).

Each test boots its own Envoy (``boot``), so a crash cannot leak into other tests.
"""

from __future__ import annotations

import base64
import json
import os

import pytest

import harness
from jwtmint import b64json, b64url, claims, mint, raw_token, shared_key
from support import ISSUER, assert_passed, bearer, provider, spec

KEY = shared_key("RS256", kid="robust-1")
TOKEN = mint(KEY, claims(iss=ISSUER, sub="alice", org="solo.io"))
POLICY = spec(provider(KEY, issuer=ISSUER, claimsToHeaders=[{"claim": "org", "header": "x-org"}],
                       tokenSource={"headers": [{"name": "Authorization", "prefix": "Bearer "},
                                                {"name": "X-Auth", "prefix": "Bearer "}],
                                    "queryParams": ["access_token"]}))


def assert_still_serving(envoy: harness.Envoy) -> None:
    assert envoy.alive(), envoy.log_text()[-3000:]
    assert_passed(envoy.get("/get", headers=bearer(TOKEN)))
    assert "panicked" not in envoy.log_text()


def assert_4xx(resp) -> None:
    assert 400 <= resp.status < 500, resp


@pytest.fixture
def proxy(upstream):
    with harness.boot(POLICY, name="robust") as envoy:
        yield envoy


@pytest.mark.parametrize("value", [
    b"Bearer \xff\xfe\xfd",
    b"Bearer eyJ\xc3\x28.eyJ.sig",
    b"Bearer " + TOKEN.encode()[:40] + b"\x80" + TOKEN.encode()[40:],
    b"\xff Bearer x",
], ids=["invalid-utf8", "bad-utf8-in-segment", "high-byte-inside-token", "before-prefix"])
def test_non_utf8_token_header(proxy, value):
    resp = proxy.get("/get", headers=[("Authorization", value)])
    assert_4xx(resp)
    assert_still_serving(proxy)


def test_non_utf8_in_an_unrelated_header_does_not_matter(proxy):
    echo = assert_passed(proxy.get("/get", headers=[*bearer(TOKEN).items(), ("X-Other", b"caf\xe9 \xff")]))
    assert echo.header("X-Org") == ["solo.io"]
    assert_still_serving(proxy)


def test_non_utf8_spoofed_claim_header_is_replaced(proxy):
    echo = assert_passed(proxy.get("/get", headers=[*bearer(TOKEN).items(), ("X-Org", b"\xff\xfe")]))
    assert echo.header("X-Org") == ["solo.io"]


def test_percent_encoded_garbage_in_query_token(proxy):
    assert_4xx(proxy.get("/get?access_token=%FF%FE%00%0A.%C3%28.x"))
    assert_still_serving(proxy)


def garbage_token(size: int) -> str:
    payload = b64url(os.urandom(size * 3 // 4))
    return raw_token(b64json({"alg": "RS256", "typ": "JWT"}), payload, "c2ln")


def test_60kb_token_reaches_the_filter_with_a_raised_header_limit(upstream):
    with harness.boot(POLICY, name="big-headers", max_request_headers_kb=96) as envoy:
        token = garbage_token(60 * 1024)
        assert len(token) > 60 * 1024
        resp = envoy.get("/get", headers=bearer(token))
        assert resp.status == 401, resp  # the filter's answer, not Envoy's 431
        assert_still_serving(envoy)
        resp = envoy.get("/get", headers={"X-Auth": f"Bearer {token}"})
        assert resp.status == 401, resp
        assert_still_serving(envoy)


def test_60kb_token_with_the_default_header_limit(proxy):
    resp = proxy.get("/get", headers=bearer(garbage_token(60 * 1024)))
    assert_4xx(resp)  # Envoy's own 431 before the filter runs
    assert_still_serving(proxy)


def test_deeply_nested_json_payload(proxy):
    deep = "[" * 100_000 + "]" * 100_000
    token = raw_token(b64json({"alg": "RS256"}), b64url(deep), "c2ln")
    assert_4xx(proxy.get("/get", headers=bearer(token)))
    deep_object = '{"a":' * 20_000 + "1" + "}" * 20_000
    token = raw_token(b64json({"alg": "RS256"}), b64url(deep_object), "c2ln")
    assert_4xx(proxy.get("/get", headers=bearer(token)))
    assert_still_serving(proxy)


def test_deeply_nested_json_header(proxy):
    deep = '{"alg":"RS256","x":' + "[" * 50_000 + "]" * 50_000 + "}"
    assert_4xx(proxy.get("/get", headers=bearer(raw_token(b64url(deep), TOKEN.split(".")[1], "c2ln"))))
    assert_still_serving(proxy)


@pytest.mark.parametrize("payload", [
    {"iss": ISSUER, "exp": "tomorrow"},
    {"iss": ISSUER, "exp": 1e400},
    {"iss": ISSUER, "exp": -(2**63)},
    {"iss": ISSUER, "nbf": 2**64 + 5},
    {"iss": ISSUER, "exp": None, "nbf": [1]},
    {"iss": 42},
    {"iss": ISSUER, "aud": {"x": 1}},
], ids=["exp-string", "exp-huge-float", "exp-min-i64", "nbf-over-u64", "nbf-list", "iss-number", "aud-object"])
def test_odd_claim_types(proxy, payload):
    """Whatever the reason named, it is a 4xx (the signature is bogus anyway) and the VM lives."""
    body = json.dumps(payload).replace("Infinity", "1e400")
    token = raw_token(b64json({"alg": "RS256", "typ": "JWT"}), b64url(body), "c2ln")
    resp = proxy.get("/get", headers=bearer(token))
    assert 400 <= resp.status < 500, resp
    assert_still_serving(proxy)


@pytest.mark.parametrize("token", [
    "." * 5000,
    "a" * 20_000,
    "..." + "A" * 1000,
    raw_token("", "", ""),
    raw_token(b64url(b"\x00" * 100), b64url(b"\xff" * 100), ""),
    raw_token(b64json({"alg": "ES512", "kid": "\u0000" * 10}), b64json(claims(iss=ISSUER)), "A" * 2000),
    raw_token(b64json({"alg": "RS256", "kid": 7}), b64json(claims(iss=ISSUER)), "A"),
    raw_token(b64json({"alg": "HS256"}), b64json(claims(iss=ISSUER)), base64.urlsafe_b64encode(b"x" * 9000).decode()),
], ids=["dots", "long-opaque", "leading-dots", "empty-sections", "binary-sections", "nul-kid-long-sig",
        "kid-number", "long-hmac-sig"])
def test_malformed_tokens(proxy, token):
    assert_4xx(proxy.get("/get", headers=bearer(token)))
    assert_still_serving(proxy)


def test_many_requests_with_bad_tokens_then_good(proxy):
    for i in range(50):
        assert_4xx(proxy.get("/get", headers=bearer(f"junk{i}.junk.junk")))
    assert_still_serving(proxy)


def _raw_http1(port: int, request: bytes) -> bytes:
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except socket.timeout:
            pass
    return out


def test_a_non_utf8_header_name_does_not_kill_the_vm(upstream):
    """The proxy-wasm SDK (0.2.5, `deserialize_map_bytes`) turns every header name into a String with
    `String::from_utf8(key).unwrap()`: if Envoy hands the filter a header name that is not UTF-8,
    the VM panics and every later request is a 5xx. Review 10 found it holds: Envoy 1.40's HTTP/1 codec
    answers 400 to each before any filter runs, and its HTTP/2 codec resets the stream (a filter earlier in the chain
    that adds such a name is not covered)."""
    with harness.boot(POLICY, name="header-name") as envoy:
        port = envoy.port
        for name in (b"X-\xff\xfe", b"x-caf\xe9", b"\x80"):
            reply = _raw_http1(port, b"GET /get HTTP/1.1\r\nHost: api.example.com\r\n" + name
                               + b": 1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\nConnection: close\r\n\r\n")
            assert reply.split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK"), reply[:300]
        assert_still_serving(envoy)
        # HTTP/2 (curl, prior knowledge): the same names.
        import shutil
        import subprocess
        if shutil.which("curl"):
            for name in (b"x-\xff\xfe", b"x-caf\xe9"):
                out = subprocess.run([b"curl", b"-sS", b"--http2-prior-knowledge", b"-o", b"/dev/null", b"-w",
                                      b"%{http_code}", b"--max-time", b"5", b"-H", name + b": 1", b"-H",
                                      b"Authorization: Bearer " + TOKEN.encode(),
                                      f"http://127.0.0.1:{port}/get".encode()], capture_output=True)
                assert out.stdout in (b"000", b"400"), out  # Envoy resets the stream
            assert_still_serving(envoy)
