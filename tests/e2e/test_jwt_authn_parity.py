"""Answers that must be Envoy's native jwt_authn's (SPEC preamble: "where this page is silent, do
what Envoy's native jwt_authn filter does").

Each test sends the same token to this filter and to jwt_authn in the same Envoy binary, with
the same JWKS, and asks for the same answer (status and body). Found by the third adversarial
review of 2026-12-01, a differential run of about 100 token and JWK shapes; each of these
differed before (repeated JSON members, EC `alg`/`crv`, a non-string `kid`/`alg`, a `.` before
the token, JSON nesting), the shapes on which both agreed are not repeated here.
"""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import harness
from jwtmint import b64json, b64url, claims, generate, mint, shared_key
from support import ISSUER, bearer, provider, spec

GOOD = shared_key("ES256", kid="good", name="review3-diff")


def native_bootstrap(jwks_text: str) -> dict:
    boot = harness.render("{}")
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    jwt_authn = {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"p": {"issuer": ISSUER, "local_jwks": {"inline_string": jwks_text}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "p"}}]}}
    hcm["http_filters"] = [jwt_authn, hcm["http_filters"][-1]]
    return boot


def pair(envoy, *jwks_keys: dict):
    doc = json.dumps({"keys": [GOOD.jwk(), *jwks_keys]})
    return envoy(spec(provider(doc, issuer=ISSUER))), envoy(None, bootstrap=native_bootstrap(doc))


def answer(r):
    return (r.status, "" if r.status == 200 else r.body)


def same(ours, native, headers):
    a, b = answer(native.get("/get", headers=headers)), answer(ours.get("/get", headers=headers))
    assert b == a, f"jwt_authn answers {a}, this filter {b}"


def signed(header_json: str, payload_json: str, key=GOOD) -> str:
    si = f"{b64url(header_json)}.{b64url(payload_json)}"
    return f"{si}.{b64url(key.sign(si.encode()))}"


# --------------------------------------------------------------------------- duplicate JSON keys

NOW = int(time.time())
H = '{"alg":"ES256","kid":"good"}'
DUPLICATES = {
    "exp twice, the last in the future": (H, '{"iss":"%s","exp":1000,"exp":%d}' % (ISSUER, NOW + 3600)),
    "iss twice, the last configured": (H, '{"iss":"https://evil.example","iss":"%s","exp":%d}' % (ISSUER, NOW + 3600)),
    "sub twice": (H, '{"iss":"%s","sub":"admin","sub":"alice","exp":%d}' % (ISSUER, NOW + 3600)),
    "a nested member twice": (H, '{"iss":"%s","exp":%d,"ext":{"x":1,"x":2}}' % (ISSUER, NOW + 3600)),
    "alg twice in the header, none first": ('{"alg":"none","alg":"ES256","kid":"good"}',
                                            '{"iss":"%s","exp":%d}' % (ISSUER, NOW + 3600)),
}


@pytest.mark.parametrize("case", list(DUPLICATES), ids=list(DUPLICATES))
def test_duplicate_json_keys_are_invalid_json_as_in_jwt_authn(envoy, case):
    """jwt_authn (protobuf's JSON parser) refuses a header or payload with a repeated member:
    `Jwt payload is an invalid JSON` / `Jwt header is an invalid JSON`. (This filter took the
    last one before, so it and an upstream reading the forwarded token or payload header with a
    first-wins parser, gjson for one, could disagree on `iss`/`exp`/`sub`.)"""
    ours, native = pair(envoy)
    same(ours, native, bearer(signed(*DUPLICATES[case])))


# --------------------------------------------------------------------------- EC JWK fields


def ec_sig_token(key, alg: str) -> str:
    """A token whose header says `alg`, signed by `key` with alg's hash, r||s at the key's size."""
    si = f"{b64json({'alg': alg, 'kid': 't'})}.{b64json(claims(iss=ISSUER, sub='x'))}"
    h = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]
    r, s = decode_dss_signature(key.private.sign(si.encode(), ec.ECDSA(h())))
    size = {"ES256": 32, "ES384": 48, "ES512": 66}[key.alg]
    return f"{si}.{b64url(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


def jwk(key, **fields):
    out = key.jwk(with_alg=False, with_kid=False)
    out["kid"] = "t"
    for k, v in fields.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def test_an_ec_jwk_whose_alg_and_crv_disagree_is_dropped_as_in_jwt_authn(envoy):
    """jwt_verify_lib drops `{kty: EC, alg: ES256, crv: P-384}` (JwksECKeyAlgNotCompatibleWithCrv),
    so its kid finds no key."""
    k384 = generate("ES384")
    ours, native = pair(envoy, jwk(k384, alg="ES256"))
    same(ours, native, bearer(ec_sig_token(k384, "ES256")))


@pytest.mark.parametrize("fields", [{"alg": "ES256", "crv": None}, {"crv": None}],
                         ids=["alg-without-crv", "neither-alg-nor-crv"])
def test_an_ec_jwk_without_crv_is_read_as_jwt_authn_reads_it(envoy, fields):
    """jwt_verify_lib takes the curve from `alg`, or P-256 when neither is set."""
    k256 = generate("ES256")
    ours, native = pair(envoy, jwk(k256, **fields))
    same(ours, native, bearer(mint(k256, claims(iss=ISSUER, sub="x"), kid="t")))


@pytest.mark.parametrize("field", ["kid", "alg"])
def test_a_jwk_with_a_non_string_kid_or_alg_is_kept_as_in_jwt_authn(envoy, field):
    k256 = generate("ES256")
    ours, native = pair(envoy, {**jwk(k256), field: 5})
    same(ours, native, bearer(mint(k256, claims(iss=ISSUER, sub="x"), kid="t")))


# --------------------------------------------------------------------------- extraction


def test_a_dot_before_the_token_is_skipped_as_spec_and_jwt_authn_say(envoy):
    """SPEC §1: the token starts at the first base64url character after the prefix (`.` is not
    one); jwt_authn accepts `Bearer .<token>`."""
    ours, native = pair(envoy)
    token = mint(GOOD, claims(iss=ISSUER, sub="x"))
    same(ours, native, {"Authorization": f"Bearer .{token}"})


# --------------------------------------------------------------------------- JSON nesting


@pytest.mark.parametrize("depth", [99, 100, 120])
def test_json_nesting_limit_is_jwt_authns(envoy, depth):
    """jwt_authn's JSON parser refuses a payload whose object holds arrays nested 100 deep (101
    levels); 99 pass. (This filter allowed serde_json's 128 before.)"""
    ours, native = pair(envoy)
    payload = '{"iss":"%s","x":%s}' % (ISSUER, "[" * depth + "]" * depth)
    same(ours, native, bearer(signed(H, payload)))
