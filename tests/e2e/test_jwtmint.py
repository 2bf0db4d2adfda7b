"""Self-check of the token minting helpers (no Envoy): every signature verifies with
``cryptography``, and JWKs describe the same public key as the PEM."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jwtmint import ALL_ALGS, b64url_decode, claims, generate, mint, segments

HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_signature_verifies(alg):
    key = generate(alg, kid="k")
    token = mint(key, claims(sub="x"))
    header, payload = segments(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": "k"} and payload["sub"] == "x"
    head, body, sig = token.split(".")
    assert "=" not in token
    data, signature = f"{head}.{body}".encode(), b64url_decode(sig)
    bits = alg[-3:]
    if alg.startswith("HS"):
        assert hmac.compare_digest(signature, hmac.new(key.secret, data, getattr(hashlib, f"sha{bits}")).digest())
    elif alg.startswith("RS"):
        key.public_key().verify(signature, data, padding.PKCS1v15(), HASH[bits]())
    elif alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(HASH[bits]()), salt_length=HASH[bits].digest_size)
        key.public_key().verify(signature, data, pss, HASH[bits]())
    elif alg.startswith("ES"):
        size = {"256": 32, "384": 48, "512": 66}[bits]
        assert len(signature) == 2 * size
        der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
        key.public_key().verify(der, data, ec.ECDSA(HASH[bits]()))
    else:
        key.public_key().verify(signature, data)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES384", "ES512", "EdDSA"])
def test_jwk_matches_pem(alg):
    key = generate(alg)
    jwk = key.jwk()
    assert jwk["alg"] == alg
    if alg == "RS256":
        assert int.from_bytes(b64url_decode(jwk["n"]), "big") == key.public_key().public_numbers().n
    elif alg.startswith("ES"):
        numbers = key.public_key().public_numbers()
        assert int.from_bytes(b64url_decode(jwk["x"]), "big") == numbers.x
        assert int.from_bytes(b64url_decode(jwk["y"]), "big") == numbers.y
        assert len(b64url_decode(jwk["x"])) == {"ES256": 32, "ES384": 48, "ES512": 66}[alg]
    else:
        assert jwk["kty"] == "OKP" and len(b64url_decode(jwk["x"])) == 32
    assert key.public_pem().startswith("-----BEGIN PUBLIC KEY-----")
