"""Keys and JWTs for the end-to-end tests, written with ``cryptography`` only.

The JWS compact encoding is done here by hand (base64url without padding) so
tests can also build every kind of broken token::

    key = generate("ES256", kid="k1")
    good = mint(key, {"iss": "https://dev.example.com", "sub": "dev1"})
    provider = {"local": {"inline": key.public_pem()}}      # or jwks(key)
    none = mint_unsigned({"alg": "none"}, {"sub": "x"})
    hs_confusion = mint_hmac(rsa_key.public_pem().encode(), {...}, alg="HS256")

Algorithms: RS256/384/512, PS256/384/512, ES256/ES384/ES512 (P-256/P-384/P-521,
raw r||s signatures), EdDSA and Ed25519 (Ed25519 keys), HS256/384/512.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

RSA_ALGS = ("RS256", "RS384", "RS512")
PSS_ALGS = ("PS256", "PS384", "PS512")
EC_ALGS = ("ES256", "ES384", "ES512")
ED_ALGS = ("EdDSA", "Ed25519")
HMAC_ALGS = ("HS256", "HS384", "HS512")
ALL_ALGS = RSA_ALGS + PSS_ALGS + EC_ALGS + ED_ALGS + HMAC_ALGS

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_HASHLIB = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_CURVES = {  # alg -> (curve, JWK crv, coordinate bytes)
    "ES256": (ec.SECP256R1, "P-256", 32),
    "ES384": (ec.SECP384R1, "P-384", 48),
    "ES512": (ec.SECP521R1, "P-521", 66),
}


# --------------------------------------------------------------------------- encoding


def b64url(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64json(obj: Any) -> str:
    """base64url of compact JSON (what a JWT header or payload segment is)."""
    return b64url(json.dumps(obj, separators=(",", ":")))


def _int_bytes(value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def now() -> int:
    return int(time.time())


# --------------------------------------------------------------------------- keys


@dataclass
class Key:
    """A signing key for one algorithm, with its public forms (PEM, JWK)."""

    alg: str
    private: Any
    kid: str | None = None
    secret: bytes | None = field(default=None, repr=False)  # HS* only

    @property
    def family(self) -> str:
        return self.alg[:2] if self.alg not in ED_ALGS else "Ed"

    # signing ---------------------------------------------------------------
    def sign(self, signing_input: bytes, alg: str | None = None, pss_salt: int | str | None = None) -> bytes:
        """``pss_salt`` (PS* only): the salt length, ``"max"`` for ``PSS.MAX_LENGTH``, or None
        for the hash length (what RFC 7518 asks; BoringSSL, so jwt_authn, accepts any)."""
        alg = alg or self.alg
        bits = alg[-3:]
        if alg in RSA_ALGS:
            return self.private.sign(signing_input, padding.PKCS1v15(), _HASHES[bits]())
        if alg in PSS_ALGS:
            salt = {None: _HASHES[bits].digest_size, "max": padding.PSS.MAX_LENGTH}.get(pss_salt, pss_salt)
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[bits]()), salt_length=salt)
            return self.private.sign(signing_input, pss, _HASHES[bits]())
        if alg in EC_ALGS:
            size = _CURVES[alg][2]
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(_HASHES[bits]())))
            return _int_bytes(r, size) + _int_bytes(s, size)
        if alg in ED_ALGS:
            return self.private.sign(signing_input)
        if alg in HMAC_ALGS:
            assert self.secret is not None
            return hmac.new(self.secret, signing_input, _HASHLIB[bits]).digest()
        raise ValueError(f"cannot sign {alg}")

    # public forms ----------------------------------------------------------
    def public_key(self) -> Any:
        return self.private.public_key()

    def public_pem(self) -> str:
        """SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``)."""
        if self.secret is not None:
            raise ValueError("an HMAC key has no PEM form")
        return self.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def jwk(self, with_alg: bool = True, with_kid: bool = True, **extra: Any) -> dict:
        """The public JWK (``oct`` keys carry the secret, as JWKS do for HS*)."""
        if self.secret is not None:
            out: dict[str, Any] = {"kty": "oct", "k": b64url(self.secret)}
        elif self.alg in RSA_ALGS + PSS_ALGS:
            numbers = self.public_key().public_numbers()
            out = {"kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
        elif self.alg in EC_ALGS:
            _, crv, size = _CURVES[self.alg]
            numbers = self.public_key().public_numbers()
            out = {"kty": "EC", "crv": crv, "x": b64url(_int_bytes(numbers.x, size)),
                   "y": b64url(_int_bytes(numbers.y, size))}
        else:
            raw = self.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            out = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        if with_alg:
            out["alg"] = self.alg
        if with_kid and self.kid is not None:
            out["kid"] = self.kid
        out.update(extra)
        return out


def generate(alg: str, kid: str | None = None, rsa_bits: int = 2048) -> Key:
    """A fresh key for ``alg``."""
    if alg in RSA_ALGS + PSS_ALGS:
        return Key(alg, rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits), kid)
    if alg in EC_ALGS:
        return Key(alg, ec.generate_private_key(_CURVES[alg][0]()), kid)
    if alg in ED_ALGS:
        return Key(alg, ed25519.Ed25519PrivateKey.generate(), kid)
    if alg in HMAC_ALGS:
        return hmac_key(os.urandom(int(alg[2:]) // 8), alg, kid)
    raise ValueError(f"unknown algorithm {alg}")


def _der(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + _int_bytes(n)
    return bytes([tag]) + length + value


def rsa_public_pem(n: int, e: int) -> str:
    """The SPKI PEM of any RSA numbers, also those ``cryptography`` refuses to build (``e = 1``)."""
    def integer(v: int) -> bytes:
        return _der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))  # a leading 0 keeps it positive
    rsa_oid = _der(0x06, bytes.fromhex("2a864886f70d010101"))
    algorithm = _der(0x30, rsa_oid + b"\x05\x00")
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + _der(0x30, integer(n) + integer(e))))
    body = base64.encodebytes(spki).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


_DIGEST_INFO = {  # DER DigestInfo prefixes of PKCS#1 v1.5 signatures (RFC 8017 §9.2)
    "256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def pkcs1v15_encoding(signing_input: bytes, alg: str, k: int) -> bytes:
    """EMSA-PKCS1-v1_5 of ``signing_input`` for RS256/384/512 in ``k`` bytes: with ``e = 1`` it is
    its own signature (``s^1 = s``), the forgery an exponent check must stop."""
    t = _DIGEST_INFO[alg[-3:]] + _HASHLIB[alg[-3:]](signing_input).digest()
    return b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


def hmac_key(secret: bytes, alg: str = "HS256", kid: str | None = None) -> Key:
    return Key(alg, None, kid, secret=secret)


@functools.lru_cache(maxsize=None)
def shared_key(alg: str, kid: str | None = None, name: str = "") -> Key:
    """A key generated once per test session for (alg, kid, name): RSA keys are slow to make."""
    return generate(alg, kid)


def jwks(*keys: Key | dict, **jwk_opts: Any) -> str:
    """A JWKS JSON string holding these keys (dicts are taken as ready-made JWKs)."""
    return json.dumps({"keys": [k if isinstance(k, dict) else k.jwk(**jwk_opts) for k in keys]})


# --------------------------------------------------------------------------- tokens


def claims(**fields: Any) -> dict:
    """A payload with ``iat``/``exp`` around now (``exp`` in an hour) plus ``fields``."""
    base = {"iat": now(), "exp": now() + 3600}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def header_for(key: Key, alg: str | None = None, kid: Any = ..., typ: str | None = "JWT", **extra: Any) -> dict:
    header: dict[str, Any] = {"alg": alg or key.alg}
    if typ is not None:
        header["typ"] = typ
    kid = key.kid if kid is ... else kid
    if kid is not None:
        header["kid"] = kid
    header.update(extra)
    return header


def mint(key: Key, payload: dict | None = None, *, header: dict | None = None, alg: str | None = None,
         kid: Any = ..., sign_alg: str | None = None, pss_salt: int | str | None = None,
         **header_extra: Any) -> str:
    """A signed JWT.

    ``header`` replaces the generated header entirely; otherwise it is
    ``{"alg": alg or key.alg, "typ": "JWT", "kid": kid or key.kid, **header_extra}``.
    ``sign_alg`` signs with another algorithm than the header names; ``pss_salt`` sets the PS*
    salt length (see ``Key.sign``)."""
    header = header if header is not None else header_for(key, alg, kid, **header_extra)
    payload = payload if payload is not None else claims()
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = key.sign(signing_input.encode(), sign_alg or (alg or key.alg), pss_salt=pss_salt)
    return f"{signing_input}.{b64url(signature)}"


def mint_hmac(secret: bytes, payload: dict | None = None, alg: str = "HS256", **kw: Any) -> str:
    """An HS* token signed with an arbitrary secret (e.g. a public key PEM)."""
    return mint(hmac_key(secret, alg), payload, alg=alg, **kw)


def mint_unsigned(header: dict, payload: dict | None = None, signature: str = "") -> str:
    """A token with any header and a chosen signature segment (``alg: none`` style)."""
    return f"{b64json(header)}.{b64json(payload if payload is not None else claims())}.{signature}"


def raw_token(header_segment: str, payload_segment: str, signature_segment: str) -> str:
    """Three segments joined verbatim: for malformed tokens."""
    return f"{header_segment}.{payload_segment}.{signature_segment}"


def tamper_signature(token: str) -> str:
    """Same token, signature bytes flipped (still valid base64url of the same length)."""
    head, payload, sig = token.split(".")
    raw = bytearray(b64url_decode(sig))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def segments(token: str) -> tuple[dict, dict]:
    """Decoded header and payload of a well-formed token."""
    head, payload, _ = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(payload))
