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


# Tag extraction for the per-policy and per-provider counters (README "Stats"): Prometheus sees
# `policy` and `provider` labels on names without them.
STATS_TAGS = [
    {"tag_name": "policy", "regex": r"^wasmcustom\.jwt_policy\.policy\.(([^.]+)\.)"},
    {"tag_name": "provider", "regex": r"^wasmcustom\.jwt_policy\.policy\.[^.]+\.provider\.(([^.]+)\.)"},
]


def test_per_policy_and_provider_counters_with_prometheus_labels():
    key = jwtmint.generate("ES256", kid="stats-per-policy")
    other = jwtmint.generate("ES256", kid="stats-other")
    policy = {"apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy",
              "metadata": {"name": "jwt-policy", "namespace": "httpbin"},
              "spec": {"config": {"providers": {"dev.example": provider(key, issuer="https://dev.example"),
                                                "other": provider(other, issuer="https://other.example")}}}}
    bootstrap = harness.render(policy)
    bootstrap["stats_config"] = {"stats_tags": STATS_TAGS}
    with harness.boot(None, bootstrap=bootstrap, name="stats-per-policy") as envoy:
        good = jwtmint.mint(key, jwtmint.claims(iss="https://dev.example"))
        assert envoy.get("/get", headers=bearer(good)).status == 200
        assert envoy.get("/get", headers=bearer(jwtmint.tamper_signature(good))).status == 401
        expired = jwtmint.mint(other, jwtmint.claims(iss="https://other.example", exp=jwtmint.now() - 3600))
        assert envoy.get("/get", headers=bearer(expired)).status == 401
        assert envoy.get("/get").status == 401
        stats = counters(envoy)
        prometheus = envoy.admin("/stats/prometheus")
    p = "policy.httpbin_jwt-policy."
    assert stats[p + "allowed"] == 1 and stats[p + "denied"] == 3
    assert stats[p + "provider.dev_example.denied.signature"] == 1
    assert stats[p + "provider.other.denied.time"] == 1
    assert stats[p + "provider.dev_example.denied.time"] == 0
    # a missing token is no provider's: only the policy's and the totals' counters move
    assert stats["denied.missing"] == 1
    lines = prometheus.splitlines()
    assert 'jwt_policy_policy_allowed{policy="httpbin_jwt-policy"} 1' in lines, prometheus[-3000:]
    assert ('jwt_policy_policy_provider_denied_signature'
            '{policy="httpbin_jwt-policy",provider="dev_example"} 1') in lines, prometheus[-3000:]
