"""claimsToHeaders and outputPayloadToHeader, as the upstream sees them.

Rendering: string as is, integer as integer, other numbers as JSON, bool true/false,
list of scalars joined with ",", object as compact JSON; a dotted path reaches nested
objects when no top-level claim has that exact name.  append false (default) replaces
what this filter wrote before for the header, append true adds after it.  Anti-spoofing (as
jwt_authn's sanitizeHeaders): when a policy governs the request, every incoming claim header
(whatever its append) and the payload header are removed first.
"""

from __future__ import annotations

import pytest

from jwtmint import claims, mint, shared_key, tamper_signature
from support import ISSUER, VERIFICATION_FAILS, assert_denied, assert_passed, bearer, provider, spec

KEY = shared_key("EdDSA", kid="claims-1")

PAYLOAD = claims(
    iss=ISSUER, sub="alice", org="solo.io", email="alice@solo.io", n=42, big=9007199254740993, neg=-7,
    ratio=1.5, admin=True, guest=False, groups=["eng", "ops", 3, True], empty_list=[],
    realm={"roles": ["reader", "writer"], "level": 3, "deep": {"er": "bottom"}},
    obj={"k": "v", "n": 1}, unicode="héllo wörld",
    **{"a.b": "top-level-dotted", "a": {"b": "nested"}},
)
TOKEN = mint(KEY, PAYLOAD)

RENDERING = [
    ("sub", "alice"),
    ("n", "42"),
    ("big", "9007199254740993"),
    ("neg", "-7"),
    ("ratio", "1.5"),
    ("admin", "true"),
    ("guest", "false"),
    ("groups", "eng,ops,3,true"),
    ("realm.roles", "reader,writer"),
    ("realm.level", "3"),
    ("realm.deep.er", "bottom"),
    ("obj", '{"k":"v","n":1}'),
    ("realm.deep", '{"er":"bottom"}'),
    ("a.b", "top-level-dotted"),
]


def header_name(claim: str) -> str:
    return "x-claim-" + claim.replace(".", "-").replace("_", "-")


def policy(claims_to_headers, **fields):
    return spec(provider(KEY, issuer=ISSUER, claimsToHeaders=claims_to_headers, **fields))


@pytest.fixture
def rendering_proxy(envoy):
    mapping = [{"claim": claim, "header": header_name(claim)} for claim, _ in RENDERING]
    mapping += [{"claim": "missing", "header": "x-claim-missing"}, {"claim": "realm.nope", "header": "x-claim-nope"}]
    return envoy(policy(mapping))


@pytest.mark.parametrize("claim,expected", RENDERING, ids=[c for c, _ in RENDERING])
def test_claim_rendering(rendering_proxy, claim, expected):
    echo = assert_passed(rendering_proxy.get("/get", headers=bearer(TOKEN)))
    assert echo.header(header_name(claim)) == [expected]


def test_absent_claims_add_no_header(rendering_proxy):
    echo = assert_passed(rendering_proxy.get("/get", headers=bearer(TOKEN)))
    assert not echo.has("x-claim-missing")
    assert not echo.has("x-claim-nope")


def test_unicode_string_claim_reaches_the_header(envoy):
    proxy = envoy(policy([{"claim": "unicode", "header": "x-unicode"}]))
    resp = proxy.get("/get", headers=bearer(TOKEN))
    assert resp.status == 200
    # the echo decodes header bytes as ISO-8859-1: re-encode to compare the UTF-8 bytes
    (value,) = resp.echo().header("x-unicode")
    assert value.encode("latin-1").decode("utf-8") == "héllo wörld"


# --------------------------------------------------------------------------- append


def test_append_false_replaces_the_incoming_value(envoy):
    proxy = envoy(policy([{"claim": "org", "header": "x-org", "append": False}]))
    echo = assert_passed(proxy.get("/get", headers={**bearer(TOKEN), "X-Org": "evil-corp"}))
    assert echo.header("X-Org") == ["solo.io"]


def test_append_defaults_to_false(envoy):
    proxy = envoy(policy([{"claim": "org", "header": "x-org"}]))
    echo = assert_passed(proxy.get("/get", headers=[*bearer(TOKEN).items(), ("X-Org", "a"), ("X-Org", "b")]))
    assert echo.header("X-Org") == ["solo.io"]


def test_append_true_replaces_the_incoming_value_too(envoy):
    """The incoming x-org is the client's, never the token's: it is removed whatever `append` says
    (it used to stay in front of the claim's value, so `x-org: acme` was spoofable)."""
    proxy = envoy(policy([{"claim": "org", "header": "x-org", "append": True}]))
    echo = assert_passed(proxy.get("/get", headers={**bearer(TOKEN), "X-Org": "acme"}))
    assert echo.header("X-Org") == ["solo.io"]
    echo = assert_passed(proxy.get("/get", headers=[*bearer(TOKEN).items(), ("X-Org", "a"), ("x-org", "b")]))
    assert echo.header("X-Org") == ["solo.io"]


def test_append_true_adds_after_what_the_filter_wrote(envoy):
    """Several claims naming one header: `append: true` adds after the value written before it."""
    proxy = envoy(policy([{"claim": "org", "header": "x-who"},
                          {"claim": "email", "header": "x-who", "append": True},
                          {"claim": "sub", "header": "x-who", "append": True}]))
    echo = assert_passed(proxy.get("/get", headers={**bearer(TOKEN), "X-Who": "spoofed"}))
    assert echo.joined("X-Who") == "solo.io,alice@solo.io,alice"


# --------------------------------------------------------------------------- anti-spoofing


def test_spoofed_header_removed_when_token_lacks_the_claim(envoy):
    proxy = envoy(policy([{"claim": "org", "header": "x-org"}]))
    token = mint(KEY, claims(iss=ISSUER, sub="no-org"))
    echo = assert_passed(proxy.get("/get", headers={**bearer(token), "X-Org": "spoofed"}))
    assert not echo.has("X-Org")


def test_spoofed_header_removed_when_token_is_absent_or_bad_but_allowed(envoy):
    proxy = envoy(spec(provider(KEY, issuer=ISSUER, claimsToHeaders=[{"claim": "org", "header": "x-org"}],
                                outputPayloadToHeader="x-jwt-payload"),
                       validationPolicy="ALLOW_MISSING_OR_FAILED"))
    spoof = {"X-Org": "spoofed", "X-Jwt-Payload": "spoofed"}
    for extra in ({}, bearer(tamper_signature(TOKEN))):
        echo = assert_passed(proxy.get("/get", headers={**spoof, **extra}))
        assert not echo.has("X-Org") and not echo.has("X-Jwt-Payload"), echo


def test_append_true_headers_are_stripped_too(envoy):
    """A token without the claim: the client's append-true header is gone, nothing replaces it
    (it used to reach the upstream as if the filter had written it)."""
    proxy = envoy(policy([{"claim": "email", "header": "x-email", "append": True}]))
    token = mint(KEY, claims(iss=ISSUER, sub="no-email"))
    echo = assert_passed(proxy.get("/get", headers={**bearer(token), "X-Email": "incoming@example.com"}))
    assert not echo.has("X-Email"), echo


def test_append_true_headers_are_stripped_when_the_token_is_absent_or_bad_but_allowed(envoy):
    proxy = envoy(spec(provider(KEY, issuer=ISSUER, claimsToHeaders=[{"claim": "org", "header": "x-org", "append": True}]),
                       validationPolicy="ALLOW_MISSING_OR_FAILED"))
    for extra in ({}, bearer(tamper_signature(TOKEN))):
        echo = assert_passed(proxy.get("/get", headers={"X-Org": "admin-org", **extra}))
        assert not echo.has("X-Org"), echo


def test_denied_request_never_reaches_upstream(envoy):
    proxy = envoy(policy([{"claim": "org", "header": "x-org"}]))
    assert_denied(proxy.get("/get", headers={**bearer(tamper_signature(TOKEN)), "X-Org": "x"}), VERIFICATION_FAILS)


def test_control_characters_never_reach_a_header(envoy):
    proxy = envoy(policy([{"claim": "evil", "header": "x-evil"}, {"claim": "sub", "header": "x-sub"}]))
    token = mint(KEY, claims(iss=ISSUER, sub="alice", evil="a\r\nX-Injected: 1\r\n\x00\x07b"))
    resp = proxy.get("/get", headers=bearer(token))
    assert resp.status == 200, resp
    echo = resp.echo()
    assert not echo.has("X-Injected")
    assert echo.header("X-Sub") == ["alice"]
    for value in echo.header("X-Evil"):
        assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value), value


# --------------------------------------------------------------------------- outputPayloadToHeader


def test_output_payload_to_header(envoy):
    proxy = envoy(policy([], outputPayloadToHeader="x-jwt-payload"))
    echo = assert_passed(proxy.get("/get", headers={**bearer(TOKEN), "X-Jwt-Payload": "spoofed"}))
    assert echo.header("X-Jwt-Payload") == [TOKEN.split(".")[1]]
