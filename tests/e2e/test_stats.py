"""The filter's Envoy counters (README "Stats") move as requests are decided: allowed, denied by
family, and the verified-token cache's hits and misses, as the admin ``/stats`` shows them."""

from __future__ import annotations

import harness
import jwtmint
from support import bearer, provider, spec

PREFIX = "wasmcustom.jwt_policy."


def counters(envoy: harness.Envoy) -> dict[str, int]:
    return {k[len(PREFIX):]: v for k, v in envoy.stats(PREFIX).items()}


def test_counters_move_with_decisions_and_the_token_cache():
    key = jwtmint.generate("RS256", kid="stats")
    with harness.boot(spec(provider(key))) as envoy:
        before = counters(envoy)
        token = jwtmint.mint(key)
        for _ in range(3):
            assert envoy.get("/get", headers=bearer(token)).status == 200
        assert envoy.get("/get").status == 401
        assert envoy.get("/get", headers=bearer(jwtmint.tamper_signature(token))).status == 401
        expired = jwtmint.mint(key, jwtmint.claims(exp=jwtmint.now() - 3600))
        assert envoy.get("/get", headers=bearer(expired)).status == 401
        after = counters(envoy)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["allowed"] == 3
    assert delta["denied"] == 3
    assert delta["denied.missing"] == 1
    assert delta["denied.signature"] == 1
    assert delta["denied.time"] == 1
    assert delta["token_cache_miss"] == 2, "the first good token and the tampered one were checked"
    assert delta["token_cache_hit"] == 2, "the repeated token skipped its signature check"
