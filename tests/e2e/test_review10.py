"""Review 10 (independent adversarial review, 2026-12-07): failing tests for what it found.

Cost is compared as in test_fail_closed.py: the filter's own cache counters (deterministic), and
the ratio of median latencies of interleaved rounds, never an absolute time.
"""
from __future__ import annotations

from jwtmint import claims, mint, now, shared_key, tamper_signature
from support import ISSUER, assert_passed, provider, spec

from test_fail_closed import DIRECT, median_ms

P521 = shared_key("ES512", kid="review10-521")
PREFIX = "wasmcustom.jwt_policy."


def test_tokens_in_the_skew_window_are_not_verified_again_on_every_request(envoy):
    """A token stays valid for clockSkewSeconds (60) after exp, but the cache drops it at exp and
    caches it again after each verification: eight such tokens of one user (all valid, so checking
    never stops early) cost eight P-521 verifications on every request. Expected: like eight live
    tokens, or one spelling repeated eight ways (review 4), a repeated request costs no verification
    and less than two requests with one forged token each."""
    proxy = envoy(spec(provider(P521, issuer=ISSUER)), routes=DIRECT)
    t = now()
    tokens = [mint(P521, claims(iss=ISSUER, sub="mallory", jti=f"r10-{i}", iat=t - 300, exp=t - 5))
              for i in range(8)]
    eight = "/get?" + "&".join(f"access_token={tok}" for tok in tokens)
    assert proxy.get(eight).status == 200

    def misses() -> int:
        return proxy.stats(PREFIX).get(PREFIX + "token_cache_miss", 0)

    before = misses()
    assert proxy.get(eight).status == 200
    paid = misses() - before
    one_forged = {"Authorization": f"Bearer {tamper_signature(mint(P521, claims(iss=ISSUER, sub='x')))}"}
    live = "/get?" + "&".join(
        f"access_token={mint(P521, claims(iss=ISSUER, sub='mallory', jti=f'live-{i}'))}" for i in range(8))
    assert proxy.get(live).status == 200
    forged_ms, eight_ms, live_ms = median_ms(
        [lambda: proxy.get("/get", headers=one_forged), lambda: proxy.get(eight), lambda: proxy.get(live)], rounds=5)
    assert paid == 0 and eight_ms < 2.0 * forged_ms, (
        f"the same request again paid {paid} signature checks; {eight_ms:.2f} ms against "
        f"{forged_ms:.2f} ms for one forged token and {live_ms:.2f} ms for eight live tokens")


def test_in_skew_tokens_pay_the_failed_keys_of_several_providers_too(envoy):
    """Two providers for one issuer (an old key kept beside the new one, no kid): a cached token
    remembers the old key's failure, but an in-skew token is never cached, so each of eight
    pays two P-521 checks: 16 per request."""
    old = shared_key("ES512", kid="review10-521-old")
    proxy = envoy(spec(provider(old, issuer=ISSUER), provider(P521, issuer=ISSUER)), routes=DIRECT)
    t = now()
    eight = "/get?" + "&".join(
        f"access_token={mint(P521, claims(iss=ISSUER, jti=f'r10b-{i}', iat=t - 300, exp=t - 5), kid=None)}"
        for i in range(8))
    assert proxy.get(eight).status == 200
    before = proxy.stats(PREFIX).get(PREFIX + "token_cache_miss", 0)
    assert proxy.get(eight).status == 200
    paid = proxy.stats(PREFIX).get(PREFIX + "token_cache_miss", 0) - before
    assert paid == 0, f"the same request again paid {paid} signature checks"


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
    the VM panics and every later request is a 5xx. HELD: Envoy 1.40's HTTP/1 codec answers 400 to
    each before any filter runs, and its HTTP/2 codec resets the stream (a filter earlier in the chain
    that adds such a name is not covered)."""
    import harness
    from test_robustness import POLICY, TOKEN, assert_still_serving
    with harness.boot(POLICY, name="review10-header-name") as envoy:
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
