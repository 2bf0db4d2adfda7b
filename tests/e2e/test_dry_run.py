"""Dry run per policy: `metadata.annotations["jwt-policy/dry-run"]: "true"` decides every request
normally but never denies. A would-be denial lets the request go on unchanged (no claim headers
added, the token kept; client-sent claim headers still removed), is counted under
`jwt_policy.dry_run.denied[.<family>]` and logged at info with the reason and the policy's name.
Removing the mark turns the same policy on."""

from __future__ import annotations

import copy

import harness
from jwtmint import claims, mint, shared_key, tamper_signature
from support import ISSUER, MISSING, VERIFICATION_FAILS, assert_denied, assert_passed, bearer, provider

KEY = shared_key("ES256", kid="dry-run")
PREFIX = "wasmcustom.jwt_policy."


def resource(dry_run: bool | None) -> dict:
    meta: dict = {"name": "rollout", "namespace": "httpbin"}
    if dry_run is not None:
        meta["annotations"] = {"jwt-policy/dry-run": "true" if dry_run else "false"}
    return {"apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy", "metadata": meta,
            "spec": {"config": {"providers": {"idp": provider(
                KEY, issuer=ISSUER, claimsToHeaders=[{"claim": "sub", "header": "x-sub"}])}}}}


def counters(envoy: harness.Envoy) -> dict[str, int]:
    return {k[len(PREFIX):]: v for k, v in envoy.stats(PREFIX).items()}


def test_a_dry_run_policy_lets_a_forged_token_through_counted_and_logged():
    good = mint(KEY, claims(iss=ISSUER, sub="alice"))
    forged = tamper_signature(good)
    with harness.boot(resource(True), name="dry-run") as envoy:
        before = counters(envoy)
        echo = assert_passed(envoy.get("/get", headers={**bearer(forged), "X-Sub": "spoofed"}))
        assert echo.header("Authorization") == [f"Bearer {forged}"], "the token is kept"
        assert not echo.has("X-Sub"), "no claim header is added, the client's is removed"
        assert_passed(envoy.get("/get"))                      # missing: would be 401 too
        echo = assert_passed(envoy.get("/get", headers=bearer(good)))
        assert echo.header("X-Sub") == ["alice"] and not echo.has("Authorization"), "valid: as enforced"
        after = counters(envoy)
        log = envoy.log_text()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["dry_run.denied"] == 2
    assert delta["dry_run.denied.signature"] == 1 and delta["dry_run.denied.missing"] == 1
    assert delta.get("denied", 0) == 0 and delta["allowed"] == 1
    assert f"httpbin/rollout (dry run) would have denied a request: {VERIFICATION_FAILS}" in log
    assert f"httpbin/rollout (dry run) would have denied a request: {MISSING}" in log


def test_the_same_policy_denies_once_the_mark_is_removed(envoy):
    forged = tamper_signature(mint(KEY, claims(iss=ISSUER, sub="alice")))
    for mark in (None, False):
        proxy = envoy(resource(mark))
        assert_denied(proxy.get("/get", headers=bearer(forged)), VERIFICATION_FAILS)
        assert_denied(proxy.get("/get"), MISSING)


def test_a_bad_mark_is_refused():
    bad = copy.deepcopy(resource(True))
    bad["metadata"]["annotations"]["jwt-policy/dry-run"] = "yes"
    code, log = harness.run_until_exit(bad, name="dry-run-bad")
    assert code == 1, log[-2000:]
    assert 'metadata.annotations["jwt-policy/dry-run"]: expected "true" or "false"' in log


def test_an_older_dry_run_policy_never_switches_off_a_younger_enforcing_one():
    """Rolling out a new policy as a dry run over routes an enforcing one already protects: the
    oldest selecting policy governs, so the older dry run once decided alone and the requests
    it would deny went through (review 6: an unenforced window). A dry-run policy never
    displaces an enforcing one: the enforcing policy decides, the dry run is decided beside it
    and only counted and logged (as Istio's dry-run AuthorizationPolicy)."""
    other = shared_key("ES256", kid="enforced")
    rollout = resource(True)
    rollout["metadata"]["creationTimestamp"] = "2023-01-01T00:00:00Z"
    enforced = copy.deepcopy(resource(None))
    enforced["metadata"].update(name="enforced", creationTimestamp="2024-01-01T00:00:00Z")
    enforced["spec"]["config"]["providers"] = {"idp2": provider(
        other, issuer=ISSUER, claimsToHeaders=[{"claim": "sub", "header": "x-enforced-sub"}])}
    ours = mint(other, claims(iss=ISSUER, sub="bob"))
    with harness.boot({"policies": [enforced, rollout]}, name="dry-run-beside") as envoy:
        before = counters(envoy)
        assert_denied(envoy.get("/get"), MISSING)                               # enforced
        assert_denied(envoy.get("/get", headers=bearer(tamper_signature(ours))), VERIFICATION_FAILS)
        echo = assert_passed(envoy.get("/get", headers={**bearer(ours), "X-Sub": "spoofed"}))
        assert echo.header("X-Enforced-Sub") == ["bob"], "the enforcing policy's claim headers"
        assert not echo.has("X-Sub"), "the dry run's claim header is still not the client's"
        assert echo.header("Authorization") == [], "the enforcing policy strips its token"
        after = counters(envoy)
        log = envoy.log_text()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["denied"] == 2 and delta["allowed"] == 1
    # The dry run is decided beside the request the enforcing policy let through (a denied one
    # costs no second decision): its key does not verify bob's token.
    assert delta["dry_run.denied"] == 1, delta
    assert delta.get("dry_run.denied.missing", 0) == 0
    assert f"httpbin/rollout (dry run) would have denied a request: {VERIFICATION_FAILS}" in log
