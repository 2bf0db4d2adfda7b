"""Policy selection and the rest of JWTPolicy, through envoy/routes.yaml (several routes and clusters).

Which policy governs a request (route labels, route name, destination cluster; the oldest
selecting policy, whatever its phase or priority; the instance's phase), the policy rules (`claims`, `requiredScopes`), routing on a claim
header (`clearRouteCache`) and `settings.routeLabelsNamespace`.  Every route of routes.yaml adds
`x-route` and `x-cluster` to what it forwards, so the echo shows where a request went.

Most tests boot routes.yaml as shipped (its policies trust the demo key); the others keep its
route table and swap in their own plugin configuration.
"""

from __future__ import annotations

import pytest

import harness
from jwtmint import claims, mint, shared_key
from routing import (DEMO_ISSUER, DEMO_PUBLIC_PEM, HTTPBIN_8000, HTTPBIN_9000, OTHER_NS_8000, demo_key,
                     on_destinations, on_routes, policies, resource, routes, routes_bootstrap,
                     set_request_headers, shipped_config, with_phase)
from support import (ISSUER, MISSING, VERIFICATION_FAILS, assert_denied, assert_passed, bearer,
                     demo_token, provider, spec)

CLAIMS_DENIED = "Jwt claims are not allowed"
SCOPES_DENIED = "Jwt scopes are not allowed"

KEY_A = shared_key("ES256", name="selection-A")
KEY_B = shared_key("ES256", name="selection-B")
LABELLED = {"labels": {"route": "httpbin"}}  # the label of routes /labelled, /org (routes.yaml)


def xauth(token: str) -> dict:
    return {"X-Auth": f"Bearer {token}"}


def demo_mint(**fields) -> str:
    """A token of the demo key (what routes.yaml's policies trust), iss https://dev.example.com."""
    return mint(demo_key(), claims(iss=DEMO_ISSUER, **fields))


def boot_routes(envoy, config=None) -> harness.Envoy:
    """routes.yaml (shared per configuration): as shipped, or with another plugin configuration."""
    return envoy(None, bootstrap=routes_bootstrap(config), name="routes")


def went_to(echo, route: str, cluster: str) -> None:
    assert (echo.header("X-Route"), echo.header("X-Cluster")) == ([route], [cluster]), echo


@pytest.fixture
def shipped(envoy) -> harness.Envoy:
    return boot_routes(envoy)


# --------------------------------------------------------------------------- routes.yaml itself


def test_routes_yaml_trusts_the_demo_public_key():
    """routes.yaml inlines policies/demo-keys/demo-public-key.pem in every provider."""
    pem = DEMO_PUBLIC_PEM.read_text().strip()
    config = shipped_config()
    inlines = [p["local"]["inline"] for pol in config["policies"]
               for p in pol["spec"]["config"]["providers"].values()]
    assert inlines and all(i == pem for i in inlines)


def test_every_route_marks_its_route_and_cluster():
    for route in routes():
        added = {h["header"]["key"]: h["header"]["value"] for h in route["request_headers_to_add"]}
        assert added == {"x-route": route["name"], "x-cluster": route["route"]["cluster"]}, route["name"]


# --------------------------------------------------------------------------- 1. labels


def test_labelled_route_without_token_is_denied(shipped):
    assert_denied(shipped.get("/labelled"), MISSING, path="/labelled")
    assert_denied(shipped.get("/labelled/get?x=1"), MISSING, path="/labelled/get")


def test_labelled_route_with_token_passes_with_claim_headers(shipped):
    resp = shipped.get("/labelled/get", headers={**xauth(demo_token()), "X-Org": "spoofed",
                                                 "X-Email": "spoofed@evil.example"})
    echo = assert_passed(resp)
    went_to(echo, "labelled", "httpbin")
    assert echo.header("X-Org") == ["solo.io"]
    assert echo.header("X-Email") == ["dev1@solo.io"]
    assert not echo.has("X-Auth")
    echo = assert_passed(shipped.get(f"/labelled/get?auth_token={demo_token()}&a=1"))
    assert echo.url == "/labelled/get?a=1" and echo.header("X-Org") == ["solo.io"]


def test_unlabelled_route_is_open_and_untouched(shipped):
    sent = {"X-Org": "spoofed", "X-Email": "spoofed@evil.example", "X-User": "root",
            "X-Auth": "Bearer not-a-token", "Authorization": "Bearer not-a-token-either"}
    echo = assert_passed(shipped.get("/open/get?auth_token=garbage&access_token=junk", headers=sent))
    went_to(echo, "open", "httpbin")
    for name, value in sent.items():
        assert echo.header(name) == [value], name
    assert echo.url == "/open/get?auth_token=garbage&access_token=junk"
    echo = assert_passed(shipped.get("/"))
    went_to(echo, "open", "httpbin")
    assert not echo.has("X-Org") and not echo.has("X-Email")


# --------------------------------------------------------------------------- 2. route name


def test_route_selected_by_name_uses_its_own_token_location(shipped):
    # admin-by-name reads the default Authorization header, not labelled-routes' X-Auth
    assert_denied(shipped.get("/admin"), MISSING, path="/admin")
    assert_denied(shipped.get("/admin", headers=xauth(demo_token())), MISSING, path="/admin")
    echo = assert_passed(shipped.get("/admin/users", headers={**bearer(demo_token()), "X-Org": "client"}))
    went_to(echo, "admin", "httpbin")
    assert echo.header("X-User") == ["dev1"]
    assert echo.header("X-Org") == ["client"]      # not one of this policy's claim headers
    assert not echo.has("X-Email") and not echo.has("Authorization")
    echo = assert_passed(shipped.get(f"/admin?access_token={demo_token()}"))
    assert echo.header("X-User") == ["dev1"] and echo.url == "/admin"


def test_route_selected_by_name_uses_its_own_claims_rule(shipped):
    outsider = demo_mint(sub="bob", org="solo.io", email="bob@example.org")
    resp = shipped.get("/admin", headers=bearer(outsider))
    assert_denied(resp, CLAIMS_DENIED, status=403, path="/admin")
    # the labelled route's policy has no claims rule: the same token passes there
    echo = assert_passed(shipped.get("/labelled", headers=xauth(outsider)))
    assert echo.header("X-Email") == ["bob@example.org"] and not echo.has("X-User")


# --------------------------------------------------------------------------- 3. destinations


def test_istio_destination_selected_by_name_namespace_and_port(shipped):
    assert_denied(shipped.get("/istio/8000"), MISSING, path="/istio/8000")
    echo = assert_passed(shipped.get("/istio/8000", headers={**xauth(demo_token()), "X-User": "root"}))
    went_to(echo, "mesh-8000", HTTPBIN_8000)
    assert echo.header("X-User") == ["dev1"]
    assert not echo.has("X-Auth") and not echo.has("X-Org")


@pytest.mark.parametrize("path,route,cluster", [
    ("/istio/9000", "mesh-9000", HTTPBIN_9000),               # another port
    ("/istio/other", "mesh-other-namespace", OTHER_NS_8000),  # another namespace
])
def test_istio_destination_with_other_port_or_namespace_is_not_selected(shipped, path, route, cluster):
    echo = assert_passed(shipped.get(path, headers={"X-User": "root", "X-Auth": "Bearer junk"}))
    went_to(echo, route, cluster)
    assert echo.header("X-User") == ["root"] and echo.header("X-Auth") == ["Bearer junk"]


def test_plain_cluster_selected_by_name(shipped):
    assert_denied(shipped.get("/echo"), MISSING, path="/echo")
    echo = assert_passed(shipped.get("/echo", headers={**xauth(demo_token()), "X-User": "root"}))
    went_to(echo, "echo", "echo")
    assert echo.header("X-User") == ["dev1"]


def test_routes_or_destinations_either_selects(envoy):
    """A policy with both applyToRoutes and applyToDestinations selects a request when either matches."""
    both = on_destinations(on_routes(spec(provider(KEY_A, issuer=ISSUER)), {"name": "admin"}),
                           {"selector": {"name": "echo"}})
    proxy = boot_routes(envoy, both)
    assert_denied(proxy.get("/admin"), MISSING, path="/admin")
    assert_denied(proxy.get("/echo"), MISSING, path="/echo")
    assert_passed(proxy.get("/labelled"))
    assert_passed(proxy.get("/istio/8000"))
    echo = assert_passed(proxy.get("/echo", headers=bearer(mint(KEY_A, claims(iss=ISSUER)))))
    went_to(echo, "echo", "echo")


@pytest.mark.parametrize("apply_to_routes", [[], [{}], [{"route": {}}]], ids=["[]", "[{}]", "[{route:{}}]"])
def test_empty_route_selectors_select_every_route(envoy, apply_to_routes):
    everything = {**spec(provider(KEY_A, issuer=ISSUER)), "applyToRoutes": apply_to_routes}
    proxy = boot_routes(envoy, everything)
    for path in ("/open", "/admin", "/istio/9000", "/alt"):
        assert_denied(proxy.get(path), MISSING, path=path)


def test_empty_destination_selector_selects_every_destination(envoy):
    proxy = boot_routes(envoy, on_destinations(spec(provider(KEY_A, issuer=ISSUER)), {}))
    for path in ("/open", "/labelled", "/istio/9000", "/echo", "/alt"):
        assert_denied(proxy.get(path), MISSING, path=path)


# --------------------------------------------------------------------------- 4. which policy governs


def policy_for(key, name: str, created: str | None, **config) -> dict:
    """A policy on the labelled routes trusting ``key``, copying ``sub`` to ``x-policy-<name>``."""
    body = spec(provider(key, issuer=ISSUER, claimsToHeaders=[{"claim": "sub", "header": f"x-policy-{name}"}]),
                **config)
    return resource(name, on_routes(body, LABELLED), created=created)


def token(key, sub: str = "alice", **fields) -> dict:
    return bearer(mint(key, claims(iss=ISSUER, sub=sub, **fields)))


def assert_governed_by(proxy, governing_key, other_key, name: str, path: str = "/labelled") -> None:
    echo = assert_passed(proxy.get(path, headers=token(governing_key)))
    assert echo.header(f"X-Policy-{name}") == ["alice"], echo
    assert_denied(proxy.get(path, headers=token(other_key)), VERIFICATION_FAILS, path=path)


def test_oldest_policy_governs_even_when_listed_second(envoy):
    newer = policy_for(KEY_B, "newer", "2024-06-01T00:00:00Z")
    older = policy_for(KEY_A, "older", "2023-01-15T08:30:00Z")
    proxy = boot_routes(envoy, policies(newer, older))
    assert_governed_by(proxy, KEY_A, KEY_B, "older")
    assert_governed_by(proxy, KEY_A, KEY_B, "older", path="/org")


def test_age_compares_instants_not_text(envoy):
    """10:00+02:00 is 08:00Z: older than 09:00Z although it sorts after it as text."""
    newer = policy_for(KEY_B, "newer", "2024-05-01T09:00:00Z")
    older = policy_for(KEY_A, "older", "2024-05-01T10:00:00+02:00")
    proxy = boot_routes(envoy, policies(newer, older))
    assert_governed_by(proxy, KEY_A, KEY_B, "older")


def test_policies_without_creation_timestamp_come_after_dated_ones(envoy):
    undated = policy_for(KEY_B, "undated", None)
    dated = policy_for(KEY_A, "dated", "2030-01-01T00:00:00Z")
    proxy = boot_routes(envoy, policies(undated, dated))
    assert_governed_by(proxy, KEY_A, KEY_B, "dated")


def test_a_newer_policy_never_overrides_an_older_one_whatever_its_priority(envoy):
    """Gloo's rule: only the oldest policy applies. A newer ALLOW_MISSING_OR_FAILED policy with a
    lower priority used to govern the route an older REQUIRE_VALID one protects."""
    older = resource("older", with_phase(policy_for(KEY_A, "older", None)["spec"], "preAuthz", 5),
                     created="2023-01-01T00:00:00Z")
    lenient = with_phase(policy_for(KEY_B, "newer", None)["spec"], "preAuthz", -5)
    lenient["config"]["validationPolicy"] = "ALLOW_MISSING_OR_FAILED"
    newer = resource("newer", lenient, created="2024-01-01T00:00:00Z")
    proxy = boot_routes(envoy, policies(newer, older))
    assert_governed_by(proxy, KEY_A, KEY_B, "older")
    assert_denied(proxy.get("/labelled"), MISSING, path="/labelled")


# --------------------------------------------------------------------------- 5. claims and scopes

RULES = resource("rules", on_routes(spec(
    provider(KEY_A, issuer=ISSUER),
    claims=[
        {"key": "email", "values": ["*@example.com"], "notValues": ["mallory@example.com"]},
        {"key": "groups", "values": ["admins", "ops"]},
        {"key": "realm/roles", "values": ["editor"], "nestedClaimDelimiter": "/"},
    ],
    requiredScopes=["read", "write"],
), LABELLED))

GOOD = {"email": "alice@example.com", "groups": ["users", "admins"],
        "realm": {"roles": ["viewer", "editor"]}, "scope": "openid read write"}


@pytest.fixture
def rules(envoy) -> harness.Envoy:
    return boot_routes(envoy, policies(RULES))


def with_claims(**changes) -> dict:
    payload = {**GOOD, **changes}
    return token(KEY_A, **{k: v for k, v in payload.items() if v is not None})


@pytest.mark.parametrize("changes", [
    {},
    {"email": "bob@example.com"},                          # another match of *@example.com
    {"groups": "ops"},                                     # a string claim
    {"groups": ["ops"]},
    {"realm": {"roles": "editor", "other": 1}},            # nested string
    {"scope": ["write", "read"]},                          # scope as a list claim
    {"scope": "write extra read"},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "all-rules-hold")
def test_claims_and_scopes_pass(rules, changes):
    echo = assert_passed(rules.get("/labelled", headers=with_claims(**changes)))
    went_to(echo, "labelled", "httpbin")
    assert not echo.has("Authorization")


@pytest.mark.parametrize("changes", [
    {"email": "mallory@example.com"},                      # notValues hit (although values match)
    {"email": "alice@example.org"},                        # no value matches
    {"email": "alice@example.com.evil.org"},               # the wildcard is anchored
    {"email": None},                                       # the claim is missing
    {"groups": ["users", "guests"]},                       # no element matches
    {"groups": []},
    {"realm": {"roles": ["viewer"]}},                      # nested claim without the value
    {"realm": None},                                       # nested path missing
    {"realm/roles": ["editor"], "realm": None},            # the key is a path, not a flat name
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_claims_rules_deny_with_403(rules, changes):
    resp = rules.get("/labelled", headers=with_claims(**changes))
    assert_denied(resp, CLAIMS_DENIED, status=403, path="/labelled")


def test_claims_denial_reply_is_exact(rules):
    status, headers, body = rules.get("/labelled/x?q=1", headers=with_claims(email="mallory@example.com"))
    assert (status, body) == (403, CLAIMS_DENIED)
    assert headers["www-authenticate"] == 'Bearer realm="http://www.example.com/labelled/x", error="invalid_token"'
    assert headers["content-type"] == "text/plain"


@pytest.mark.parametrize("changes", [
    {"scope": "openid read"},                              # write missing
    {"scope": ["read"]},
    {"scope": "readwrite"},                                # not space-separated scopes
    {"scope": None},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_missing_scope_is_denied_with_403(rules, changes):
    resp = rules.get("/labelled", headers=with_claims(**changes))
    assert_denied(resp, SCOPES_DENIED, status=403, path="/labelled")


def test_claims_rules_apply_only_where_their_policy_governs(rules):
    assert_passed(rules.get("/open", headers=with_claims(email="mallory@example.com")))


# --------------------------------------------------------------------------- 6. phases

# PRE is newer than POST and has the phase that runs first: POST, the oldest, still governs
# /labelled; each per-phase instance sees every policy and enforces POST only in postAuthz.
PRE = resource("pre", with_phase(policy_for(KEY_A, "pre", None)["spec"], "preAuthz", -10),
               created="2024-01-01T00:00:00Z")
POST = resource("post", with_phase(policy_for(KEY_B, "post", None)["spec"], "postAuthz", 0),
                created="2020-01-01T00:00:00Z")
POST_ADMIN = resource("post-admin", with_phase(on_routes(spec(provider(
    KEY_B, issuer=ISSUER, claimsToHeaders=[{"claim": "sub", "header": "x-policy-post"}])), {"name": "admin"}),
    "postAuthz"))
PHASED = [POST, POST_ADMIN, PRE]


def test_pre_authz_instance_leaves_what_a_post_authz_policy_governs(envoy):
    proxy = boot_routes(envoy, policies(*PHASED, phase="preAuthz"))
    # only post-admin selects /admin: untouched here
    sent = {"X-Policy-Post": "spoofed", "Authorization": "Bearer junk"}
    echo = assert_passed(proxy.get("/admin", headers=sent))
    went_to(echo, "admin", "httpbin")
    assert echo.header("X-Policy-Post") == ["spoofed"] and echo.header("Authorization") == ["Bearer junk"]
    # /labelled: the older postAuthz policy governs, so the newer preAuthz one is not enforced
    # by this instance (the postAuthz instance enforces POST)
    assert_passed(proxy.get("/labelled", headers=token(KEY_B)))
    assert_passed(proxy.get("/labelled"))


def test_post_authz_instance_enforces_post_authz_policies(envoy):
    proxy = boot_routes(envoy, policies(*PHASED, phase="postAuthz"))
    assert_denied(proxy.get("/admin"), MISSING, path="/admin")
    echo = assert_passed(proxy.get("/admin", headers={**token(KEY_B), "X-Policy-Post": "spoofed"}))
    assert echo.header("X-Policy-Post") == ["alice"]
    assert_governed_by(proxy, KEY_B, KEY_A, "post")
    assert_passed(proxy.get("/open"))


def test_instance_without_phase_lets_the_oldest_govern_whatever_its_phase(envoy):
    proxy = boot_routes(envoy, policies(*PHASED))
    assert_governed_by(proxy, KEY_B, KEY_A, "post")                # the older postAuthz policy
    assert_denied(proxy.get("/admin"), MISSING, path="/admin")     # postAuthz policies served too
    assert_passed(proxy.get("/admin", headers=token(KEY_B)))


# --------------------------------------------------------------------------- 7. routing on a claim


def test_claim_header_reroutes_after_route_cache_is_cleared(shipped):
    echo = assert_passed(shipped.get("/org/get", headers=xauth(demo_mint(sub="eve", org="internal"))))
    went_to(echo, "org-internal", "internal")
    assert echo.header("X-Org") == ["internal"]
    echo = assert_passed(shipped.get("/org/get", headers=xauth(demo_mint(sub="dev1", org="solo.io"))))
    went_to(echo, "org-default", "httpbin")
    assert echo.header("X-Org") == ["solo.io"]


def test_client_x_org_cannot_pick_the_internal_route(shipped):
    headers = {**xauth(demo_mint(sub="dev1", org="solo.io")), "X-Org": "internal"}
    echo = assert_passed(shipped.get("/org/get", headers=headers))
    went_to(echo, "org-default", "httpbin")
    assert echo.header("X-Org") == ["solo.io"]
    # a token without the claim: the client's x-org is still removed, the default route taken
    echo = assert_passed(shipped.get("/org/get", headers={**xauth(demo_mint(sub="x")), "X-Org": "internal"}))
    went_to(echo, "org-default", "httpbin")
    assert not echo.has("X-Org")
    # no token at all: both /org routes carry the label, so the policy answers
    assert_denied(shipped.get("/org/get", headers={"X-Org": "internal"}), MISSING, path="/org/get")


def shipped_with(**labelled_config) -> dict:
    config = shipped_config()
    config["policies"][0]["spec"]["config"].update(labelled_config)
    return config


def test_clear_route_cache_false_still_reroutes_when_the_filter_changes_headers(envoy):
    """README: `FALSE` only stops the filter's own clear call; Envoy's wasm host itself picks the
    route again whenever a wasm filter changes request headers (here: adds x-org, strips X-Auth)."""
    proxy = boot_routes(envoy, shipped_with(clearRouteCache="FALSE"))
    echo = assert_passed(proxy.get("/org/get", headers=xauth(demo_mint(sub="eve", org="internal"))))
    assert echo.header("X-Org") == ["internal"]
    went_to(echo, "org-internal", "internal")


def test_clear_route_cache_true_reroutes_too(envoy):
    proxy = boot_routes(envoy, shipped_with(clearRouteCache="TRUE"))
    echo = assert_passed(proxy.get("/org/get", headers=xauth(demo_mint(sub="eve", org="internal"))))
    went_to(echo, "org-internal", "internal")


# The filter's own clear_route_cache call, apart from Envoy's: an earlier header_mutation filter
# sets `x-org: internal` after Envoy picked the route, without clearing the cache; the policy
# adds no header and keeps the token, so the wasm filter changes no request header at all.

def quiet_policy(mode: str) -> dict:
    quiet = provider(demo_key(), issuer=DEMO_ISSUER, keepToken=True)
    return on_routes(spec(quiet, clearRouteCache=mode), LABELLED)


@pytest.mark.parametrize("mode,route,cluster", [
    ("TRUE", "org-internal", "internal"),   # cleared after the accepted token: picked again
    ("AUTO", "org-default", "httpbin"),     # the filter added no header: not cleared
    ("FALSE", "org-default", "httpbin"),
])
def test_clear_route_cache_modes_when_the_filter_changes_no_header(envoy, mode, route, cluster):
    proxy = envoy(None, bootstrap=routes_bootstrap(quiet_policy(mode), filters_before=[set_request_headers(
        x_org="internal")]), name="routes")
    echo = assert_passed(proxy.get("/org/get", headers=bearer(demo_token())))
    assert echo.header("X-Org") == ["internal"]
    assert echo.header("Authorization") == [f"Bearer {demo_token()}"]
    went_to(echo, route, cluster)
    assert_denied(proxy.get("/org/get"), MISSING, path="/org/get")


# --------------------------------------------------------------------------- 8. routeLabelsNamespace


def test_route_labels_namespace_setting_reads_another_metadata_namespace(envoy):
    acme = on_routes(spec(provider(KEY_A, issuer=ISSUER)), LABELLED)
    proxy = boot_routes(envoy, policies(acme, routeLabelsNamespace="acme.routing"))
    assert_denied(proxy.get("/alt"), MISSING, path="/alt")
    echo = assert_passed(proxy.get("/alt", headers=token(KEY_A)))
    went_to(echo, "alt-labels", "httpbin")
    # the labels under jwt_policy are not read any more
    assert_passed(proxy.get("/labelled"))
    assert_passed(proxy.get("/org"))


def test_route_namespace_is_read_from_the_same_metadata_namespace(envoy):
    team = on_routes(spec(provider(KEY_A, issuer=ISSUER)), {"namespace": "team-a"})
    proxy = boot_routes(envoy, policies(team, routeLabelsNamespace="acme.routing"))
    assert_denied(proxy.get("/alt"), MISSING, path="/alt")
    assert_passed(proxy.get("/labelled"))
    # and by default (jwt_policy) the acme.routing namespace is not seen
    proxy = boot_routes(envoy, policies(team))
    assert_passed(proxy.get("/alt"))


def test_default_namespace_ignores_labels_under_another_namespace(shipped):
    echo = assert_passed(shipped.get("/alt", headers={"X-Org": "spoofed"}))
    went_to(echo, "alt-labels", "httpbin")
    assert echo.header("X-Org") == ["spoofed"]
