"""Every SPEC §3 status string that local keys can produce, and the order of the checks.

Checks run format -> header -> issuer -> time (nbf, then exp, with clockSkewSeconds,
default 60) -> audience -> keys/signature; the first failing check names the reply.
"""

from __future__ import annotations

import json

import pytest

from jwtmint import b64json, b64url, claims, generate, jwks, mint, mint_unsigned, now, raw_token, shared_key, tamper_signature
from support import (ALG_MISSING, ALG_UNSUPPORTED, BAD_AUDIENCE, BAD_FORMAT, EXPIRED, HEADER_BAD_B64, HEADER_BAD_JSON,
                     ISSUER, NO_MATCHING_KEY, NOT_YET_VALID, OTHER_ISSUER, PAYLOAD_BAD_B64, PAYLOAD_BAD_JSON,
                     SIGNATURE_BAD_B64, UNKNOWN_ISSUER, VERIFICATION_FAILS, assert_denied, assert_passed, bearer,
                     provider, spec)

KEY = shared_key("RS256", kid="status-1")
AUDIENCES = ["api.example.com", "other.example.com"]


@pytest.fixture
def proxy(envoy):
    """An RSA provider (JWKS with kid) with an issuer and no audiences."""
    return envoy(spec(provider(jwks(KEY), issuer=ISSUER)))


@pytest.fixture
def aud_proxy(envoy):
    return envoy(spec(provider(jwks(KEY), issuer=ISSUER, audiences=AUDIENCES)))


def signed(**fields) -> str:
    return mint(KEY, claims(iss=ISSUER, sub="alice", **fields))


def send(proxy, token: str):
    return proxy.get("/get", headers=bearer(token))


GOOD = signed()
HEAD, PAYLOAD, SIG = GOOD.split(".")


# --------------------------------------------------------------------------- format and header

@pytest.mark.parametrize("token", ["abc", "abc.def", f"{HEAD}.{PAYLOAD}", f"{GOOD}.extra", "a.b.c.d", "."])
def test_not_three_sections(proxy, token):
    assert_denied(send(proxy, token), BAD_FORMAT)


@pytest.mark.parametrize("header", ["e", "eyJhbGciOiJSUzI1NiJ9e"], ids=["one-char", "length-mod-4-is-1"])
def test_header_not_base64url(proxy, header):
    assert_denied(send(proxy, raw_token(header, PAYLOAD, SIG)), HEADER_BAD_B64)


@pytest.mark.parametrize("text", ["not json", '{"alg":"RS256"', "[1,2"])
def test_header_not_json(proxy, text):
    assert_denied(send(proxy, raw_token(b64url(text), PAYLOAD, SIG)), HEADER_BAD_JSON)


@pytest.mark.parametrize("header", [{"typ": "JWT"}, {"alg": 256}, {"alg": None}, {"alg": ["RS256"]}],
                         ids=["absent", "number", "null", "list"])
def test_alg_missing_or_not_a_string(proxy, header):
    assert_denied(send(proxy, raw_token(b64json(header), PAYLOAD, SIG)), ALG_MISSING)


@pytest.mark.parametrize("alg", ["none", "RS1024", "HS1", "ES256K", "rs256", ""])
def test_alg_not_supported(proxy, alg):
    assert_denied(send(proxy, raw_token(b64json({"alg": alg, "typ": "JWT"}), PAYLOAD, SIG)), ALG_UNSUPPORTED)


# --------------------------------------------------------------------------- payload and signature

def test_payload_not_base64url(proxy):
    assert_denied(send(proxy, raw_token(HEAD, "e", SIG)), PAYLOAD_BAD_B64)


@pytest.mark.parametrize("text", ["not json", '{"iss":', "[1,2]", '"just a string"', "42"])
def test_payload_not_a_json_object(proxy, text):
    assert_denied(send(proxy, raw_token(HEAD, b64url(text), SIG)), PAYLOAD_BAD_JSON)


def test_signature_not_base64url(proxy):
    assert_denied(send(proxy, raw_token(HEAD, PAYLOAD, "e")), SIGNATURE_BAD_B64)


@pytest.mark.parametrize("token", [raw_token(HEAD, PAYLOAD, ""), raw_token("", PAYLOAD, SIG), ".."],
                         ids=["signature", "header", "all"])
def test_empty_section_is_not_three_sections(proxy, token):
    """jwt_verify_lib splits on '.' skipping empty parts."""
    assert_denied(send(proxy, token), BAD_FORMAT)


def test_tampered_payload_fails_verification(proxy):
    forged = raw_token(HEAD, b64json(claims(iss=ISSUER, sub="admin")), SIG)
    assert_denied(send(proxy, forged), VERIFICATION_FAILS)


def test_tampered_signature_fails_verification(proxy):
    assert_denied(send(proxy, tamper_signature(GOOD)), VERIFICATION_FAILS)


def test_valid_token_passes(proxy):
    assert_passed(send(proxy, GOOD))


# --------------------------------------------------------------------------- issuer

def test_other_issuer_is_not_configured(proxy):
    assert_denied(send(proxy, mint(KEY, claims(iss=OTHER_ISSUER))), UNKNOWN_ISSUER)


def test_issuer_must_match_exactly(proxy):
    assert_denied(send(proxy, mint(KEY, claims(iss=ISSUER + "/"))), UNKNOWN_ISSUER)


def test_token_without_iss_when_issuer_configured(proxy):
    assert_denied(send(proxy, mint(KEY, claims(sub="alice"))), UNKNOWN_ISSUER)


def test_provider_without_issuer_accepts_any_iss(envoy):
    proxy = envoy(spec(provider(jwks(KEY))))
    assert_passed(send(proxy, mint(KEY, claims(iss="https://anyone.example.com"))))
    assert_passed(send(proxy, mint(KEY, claims(sub="no-iss"))))


# --------------------------------------------------------------------------- time

def test_expired_outside_skew(proxy):
    assert_denied(send(proxy, signed(exp=now() - 120)), EXPIRED)


def test_expired_within_default_skew_passes(proxy):
    assert_passed(send(proxy, signed(exp=now() - 30)))


def test_not_before_in_the_future(proxy):
    assert_denied(send(proxy, signed(nbf=now() + 120)), NOT_YET_VALID)


def test_not_before_within_default_skew_passes(proxy):
    assert_passed(send(proxy, signed(nbf=now() + 30)))


def test_token_without_exp_passes(proxy):
    assert_passed(send(proxy, mint(KEY, {"iss": ISSUER, "sub": "alice"})))


def test_nbf_is_checked_before_exp(proxy):
    assert_denied(send(proxy, signed(nbf=now() + 600, exp=now() - 600)), NOT_YET_VALID)


def test_zero_clock_skew(envoy):
    proxy = envoy(spec(provider(jwks(KEY), issuer=ISSUER, clockSkewSeconds=0)))
    assert_denied(send(proxy, signed(exp=now() - 5)), EXPIRED)
    assert_denied(send(proxy, signed(nbf=now() + 5)), NOT_YET_VALID)
    assert_passed(send(proxy, signed(exp=now() + 30, nbf=now() - 5)))


def test_large_clock_skew(envoy):
    proxy = envoy(spec(provider(jwks(KEY), issuer=ISSUER, clockSkewSeconds=600)))
    assert_passed(send(proxy, signed(exp=now() - 300)))
    assert_passed(send(proxy, signed(nbf=now() + 300)))
    assert_denied(send(proxy, signed(exp=now() - 900)), EXPIRED)


def test_extreme_times_do_not_overflow(proxy):
    assert_denied(send(proxy, signed(nbf=2**63 - 1)), NOT_YET_VALID)
    assert_denied(send(proxy, signed(exp=1)), EXPIRED)
    assert_passed(send(proxy, signed(exp=2**63 - 1)))
    assert_passed(send(proxy, GOOD))  # still serving


# --------------------------------------------------------------------------- audience

@pytest.mark.parametrize("aud", ["api.example.com", ["nope", "other.example.com"], ["api.example.com"]])
def test_allowed_audience_passes(aud_proxy, aud):
    assert_passed(send(aud_proxy, signed(aud=aud)))


@pytest.mark.parametrize("aud", ["nope.example.com", ["a", "b"], [], "API.example.com"])
def test_audience_not_allowed_is_403(aud_proxy, aud):
    assert_denied(send(aud_proxy, signed(aud=aud)), BAD_AUDIENCE, status=403)


def test_token_without_aud_is_403_when_audiences_configured(aud_proxy):
    assert_denied(send(aud_proxy, signed()), BAD_AUDIENCE, status=403)


def test_provider_without_audiences_ignores_aud(proxy):
    assert_passed(send(proxy, signed(aud="whatever.example.com")))


# --------------------------------------------------------------------------- keys

def test_kid_not_in_jwks(proxy):
    assert_denied(send(proxy, mint(KEY, claims(iss=ISSUER), kid="rotated-away")), NO_MATCHING_KEY)


def test_jwks_with_some_invalid_keys_keeps_the_valid_ones(envoy):
    broken = [
        {"kty": "RSA", "kid": "bad-rsa", "alg": "RS256", "n": "", "e": "AQAB"},
        {"kty": "EC", "kid": "bad-ec", "crv": "P-999", "x": "AAAA", "y": "AAAA"},
        {"kty": "OKP", "kid": "bad-okp", "crv": "X25519", "x": "AAAA"},
        {"kty": "unknown", "kid": "bad-kty"},
    ]
    proxy = envoy(spec(provider(json.dumps({"keys": broken + [KEY.jwk()]}), issuer=ISSUER)))
    assert_passed(send(proxy, GOOD))
    assert_passed(send(proxy, mint(KEY, claims(iss=ISSUER), kid=None)))
    assert_denied(send(proxy, mint(KEY, claims(iss=ISSUER), kid="bad-rsa")), NO_MATCHING_KEY)


# --------------------------------------------------------------------------- check order

def test_format_before_everything(proxy):
    assert_denied(send(proxy, "only.two"), BAD_FORMAT)


def test_header_before_issuer(proxy):
    token = raw_token(b64json({"alg": "none"}), b64json(claims(iss=OTHER_ISSUER)), "c2ln")
    assert_denied(send(proxy, token), ALG_UNSUPPORTED)


def test_issuer_before_time(proxy):
    assert_denied(send(proxy, mint(KEY, claims(iss=OTHER_ISSUER, exp=now() - 3600))), UNKNOWN_ISSUER)


def test_time_before_audience(aud_proxy):
    assert_denied(send(aud_proxy, signed(aud="nope", exp=now() - 3600)), EXPIRED)


def test_audience_before_signature(aud_proxy):
    assert_denied(send(aud_proxy, tamper_signature(signed(aud="nope"))), BAD_AUDIENCE, status=403)


def test_time_before_keys(proxy):
    """An expired token with an unknown kid answers 'Jwt is expired'."""
    stale = mint(generate("RS256", kid="unknown"), claims(iss=ISSUER, exp=now() - 3600))
    assert_denied(send(proxy, stale), EXPIRED)


def test_time_before_signature(proxy):
    assert_denied(send(proxy, tamper_signature(signed(exp=now() - 3600))), EXPIRED)


def test_payload_json_before_signature_base64(proxy):
    assert_denied(send(proxy, raw_token(HEAD, b64url("nope"), "e")), PAYLOAD_BAD_JSON)


def test_unsupported_alg_before_payload(proxy):
    assert_denied(send(proxy, raw_token(b64json({"alg": "none"}), "e", "e")), ALG_UNSUPPORTED)
