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
