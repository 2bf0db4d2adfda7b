"""Where tokens are found, what is forwarded, and which requests pass without a valid token.

tokenSource.headers ``[{name, prefix}]`` (name case-insensitive, prefix case-sensitive),
tokenSource.queryParams; defaults ``Authorization: Bearer`` and ``?access_token=`` when
tokenSource is omitted.  Every token found must be valid.  keepToken false (default)
strips the token from the forwarded request.
"""

from __future__ import annotations

import pytest

import harness
from jwtmint import claims, jwks, mint, shared_key, tamper_signature
from support import (BAD_FORMAT, EXPIRED, ISSUER, MISSING, OTHER_ISSUER, SIGNATURE_BAD_B64, VERIFICATION_FAILS,
                     assert_denied, assert_passed,
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


# --------------------------------------------------------------------------- as native jwt_authn finds tokens
#
# Each case is sent to this filter and to Envoy's own jwt_authn (the same binary) configured the
# equivalent way; both must give the expected answer, to the status, body and www-authenticate.

def native_bootstrap(provider_fields: dict, allow_missing: bool = False) -> dict:
    """The harness's bootstrap with jwt_authn in place of this filter: provider "p" with the
    ES256 key inline, the issuer, and ``provider_fields`` (from_headers, from_params, ...)."""
    boot = harness.render("{}")
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    requires: dict = {"provider_name": "p"}
    if allow_missing:
        requires = {"requires_any": {"requirements": [requires, {"allow_missing": {}}]}}
    jwt_authn = {"name": "envoy.filters.http.jwt_authn",
                 "typed_config": {
                     "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                     "providers": {"p": {"issuer": ISSUER, "local_jwks": {"inline_string": jwks(KEY)},
                                         **provider_fields}},
                     "rules": [{"match": {"prefix": "/"}, "requires": requires}]}}
    hcm["http_filters"] = [jwt_authn, hcm["http_filters"][-1]]
    return boot


def both(envoy, token_source: dict | None, native_fields: dict, allow_missing: bool = False, **fields):
    """(ours, native): the two Envoys for one token location."""
    if token_source is not None:
        fields["tokenSource"] = token_source
    config = {"validationPolicy": "ALLOW_MISSING"} if allow_missing else {}
    ours = envoy(spec(provider(KEY, issuer=ISSUER, claimsToHeaders=CLAIMS, **fields), **config))
    native = envoy(None, bootstrap=native_bootstrap(native_fields, allow_missing))
    return ours, native


def assert_answer(resp, expected, path: str = "/get", native: bool = False) -> None:
    """200 (passed), or the exact denial.  jwt_authn's realm keeps the query (this filter's
    stops before it): for native only that part differs."""
    if expected == 200:
        assert_passed(resp)
    elif native and "?" in path:
        assert (resp.status, resp.body) == (401, expected), resp
        assert resp.headers.get("www-authenticate") == (
            f'Bearer realm="http://www.example.com{path}"' + ("" if expected == MISSING else ', error="invalid_token"'))
    else:
        assert_denied(resp, expected, path=path)


def assert_both(pair, expected, path: str = "/get", **kw) -> None:
    ours, native = pair
    assert_answer(ours.get(path, **kw), expected, path)
    assert_answer(native.get(path, **kw), expected, path, native=True)


PREFIX_SOURCE = {"headers": [{"name": "prefix-header", "prefix": "CCCDDD"}]}
PREFIX_NATIVE = {"from_headers": [{"name": "prefix-header", "value_prefix": "CCCDDD"}]}


# Envoy's own jwt_authn extractor tests (provider prefix CCCDDD on prefix-header), and more.
@pytest.mark.parametrize("value,expected", [
    (f"preamble CCCDDD={TOKEN}", 200),
    (f"CCCDDD={TOKEN}", 200),
    (f"CCCDDD {TOKEN}", 200),
    (f'x=1, CCCDDD="{TOKEN}', 200),
    (f"preamble CCCDDD={TOKEN},extra=more", SIGNATURE_BAD_B64),
    (f"CCCDDD={TOKEN[:-4]} {TOKEN[-4:]}", 200),
    (f"CCCDDD={TOKEN} trailing", VERIFICATION_FAILS),
    (f"CCCDDD={TOKEN}=", SIGNATURE_BAD_B64),
    (f"CCCDDD={TOKEN}==", 200),
    (f"cccddd={TOKEN}", MISSING),
    (TOKEN, MISSING),
    ("CCCDDD", BAD_FORMAT),
    ("CCCDDD= ,", BAD_FORMAT),
], ids=["preamble", "at-start", "space", "after-other-params", "comma-after", "space-inside-signature",
        "word-after", "one-pad-of-two", "two-pads", "lower-case", "no-prefix", "prefix-only", "no-token-char-after"])
def test_header_prefix_as_jwt_authn(envoy, value, expected):
    """The token runs from the first base64url character after the prefix to the end of the
    value; the signature's base64url skips whitespace and takes no or all due padding."""
    assert_both(both(envoy, PREFIX_SOURCE, PREFIX_NATIVE), expected, headers={"prefix-header": value})


@pytest.mark.parametrize("path,headers", [
    ("/get?access_token=", {}),
    ("/get?access_token", {}),
    ("/get?a=1&access_token=&b=2", {}),
    ("/get", {"Authorization": "Bearer ,"}),
], ids=["empty-param", "param-without-equals", "empty-param-between", "bearer-comma"])
@pytest.mark.parametrize("allow_missing", [False, True], ids=["require", "allow-missing"])
def test_empty_token_is_malformed_not_missing(envoy, path, headers, allow_missing):
    assert_both(both(envoy, None, {}, allow_missing=allow_missing), BAD_FORMAT, path, headers=headers)


@pytest.mark.parametrize("value", ["", " ", "\t"], ids=["empty", "space", "tab"])
def test_empty_prefixless_header_is_malformed(envoy, value):
    pair = both(envoy, {"headers": [{"name": "X-Jwt"}]}, {"from_headers": [{"name": "x-jwt"}]})
    assert_both(pair, BAD_FORMAT, headers=[("X-Jwt", value)])


@pytest.mark.parametrize("value", ["Bearer ", "Bearer  ", "Bearer\t", "Bearer"], ids=["space", "spaces", "tab", "bare"])
def test_bearer_without_token_arrives_trimmed_so_holds_no_token(envoy, value):
    """Envoy's codec trims a header value's trailing whitespace, so `Bearer ` reaches both
    filters as `Bearer`, which lacks the prefix `Bearer `: no token there, as in jwt_authn."""
    assert_both(both(envoy, None, {}), MISSING, headers=[("Authorization", value)])


# --------------------------------------------------------------------------- cookies
#
# tokenSource.cookies is this filter's extension of the Gloo schema, as jwt_authn's from_cookies
# (Istio fromCookies).  Cookies are read as jwt_authn reads them; unlike jwt_authn (which leaves
# cookies alone) the token cookie is removed before forwarding unless keepToken.

COOKIES = {"cookies": ["jwt"]}
COOKIES_NATIVE = {"from_cookies": ["jwt"]}


@pytest.mark.parametrize("cookies,expected,forwarded", [
    ([f"jwt={TOKEN}"], 200, []),
    ([f'jwt="{TOKEN}"'], 200, []),
    ([f"a=1; jwt={TOKEN}; b=2"], 200, ["a=1; b=2"]),
    ([f"a=1;jwt={TOKEN};b"], 200, ["a=1; b"]),
    ([f" jwt={TOKEN}"], 200, []),
    (["a=1", f"jwt={TOKEN}", "b=2"], 200, ["a=1; b=2"]),
    ([f"jwt={BAD_TOKEN}; jwt={TOKEN}"], VERIFICATION_FAILS, None),
    (["jwt="], BAD_FORMAT, None),
    ([f"Jwt={TOKEN}"], MISSING, None),
    ([f"jwt ={TOKEN}"], MISSING, None),
    ([f"xjwt={TOKEN}; jwtx={TOKEN}"], MISSING, None),
    (["a=1"], MISSING, None),
    ([], MISSING, None),
], ids=["alone", "quoted", "among-others", "no-spaces", "leading-space", "several-cookie-headers",
        "bad-then-good", "empty", "name-is-case-sensitive", "space-before-equals", "other-names", "absent",
        "no-cookie-header"])
def test_token_in_a_cookie(envoy, cookies, expected, forwarded):
    ours, native = both(envoy, COOKIES, COOKIES_NATIVE)
    headers = [("Cookie", c) for c in cookies]
    assert_answer(native.get("/get", headers=headers), expected, native=True)
    resp = ours.get("/get", headers=headers)
    assert_answer(resp, expected)
    if expected == 200:
        echo = resp.echo()
        assert echo.header("X-Sub") == ["alice"]
        assert echo.header("Cookie") == forwarded


def test_every_token_cookie_must_be_valid(envoy):
    """Every cookie of the name is a token, as every query parameter of the name is: a bad one
    after a good one is refused (jwt_authn reads only the first and lets this through)."""
    ours, native = both(envoy, COOKIES, COOKIES_NATIVE)
    headers = {"Cookie": f"jwt={TOKEN}; jwt={BAD_TOKEN}"}
    assert_denied(ours.get("/get", headers=headers), VERIFICATION_FAILS)
    assert_passed(native.get("/get", headers=headers))


def test_keep_token_forwards_the_cookie_header_untouched(envoy):
    proxy = envoy(one_provider(tokenSource=COOKIES, keepToken=True))
    echo = assert_passed(proxy.get("/get", headers=[("Cookie", "a=1"), ("Cookie", f"jwt={TOKEN}; b=2")]))
    assert echo.header("Cookie") == ["a=1", f"jwt={TOKEN}; b=2"]


def test_cookies_with_headers_and_query(envoy):
    proxy = envoy(one_provider(tokenSource={"cookies": ["jwt", "session"], "queryParams": ["auth_token"]}))
    echo = assert_passed(proxy.get(f"/get?auth_token={TOKEN}&x=1",
                                   headers={"Cookie": f"session={TOKEN}; theme=dark; jwt={TOKEN}"}))
    assert echo.url == "/get?x=1"
    assert echo.header("Cookie") == ["theme=dark"]
    assert_denied(proxy.get("/get", headers={"Cookie": f"session={BAD_TOKEN}; jwt={TOKEN}"}), VERIFICATION_FAILS)
    assert_denied(proxy.get("/get", headers=bearer(TOKEN)), MISSING)
