"""Where tokens are found, what is forwarded, and which requests pass without a valid token.

tokenSource.headers ``[{name, prefix}]`` (name case-insensitive, prefix case-sensitive),
tokenSource.queryParams; defaults ``Authorization: Bearer`` and ``?access_token=`` when
tokenSource is omitted.  Every token found must be valid.  keepToken false (default)
strips the token from the forwarded request.
"""

from __future__ import annotations

import pytest

from jwtmint import claims, mint, shared_key, tamper_signature
from support import (EXPIRED, ISSUER, MISSING, OTHER_ISSUER, VERIFICATION_FAILS, assert_denied, assert_passed,
                     bearer, provider, spec)

KEY = shared_key("ES256", kid="extract-a")
OTHER_KEY = shared_key("ES256", kid="extract-b")
TOKEN = mint(KEY, claims(iss=ISSUER, sub="alice", org="solo.io"))
BAD_TOKEN = tamper_signature(TOKEN)
OTHER_TOKEN = mint(OTHER_KEY, claims(iss=OTHER_ISSUER, sub="bob"))

X_AUTH = {"headers": [{"name": "X-Auth", "prefix": "Bearer "}], "queryParams": ["auth_token"]}
CLAIMS = [{"claim": "sub", "header": "x-sub"}]


def one_provider(**fields):
    return spec(provider(KEY, issuer=ISSUER, claimsToHeaders=CLAIMS, **fields))


# --------------------------------------------------------------------------- headers


def test_configured_header_with_prefix(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH))
    echo = assert_passed(proxy.get("/get", headers={"X-Auth": f"Bearer {TOKEN}"}))
    assert echo.header("X-Sub") == ["alice"]
    assert not echo.has("X-Auth")


@pytest.mark.parametrize("sent_name", ["x-auth", "X-AUTH", "X-Auth"])
def test_header_name_is_case_insensitive(envoy, sent_name):
    proxy = envoy(one_provider(tokenSource={"headers": [{"name": "x-AUTH", "prefix": "Bearer "}]}))
    echo = assert_passed(proxy.get("/get", headers={sent_name: f"Bearer {TOKEN}"}))
    assert not echo.has("X-Auth")


@pytest.mark.parametrize("value", [f"bearer {TOKEN}", f"BEARER {TOKEN}", TOKEN, f"Basic {TOKEN}", "Bearer"])
def test_value_without_the_exact_prefix_holds_no_token(envoy, value):
    proxy = envoy(one_provider(tokenSource=X_AUTH))
    assert_denied(proxy.get("/get", headers={"X-Auth": value}), MISSING)


def test_header_without_prefix_takes_the_whole_value(envoy):
    proxy = envoy(one_provider(tokenSource={"headers": [{"name": "X-Jwt"}]}))
    echo = assert_passed(proxy.get("/get", headers={"X-Jwt": TOKEN}))
    assert not echo.has("X-Jwt")


def test_other_headers_are_not_token_locations(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH))
    assert_denied(proxy.get("/get", headers=bearer(TOKEN)), MISSING)
    assert_denied(proxy.get(f"/get?access_token={TOKEN}"), MISSING)


# --------------------------------------------------------------------------- defaults and query


def test_default_authorization_bearer(envoy):
    proxy = envoy(one_provider())
    echo = assert_passed(proxy.get("/get", headers=bearer(TOKEN)))
    assert echo.header("X-Sub") == ["alice"]
    assert not echo.has("Authorization")


def test_default_access_token_query_param(envoy):
    proxy = envoy(one_provider())
    echo = assert_passed(proxy.get(f"/get?access_token={TOKEN}"))
    assert echo.header("X-Sub") == ["alice"]
    assert echo.url == "/get"


def test_defaults_do_not_include_other_locations(envoy):
    proxy = envoy(one_provider())
    assert_denied(proxy.get("/get", headers={"X-Auth": f"Bearer {TOKEN}"}), MISSING)
    assert_denied(proxy.get(f"/get?auth_token={TOKEN}"), MISSING)


def test_tokensource_with_only_headers_drops_the_default_query_param(envoy):
    proxy = envoy(one_provider(tokenSource={"headers": [{"name": "Authorization", "prefix": "Bearer "}]}))
    assert_denied(proxy.get(f"/get?access_token={TOKEN}"), MISSING)
    assert_passed(proxy.get("/get", headers=bearer(TOKEN)))


def test_tokensource_with_only_query_params_drops_the_default_header(envoy):
    proxy = envoy(one_provider(tokenSource={"queryParams": ["jwt"]}))
    assert_denied(proxy.get("/get", headers=bearer(TOKEN)), MISSING)
    assert_passed(proxy.get(f"/get?jwt={TOKEN}"))


@pytest.mark.parametrize("name", ["auth_token", "jwt"])
def test_several_query_params(envoy, name):
    proxy = envoy(one_provider(tokenSource={"queryParams": ["auth_token", "jwt"]}))
    echo = assert_passed(proxy.get(f"/search?q=x&{name}={TOKEN}"))
    assert echo.url == "/search?q=x"


def test_query_token_removed_other_params_kept_in_order(envoy):
    proxy = envoy(one_provider())
    echo = assert_passed(proxy.get(f"/get?a=1&access_token={TOKEN}&b=2&c="))
    assert echo.url == "/get?a=1&b=2&c="
    assert echo.args == {"a": ["1"], "b": ["2"], "c": [""]}


# --------------------------------------------------------------------------- every token must be valid


def test_valid_header_and_invalid_query_is_denied(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH))
    resp = proxy.get(f"/get?auth_token={BAD_TOKEN}", headers={"X-Auth": f"Bearer {TOKEN}"})
    assert_denied(resp, VERIFICATION_FAILS)


def test_invalid_header_and_valid_query_is_denied(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH))
    expired = mint(KEY, claims(iss=ISSUER, exp=1))
    resp = proxy.get(f"/get?auth_token={TOKEN}", headers={"X-Auth": f"Bearer {expired}"})
    assert_denied(resp, EXPIRED)


def test_two_valid_tokens_pass_and_both_are_stripped(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH))
    echo = assert_passed(proxy.get(f"/get?auth_token={TOKEN}", headers={"X-Auth": f"Bearer {TOKEN}"}))
    assert not echo.has("X-Auth")
    assert echo.url == "/get"


# --------------------------------------------------------------------------- keepToken


def test_keep_token_true_forwards_header_and_query(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH, keepToken=True))
    echo = assert_passed(proxy.get("/get", headers={"X-Auth": f"Bearer {TOKEN}"}))
    assert echo.header("X-Auth") == [f"Bearer {TOKEN}"]
    echo = assert_passed(proxy.get(f"/get?a=1&auth_token={TOKEN}"))
    assert echo.url == f"/get?a=1&auth_token={TOKEN}"


def test_keep_token_false_strips_header_and_query(envoy):
    proxy = envoy(one_provider(tokenSource=X_AUTH, keepToken=False))
    echo = assert_passed(proxy.get("/get", headers={"X-Auth": f"Bearer {TOKEN}", "X-Other": "kept"}))
    assert not echo.has("X-Auth")
    assert echo.header("X-Other") == ["kept"]
    echo = assert_passed(proxy.get(f"/get?a=1&auth_token={TOKEN}"))
    assert echo.url == "/get?a=1"


# --------------------------------------------------------------------------- several providers


def two_providers(a_fields=None, b_fields=None):
    return spec(providers_by_name={
        "alpha": provider(KEY, issuer=ISSUER, claimsToHeaders=CLAIMS, **(a_fields or {})),
        "beta": provider(OTHER_KEY, issuer=OTHER_ISSUER, claimsToHeaders=CLAIMS, **(b_fields or {})),
    })


@pytest.mark.parametrize("token,sub", [(TOKEN, "alice"), (OTHER_TOKEN, "bob")], ids=["alpha", "beta"])
def test_any_provider_may_accept(envoy, token, sub):
    proxy = envoy(two_providers())
    echo = assert_passed(proxy.get("/get", headers=bearer(token)))
    assert echo.header("X-Sub") == [sub]


def test_token_is_verified_by_the_provider_of_its_issuer(envoy):
    proxy = envoy(two_providers())
    forged = mint(OTHER_KEY, claims(iss=ISSUER, sub="mallory"))  # alpha's issuer, beta's key
    assert_denied(proxy.get("/get", headers=bearer(forged)), VERIFICATION_FAILS)


def test_token_of_no_provider_is_denied(envoy):
    proxy = envoy(two_providers())
    stranger = mint(KEY, claims(iss="https://stranger.example.com"))
    assert proxy.get("/get", headers=bearer(stranger)).status == 401


def test_providers_with_their_own_locations(envoy):
    proxy = envoy(two_providers({"tokenSource": {"headers": [{"name": "X-Alpha"}]}},
                                {"tokenSource": {"headers": [{"name": "X-Beta"}]}}))
    assert assert_passed(proxy.get("/get", headers={"X-Alpha": TOKEN})).header("X-Sub") == ["alice"]
    assert assert_passed(proxy.get("/get", headers={"X-Beta": OTHER_TOKEN})).header("X-Sub") == ["bob"]
    assert proxy.get("/get", headers={"X-Beta": TOKEN}).status == 401
    echo = assert_passed(proxy.get("/get", headers={"X-Alpha": TOKEN, "X-Beta": OTHER_TOKEN}))
    assert not echo.has("X-Alpha") and not echo.has("X-Beta")
    assert_denied(proxy.get("/get"), MISSING)


# --------------------------------------------------------------------------- validationPolicy


def test_require_valid_is_the_default(envoy):
    proxy = envoy(spec(provider(KEY, issuer=ISSUER), validationPolicy="REQUIRE_VALID"))
    assert_denied(proxy.get("/get"), MISSING)
    assert_denied(proxy.get("/get", headers=bearer(BAD_TOKEN)), VERIFICATION_FAILS)
    assert_passed(proxy.get("/get", headers=bearer(TOKEN)))


def test_allow_missing(envoy):
    proxy = envoy(spec(provider(KEY, issuer=ISSUER, claimsToHeaders=CLAIMS), validationPolicy="ALLOW_MISSING"))
    assert not assert_passed(proxy.get("/get")).has("X-Sub")
    assert_denied(proxy.get("/get", headers=bearer(BAD_TOKEN)), VERIFICATION_FAILS)
    assert assert_passed(proxy.get("/get", headers=bearer(TOKEN))).header("X-Sub") == ["alice"]


@pytest.mark.parametrize("config", [{"validationPolicy": "ALLOW_MISSING_OR_FAILED"}, {"allowMissingOrFailed": True}],
                         ids=["validationPolicy", "deprecated-allowMissingOrFailed"])
def test_allow_missing_or_failed(envoy, config):
    proxy = envoy(spec(provider(KEY, issuer=ISSUER, claimsToHeaders=CLAIMS), **config))
    assert not assert_passed(proxy.get("/get")).has("X-Sub")
    assert not assert_passed(proxy.get("/get", headers=bearer(BAD_TOKEN))).has("X-Sub")
    assert not assert_passed(proxy.get("/get", headers=bearer("garbage"))).has("X-Sub")
    assert assert_passed(proxy.get("/get", headers=bearer(TOKEN))).header("X-Sub") == ["alice"]


def test_validation_policy_wins_over_deprecated_flag(envoy):
    proxy = envoy(spec(provider(KEY, issuer=ISSUER), validationPolicy="REQUIRE_VALID", allowMissingOrFailed=True))
    assert_denied(proxy.get("/get"), MISSING)


# --------------------------------------------------------------------------- CORS preflight


def test_cors_preflight_passes_without_token(envoy):
    proxy = envoy(one_provider())
    resp = proxy.request("OPTIONS", "/get", headers={"Origin": "https://app.example.com",
                                                     "Access-Control-Request-Method": "POST"})
    echo = assert_passed(resp)
    assert echo.method == "OPTIONS"
    assert not echo.has("X-Sub")


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://app.example.com"},
                                     {"Access-Control-Request-Method": "POST"}],
                         ids=["plain", "origin-only", "request-method-only"])
def test_other_options_requests_need_a_token(envoy, headers):
    proxy = envoy(one_provider())
    assert_denied(proxy.request("OPTIONS", "/get", headers=headers), MISSING)


def test_preflight_shape_with_get_method_needs_a_token(envoy):
    proxy = envoy(one_provider())
    resp = proxy.get("/get", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
    assert_denied(resp, MISSING)
