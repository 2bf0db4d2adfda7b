"""Every signature algorithm end to end with freshly generated keys, and the classic attacks.

Each family is configured both as a PEM public key and as a JWKS (HMAC keys only
exist as JWKS ``kty: oct``).  Key choice follows jwt_verify_lib: a key is skipped
when token and key both have a ``kid`` and they differ, or the key's ``alg``
differs from the token's; skipped all -> "Jwks doesn't have key to match kid or
alg from Jwt"; tried but none verified -> "Jwt verification fails".
"""

from __future__ import annotations

import json

import pytest

from jwtmint import (ALL_ALGS, HMAC_ALGS, b64json, b64url, b64url_decode, claims, generate, jwks, mint, mint_hmac, mint_unsigned,
                     pkcs1v15_encoding, shared_key, tamper_signature)
from support import (ALG_UNSUPPORTED, BAD_FORMAT, ISSUER, NO_MATCHING_KEY, VERIFICATION_FAILS, assert_denied, assert_passed,
                     bearer, provider, spec)

CASES = [(alg, form) for alg in ALL_ALGS for form in ("pem", "jwks") if not (alg in HMAC_ALGS and form == "pem")]


def key_for(alg: str, name: str = ""):
    return shared_key(alg, kid=f"{alg.lower()}-1", name=name)


def inline(key, form: str) -> str:
    return key.public_pem() if form == "pem" else jwks(key)


def token_for(key, **fields) -> str:
    return mint(key, claims(iss=ISSUER, sub="alice", **fields))


@pytest.fixture(params=CASES, ids=[f"{alg}-{form}" for alg, form in CASES])
def case(request, envoy):
    alg, form = request.param
    key = key_for(alg)
    return key, envoy(spec(provider(inline(key, form), issuer=ISSUER)))


# --------------------------------------------------------------------------- each family


def test_valid_token_is_accepted(case):
    key, envoy = case
    echo = assert_passed(envoy.get("/get", headers=bearer(token_for(key))))
    assert not echo.has("Authorization")


def test_tampered_signature_fails_verification(case):
    key, envoy = case
    assert_denied(envoy.get("/get", headers=bearer(tamper_signature(token_for(key)))), VERIFICATION_FAILS)


def test_token_signed_by_another_key_fails_verification(case):
    key, envoy = case
    stranger = key_for(key.alg, name="stranger")  # same alg and kid, different key
    assert_denied(envoy.get("/get", headers=bearer(token_for(stranger))), VERIFICATION_FAILS)


# --------------------------------------------------------------------------- attacks


@pytest.mark.parametrize("form", ["pem", "jwks"])
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_not_supported(envoy, form, alg):
    key = key_for("RS256")
    proxy = envoy(spec(provider(inline(key, form), issuer=ISSUER)))
    token = mint_unsigned({"alg": alg, "typ": "JWT"}, claims(iss=ISSUER), "c2ln")
    assert_denied(proxy.get("/get", headers=bearer(token)), ALG_UNSUPPORTED)
    # the classic unsigned form "header.payload." has an empty third section: as in
    # jwt_verify_lib (split skipping empty parts) it is not a JWT at all
    unsigned = mint_unsigned({"alg": alg, "typ": "JWT"}, claims(iss=ISSUER), "")
    assert_denied(proxy.get("/get", headers=bearer(unsigned)), BAD_FORMAT)


@pytest.mark.parametrize("secret_form", ["pem-as-configured", "pem-stripped"])
def test_hs256_signed_with_the_rsa_public_pem_is_rejected(envoy, secret_form):
    """Algorithm confusion: an RSA key never verifies an HMAC token."""
    pem = key_for("RS256").public_pem()
    proxy = envoy(spec(provider(pem, issuer=ISSUER)))
    secret = pem if secret_form == "pem-as-configured" else pem.strip()
    token = mint_hmac(secret.encode(), claims(iss=ISSUER), alg="HS256", kid=None)
    assert_denied(proxy.get("/get", headers=bearer(token)), VERIFICATION_FAILS)


def test_hs256_against_rsa_jwk_without_alg_fails_verification(envoy):
    key = key_for("RS256")
    proxy = envoy(spec(provider(jwks(key, with_alg=False, with_kid=False), issuer=ISSUER)))
    token = mint_hmac(key.public_pem().encode(), claims(iss=ISSUER), alg="HS256", kid=None)
    assert_denied(proxy.get("/get", headers=bearer(token)), VERIFICATION_FAILS)


def test_hs256_against_rsa_jwk_with_alg_finds_no_key(envoy):
    key = key_for("RS256")
    proxy = envoy(spec(provider(jwks(key), issuer=ISSUER)))
    token = mint_hmac(key.public_pem().encode(), claims(iss=ISSUER), alg="HS256", kid=None)
    assert_denied(proxy.get("/get", headers=bearer(token)), NO_MATCHING_KEY)


def test_ec_key_does_not_verify_an_rsa_token(envoy):
    proxy = envoy(spec(provider(key_for("ES256").public_pem(), issuer=ISSUER)))
    assert_denied(proxy.get("/get", headers=bearer(token_for(key_for("RS256")))), VERIFICATION_FAILS)


def test_unknown_kid_finds_no_key(envoy):
    key = key_for("ES256")
    proxy = envoy(spec(provider(jwks(key), issuer=ISSUER)))
    token = mint(key, claims(iss=ISSUER), kid="not-in-the-jwks")
    assert_denied(proxy.get("/get", headers=bearer(token)), NO_MATCHING_KEY)


# --------------------------------------------------------------------------- key choice


def test_kid_selects_the_key_among_several(envoy):
    first, second = generate("ES256", kid="k1"), generate("ES256", kid="k2")
    proxy = envoy(spec(provider(jwks(first, second), issuer=ISSUER)))
    assert_passed(proxy.get("/get", headers=bearer(mint(second, claims(iss=ISSUER)))))
    wrong_kid = mint(second, claims(iss=ISSUER), kid="k1")
    assert_denied(proxy.get("/get", headers=bearer(wrong_kid)), VERIFICATION_FAILS)


def test_token_without_kid_tries_every_key(envoy):
    first, second = generate("ES256", kid="k1"), generate("ES256", kid="k2")
    proxy = envoy(spec(provider(jwks(first, second), issuer=ISSUER)))
    assert_passed(proxy.get("/get", headers=bearer(mint(second, claims(iss=ISSUER), kid=None))))


def test_key_without_kid_is_tried_for_any_kid(envoy):
    key = key_for("RS256")
    proxy = envoy(spec(provider(jwks(key, with_kid=False), issuer=ISSUER)))
    assert_passed(proxy.get("/get", headers=bearer(mint(key, claims(iss=ISSUER), kid="anything"))))


def test_key_alg_must_equal_token_alg(envoy):
    key = key_for("RS256")  # JWK says alg RS256
    proxy = envoy(spec(provider(jwks(key), issuer=ISSUER)))
    token = mint(key, claims(iss=ISSUER), alg="RS384")
    assert_denied(proxy.get("/get", headers=bearer(token)), NO_MATCHING_KEY)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "PS512"])
@pytest.mark.parametrize("form", ["pem", "jwk-without-alg"])
def test_rsa_key_without_alg_verifies_every_rsa_algorithm(envoy, form, alg):
    key = key_for("RS256")
    inline_key = key.public_pem() if form == "pem" else jwks(key, with_alg=False)
    proxy = envoy(spec(provider(inline_key, issuer=ISSUER)))
    assert_passed(proxy.get("/get", headers=bearer(mint(key, claims(iss=ISSUER), alg=alg))))


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ec_jwk_with_leading_zero_bytes_stripped(envoy, alg):
    """JWK coordinates shorter than the field size (leading zeros dropped, as some
    issuers publish them and jwt_verify_lib accepts) are left-padded."""
    for _ in range(2000):
        key = generate(alg, kid="short")
        jwk = key.jwk()
        if b64url_decode(jwk["x"])[0] == 0 or b64url_decode(jwk["y"])[0] == 0:
            break
    else:
        pytest.skip("no key with a leading zero coordinate byte found")
    for coord in ("x", "y"):
        jwk[coord] = b64url(b64url_decode(jwk[coord]).lstrip(b"\0"))
    proxy = envoy(spec(provider(json.dumps({"keys": [jwk]}), issuer=ISSUER)))
    assert_passed(proxy.get("/get", headers=bearer(token_for(key))))


# --------------------------------------------------------------------------- RSA key rules, PSS salt


def test_jwks_rsa_key_with_e_1_is_dropped_so_its_forged_token_is_refused(envoy):
    """With e = 1 the padded message is its own signature: anyone could sign. Such a key is
    dropped from the JWKS (the others kept), as jwt_verify_lib drops any e but 3 and 65537."""
    good = key_for("RS256")
    n = good.public_key().public_numbers().n
    evil = {"kty": "RSA", "kid": "evil", "n": b64url(n.to_bytes(256, "big")), "e": b64url(b"\x01")}
    proxy = envoy(spec(provider(jwks(good, evil), issuer=ISSUER)))
    signing_input = f"{b64json({'alg': 'RS256', 'typ': 'JWT', 'kid': 'evil'})}.{b64json(claims(iss=ISSUER))}"
    forged = f"{signing_input}.{b64url(pkcs1v15_encoding(signing_input.encode(), 'RS256', 256))}"
    assert_denied(proxy.get("/get", headers=bearer(forged)), NO_MATCHING_KEY)
    _, payload, _ = forged.split(".")
    no_kid = f"{b64json({'alg': 'RS256', 'typ': 'JWT'})}.{payload}"
    forged_no_kid = f"{no_kid}.{b64url(pkcs1v15_encoding(no_kid.encode(), 'RS256', 256))}"
    assert_denied(proxy.get("/get", headers=bearer(forged_no_kid)), VERIFICATION_FAILS)
    assert_passed(proxy.get("/get", headers=bearer(token_for(good))))  # the good key was kept


@pytest.mark.parametrize("form", ["pem", "jwks"])
def test_pss_tokens_with_any_salt_length_are_accepted(envoy, form):
    """BoringSSL (so jwt_authn) verifies PS256/384/512 with the salt length read from the
    signature: Python cryptography's PSS.MAX_LENGTH, or no salt, are accepted too."""
    key = key_for("RS256")
    inline_key = key.public_pem() if form == "pem" else jwks(key, with_alg=False)
    proxy = envoy(spec(provider(inline_key, issuer=ISSUER)))
    for alg in ("PS256", "PS384", "PS512"):
        for salt in ("max", 0, 20, None):
            token = mint(key, claims(iss=ISSUER, sub="alice"), alg=alg, pss_salt=salt)
            assert_passed(proxy.get("/get", headers=bearer(token)))
        bad = tamper_signature(mint(key, claims(iss=ISSUER, sub="alice"), alg=alg, pss_salt="max"))
        assert_denied(proxy.get("/get", headers=bearer(bad)), VERIFICATION_FAILS)
