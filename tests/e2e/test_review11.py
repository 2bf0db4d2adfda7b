"""Review 11 (adversarial review of the review-10 fixes): a claim header the router acts on.

Review 10's fix refuses claim/payload headers that frame the message, because whoever chooses the
claim's value (often the user: an email, a name) would decide how the upstream reads the body.
Envoy-internal request headers are the same shape one layer down: the connection manager strips a
client's `x-envoy-*` before the filters run, so what the filter writes there is trusted by the
router as Envoy's own configuration.
"""

from __future__ import annotations

from jwtmint import claims, mint, shared_key
from support import ISSUER, provider, spec

KEY = shared_key("EdDSA", kid="review11-1")


def test_review11_a_claim_sets_the_routers_upstream_timeout(envoy):
    """Failing: the config is accepted and the router takes the token's value as its timeout."""
    proxy = envoy(spec(provider(KEY, issuer=ISSUER, claimsToHeaders=[
        {"claim": "name", "header": "x-envoy-upstream-rq-timeout-ms"}])))
    token = mint(KEY, claims(iss=ISSUER, sub="alice", name="987654"))
    resp = proxy.get("/get", headers={"Authorization": f"Bearer {token}"})
    echo = resp.echo() if resp.status == 200 else None
    seen = echo.header("x-envoy-expected-rq-timeout-ms") if echo else None
    assert seen != ["987654"], (
        f"the router used the token's claim as its upstream timeout: upstream saw "
        f"x-envoy-expected-rq-timeout-ms {seen}")


def test_review11_held_control_a_clients_own_x_envoy_header_is_not_the_routers(envoy):
    """Control: the same header sent by the client is stripped by the connection manager (external
    request), so only the filter's write reaches the router."""
    proxy = envoy(spec(provider(KEY, issuer=ISSUER)))
    token = mint(KEY, claims(iss=ISSUER, sub="alice"))
    resp = proxy.get("/get", headers={"Authorization": f"Bearer {token}",
                                      "x-envoy-upstream-rq-timeout-ms": "555"})
    echo = resp.echo()
    assert resp.status == 200
    assert echo.header("x-envoy-expected-rq-timeout-ms") != ["555"], echo
