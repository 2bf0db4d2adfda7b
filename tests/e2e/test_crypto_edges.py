"""(Written by the third adversarial review of 2026-12-01; every case held.) ECDSA and RSA edge cases through the real filter (forgeries, odd keys).

SPEC §2: keys verify only their own family; RSA keys need e = 3 or 65537 and 1024-8192 bits;
a JWKS drops invalid keys (keeping the valid ones); every forgery is 401 with a status string
of the spec (`Jwt verification fails`, or `Jwks doesn't have key…` when the key was dropped),
never a pass and never a 5xx.  What BoringSSL (jwt_authn) accepts must be accepted: high-s.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from jwtmint import (Key, b64json, b64url, b64url_decode, claims, generate, jwks, mint, shared_key)
from support import (ISSUER, NO_MATCHING_KEY, VERIFICATION_FAILS, assert_denied, assert_passed, bearer, provider,
                     spec)

N = {"ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
     "ES384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16),
     "ES512": int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16)}
P = {"ES256": 2**256 - 2**224 + 2**192 + 2**96 - 1,
     "ES384": 2**384 - 2**128 - 2**96 + 2**32 - 1,
     "ES512": 2**521 - 1}
SIZE = {"ES256": 32, "ES384": 48, "ES512": 66}
CURVE = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
HASH = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
ECS = ["ES256", "ES384", "ES512"]


def refused(r, allowed=(VERIFICATION_FAILS,)):
    assert r.status == 401 and r.body in allowed, r


def signing_input(alg, kid, **payload):
    return f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64json(claims(iss=ISSUER, sub='mallory', **payload))}"


def ec_rs(key: Key, data: bytes, hash_alg=None):
    h = hash_alg or {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512}[key.alg]
    return decode_dss_signature(key.private.sign(data, ec.ECDSA(h())))


def raw(r, s, size):
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@pytest.fixture(scope="module")
def ec_keys():
    return {alg: shared_key(alg, kid=f"r3-{alg}") for alg in ECS}


@pytest.fixture
def ec_proxy(envoy, ec_keys):
    return envoy(spec(provider(jwks(*ec_keys.values()), issuer=ISSUER)))


@pytest.mark.parametrize("alg", ECS)
def test_ecdsa_high_s_is_accepted_as_boringssl_accepts_it(ec_proxy, ec_keys, alg):
    key = ec_keys[alg]
    si = signing_input(alg, key.kid)
    r, s = ec_rs(key, si.encode())
    size = SIZE[alg]
    assert_passed(ec_proxy.get("/get", headers=bearer(f"{si}.{b64url(raw(r, s, size))}")))
    assert_passed(ec_proxy.get("/get", headers=bearer(f"{si}.{b64url(raw(r, N[alg] - s, size))}")))


@pytest.mark.parametrize("alg", ECS)
def test_ecdsa_mangled_signatures_are_refused(ec_proxy, ec_keys, alg):
    key = ec_keys[alg]
    n, size = N[alg], SIZE[alg]
    si = signing_input(alg, key.kid)
    r, s = ec_rs(key, si.encode())
    bad = {
        "zeros": raw(0, 0, size),
        "r0": raw(0, s, size),
        "s0": raw(r, 0, size),
        "r=n": raw(n, s, size),
        "s=n": raw(r, n, size),
        "r=n+r?": (raw(r + n, s, size) if (r + n).bit_length() <= 8 * size else raw(n + 1, s, size)),
        "s+n": (raw(r, s + n, size) if (s + n).bit_length() <= 8 * size else raw(r, n + 1, size)),
        "r>n all ones": raw(2 ** (8 * size) - 1, s, size),
        "r=1,s=1": raw(1, 1, size),
        "s=n-1 r=n-1": raw(n - 1, n - 1, size),
        "der": encode_dss_signature(r, s),
        "short": raw(r, s, size)[:-1],
        "long": raw(r, s, size) + b"\x00",
        "leading zero": b"\x00" + raw(r, s, size),
        "double width": raw(r, s, 2 * size),
        "swapped": raw(s, r, size),
        "empty-ish": b"\x00",
    }
    for name, sig in bad.items():
        r_ = ec_proxy.get("/get", headers=bearer(f"{si}.{b64url(sig)}"))
        assert r_.status == 401 and r_.body == VERIFICATION_FAILS, (name, r_)


@pytest.mark.parametrize("alg", ECS)
def test_ecdsa_wrong_hash_for_the_alg_is_refused(ec_proxy, ec_keys, alg):
    key = ec_keys[alg]
    si = signing_input(alg, key.kid)
    for h in (hashes.SHA256, hashes.SHA384, hashes.SHA512, hashes.SHA1):
        if h.name == {"ES256": "sha256", "ES384": "sha384", "ES512": "sha512"}[alg]:
            continue
        r, s = ec_rs(key, si.encode(), h)
        refused(ec_proxy.get("/get", headers=bearer(f"{si}.{b64url(raw(r, s, SIZE[alg]))}")))


def test_es256_token_against_a_p384_key_is_refused(envoy):
    """A token labelled ES256 whose key is P-384 (the JWK without `alg`): RFC 7518 ES256 is
    P-256 only; at least a signature of the wrong size must never pass."""
    k384 = generate("ES384", kid="cross")
    proxy = envoy(spec(provider(jwks(k384, with_alg=False), issuer=ISSUER)))
    si = signing_input("ES256", "cross")
    r, s = ec_rs(k384, si.encode(), hashes.SHA256)
    # 64-byte signature (P-256 size) made of the low halves: must fail
    refused(proxy.get("/get", headers=bearer(f"{si}.{b64url(raw(r % 2**256, s % 2**256, 32))}")),
            (VERIFICATION_FAILS, NO_MATCHING_KEY))


def forge_for_infinity(alg, si: bytes):
    """If Q = infinity were accepted: u1·G + u2·Q = u1·G; choose k, R = kG, r = x(R), s = e/k."""
    n = N[alg]
    k = 123456789
    rx = ec.derive_private_key(k, CURVE[alg]()).public_key().public_numbers().x
    r = rx % n
    digest = HASH[alg[2:]](si).digest()
    e = int.from_bytes(digest, "big")
    if alg == "ES512":
        e >>= 512 - 521 if 512 > 521 else 0
    s = e * pow(k, -1, n) % n
    return raw(r, s, SIZE[alg])


def ec_jwk(alg, kid, x: int, y: int | None, size=None, crv=None):
    size = size or SIZE[alg]
    out = {"kty": "EC", "crv": crv or {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg], "kid": kid,
           "x": b64url(x.to_bytes(size, "big"))}
    if y is not None:
        out["y"] = b64url(y.to_bytes(size, "big"))
    return out


def bad_ec_keys(alg):
    good = shared_key(alg, kid="good")
    pub = good.public_key().public_numbers()
    p, size = P[alg], SIZE[alg]
    keys = {
        "infinity": ec_jwk(alg, "bad", 0, 0),
        "off-curve": ec_jwk(alg, "bad", pub.x, (pub.y + 1) % p),
        "x=p": ec_jwk(alg, "bad", p, pub.y),
        "no-y": ec_jwk(alg, "bad", pub.x, None),
        "short-x": {**ec_jwk(alg, "bad", pub.x, pub.y), "x": b64url(pub.x.to_bytes(size, "big")[1:])}
        if pub.x.bit_length() > 8 * (size - 1) else ec_jwk(alg, "bad", pub.x, (pub.y + 2) % p),
    }
    if alg == "ES512" or (pub.y + p).bit_length() <= 8 * size:
        keys["y+p"] = ec_jwk(alg, "bad", pub.x, pub.y + p)
    if alg == "ES512" or (pub.x + p).bit_length() <= 8 * size:
        keys["x+p"] = ec_jwk(alg, "bad", pub.x + p, pub.y)
    keys["compressed-in-x"] = {"kty": "EC", "crv": ec_jwk(alg, "b", 1, 1)["crv"], "kid": "bad",
                               "x": b64url(bytes([2 + (pub.y & 1)]) + pub.x.to_bytes(size, "big"))}
    return good, keys


# One curve here (each bad key boots an Envoy): P-384 and P-521 keys go through the same parse
# (RustCrypto's checked SEC1 points), covered by `jwks` unit tests and the Wycheproof vectors.
@pytest.mark.parametrize("alg", ["ES256"])
def test_invalid_ec_keys_are_dropped_and_never_verify(envoy, alg):
    good, keys = bad_ec_keys(alg)
    si = signing_input(alg, "bad")
    for name, jwk in keys.items():
        proxy = envoy(spec(provider(jwks(good, jwk), issuer=ISSUER)))
        forged = forge_for_infinity(alg, si.encode())
        r = proxy.get("/get", headers=bearer(f"{si}.{b64url(forged)}"))
        assert r.status == 401 and r.body in (NO_MATCHING_KEY, VERIFICATION_FAILS), (name, r)
        # a token signed by the good private key under the bad key's kid: the bad key must
        # not stand in for the good one (off-curve/non-canonical coordinates of the same x)
        token = mint(good, claims(iss=ISSUER, sub="x"), kid="bad")
        r = proxy.get("/get", headers=bearer(token))
        assert r.status == 401 and r.body in (NO_MATCHING_KEY, VERIFICATION_FAILS), (name, r)
        assert_passed(proxy.get("/get", headers=bearer(mint(good, claims(iss=ISSUER)))))


# --------------------------------------------------------------------------- RSA


DIGEST_INFO = {
    "256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
DIGEST_INFO_NO_NULL = {
    "256": bytes.fromhex("302f300b0609608648016503040201" "0420"),
}


def rsa_raw_sign(key: Key, em: bytes) -> bytes:
    priv = key.private.private_numbers()
    n = priv.public_numbers.n
    k = (n.bit_length() + 7) // 8
    return pow(int.from_bytes(em, "big"), priv.d, n).to_bytes(k, "big")


def emsa(t: bytes, k: int, block=b"\x01", fill=b"\xff", garbage=b""):
    ps_len = k - len(t) - 3 - len(garbage)
    return b"\x00" + block + fill * ps_len + b"\x00" + t + garbage


@pytest.fixture(scope="module")
def rsa_keys():
    return {"e65537": shared_key("RS256", kid="r3-rsa"),
            "e3": Key("RS256", rsa.generate_private_key(public_exponent=3, key_size=2048), "r3-rsa3")}


@pytest.fixture
def rsa_proxy(envoy, rsa_keys):
    return envoy(spec(provider(jwks(*rsa_keys.values(), with_alg=False), issuer=ISSUER)))


@pytest.mark.parametrize("which", ["e65537", "e3"])
def test_rsa_pkcs1_encoding_variants_are_refused(rsa_proxy, rsa_keys, which):
    key = rsa_keys[which]
    k = 256
    si = signing_input("RS256", key.kid)
    h = hashlib.sha256(si.encode()).digest()
    good = emsa(DIGEST_INFO["256"] + h, k)
    assert_passed(rsa_proxy.get("/get", headers=bearer(f"{si}.{b64url(rsa_raw_sign(key, good))}")))
    variants = {
        "sha384 digestinfo": emsa(DIGEST_INFO["384"] + hashlib.sha384(si.encode()).digest(), k),
        "no NULL": emsa(DIGEST_INFO_NO_NULL["256"] + h, k),
        "garbage after hash": emsa(DIGEST_INFO["256"] + h, k, garbage=b"\x00" * 40),
        "garbage after hash ff": emsa(DIGEST_INFO["256"] + h, k, garbage=b"\xff" * 3),
        "block type 2": emsa(DIGEST_INFO["256"] + h, k, block=b"\x02"),
        "block type 0": emsa(DIGEST_INFO["256"] + h, k, block=b"\x00"),
        "fill 00": emsa(DIGEST_INFO["256"] + h, k, fill=b"\x00"),
        "bare hash": emsa(h, k),
        "short padding": b"\x00\x01" + b"\xff" * 7 + b"\x00" + DIGEST_INFO["256"] + h + b"\x00" * (k - 10 - 19 - 32),
        "wrong hash len": emsa(DIGEST_INFO["256"][:-1] + b"\x1f" + h[:-1], k),
        "oid sha512/256 in a 256 slot": emsa(bytes.fromhex("3031300d060960864801650304020605000420") + h, k),
    }
    for name, em in variants.items():
        r = rsa_proxy.get("/get", headers=bearer(f"{si}.{b64url(rsa_raw_sign(key, em))}"))
        assert (r.status, r.body) == (401, VERIFICATION_FAILS), (name, r)


@pytest.mark.parametrize("which", ["e65537", "e3"])
def test_rsa_signature_values_out_of_range_are_refused(rsa_proxy, rsa_keys, which):
    key = rsa_keys[which]
    n = key.public_key().public_numbers().n
    si = signing_input("RS256", key.kid)
    genuine = key.sign(si.encode())
    variants = {
        "0": (0).to_bytes(256, "big"), "1": (1).to_bytes(256, "big"), "n-1": (n - 1).to_bytes(256, "big"),
        "n": n.to_bytes(256, "big"), "n+genuine": (n + int.from_bytes(genuine, "big")).to_bytes(257, "big"),
        "leading zero": b"\x00" + genuine, "short": genuine[1:], "all ff": b"\xff" * 256,
        "double": genuine + genuine,
    }
    for name, sig in variants.items():
        r = rsa_proxy.get("/get", headers=bearer(f"{si}.{b64url(sig)}"))
        assert (r.status, r.body) == (401, VERIFICATION_FAILS), (name, r)


def test_pss_with_another_mgf_hash_or_message_hash_is_refused(rsa_proxy, rsa_keys):
    key = rsa_keys["e65537"]
    si = signing_input("PS256", key.kid)
    ok = key.private.sign(si.encode(), padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert_passed(rsa_proxy.get("/get", headers=bearer(f"{si}.{b64url(ok)}")))
    for mgf, h in ((hashes.SHA384, hashes.SHA256), (hashes.SHA1, hashes.SHA256), (hashes.SHA512, hashes.SHA256),
                   (hashes.SHA256, hashes.SHA384), (hashes.SHA384, hashes.SHA384)):
        sig = key.private.sign(si.encode(), padding.PSS(padding.MGF1(mgf()), 32), h())
        r = rsa_proxy.get("/get", headers=bearer(f"{si}.{b64url(sig)}"))
        assert (r.status, r.body) == (401, VERIFICATION_FAILS), (mgf.name, h.name, r)
    # a PKCS#1 v1.5 signature under a PS256 header, and the reverse
    r = rsa_proxy.get("/get", headers=bearer(f"{si}.{b64url(key.sign(si.encode(), 'RS256'))}"))
    assert (r.status, r.body) == (401, VERIFICATION_FAILS), r
    si_rs = signing_input("RS256", key.kid)
    r = rsa_proxy.get("/get", headers=bearer(f"{si_rs}.{b64url(key.sign(si_rs.encode(), 'PS256'))}"))
    assert (r.status, r.body) == (401, VERIFICATION_FAILS), r
