#!/usr/bin/env python3
"""Writes tests/fixtures/tokens.json: the one table of named keys and tokens the Rust unit tests
use. Tokens are signed here, by Python's `cryptography`, so the Rust verifier is checked against
an independent implementation. Run with the project venv: `.venv/bin/python scripts/make-fixtures.py`.
Times are fixed: iat 1700000000, exp 4102444800 (2100-01-01), so the fixtures never expire."""
# Keys are fresh on every run, so a run rewrites every token. `--add-pss-salts` adds only the PS*
# tokens with other salt lengths (and their key `rsa_pss`) to the existing file, leaving the rest
# byte-identical (how they were added).
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "e2e"))
import jwtmint as m  # noqa: E402

IAT, EXP = 1_700_000_000, 4_102_444_800
PAYLOAD = {"iss": "https://issuer.example", "sub": "dev1", "aud": "api.example", "iat": IAT, "exp": EXP,
           "org": "solo.io", "email": "dev1@solo.io", "groups": ["dev", "ops"], "level": 3,
           "realm": {"roles": ["reader", "writer"], "tier": {"name": "gold"}}, "admin": False,
           "scope": "read write"}

FIXTURES = pathlib.Path(__file__).resolve().parent.parent.joinpath("tests/fixtures/tokens.json")


def add_key(out, name, key):
    entry = {"jwk": key.jwk(with_alg=False)}
    if key.secret is None:
        entry["pem"] = key.public_pem()
    out["keys"][name] = entry


def add(out, name, token, note):
    header, payload = (None, None)
    try:
        header, payload = m.segments(token)
    except Exception:
        pass
    out["tokens"][name] = {"token": token, "note": note, "header": header, "payload": payload}


def add_pss_salts(out):
    """PS* tokens with a salt other than the hash length: the longest (Python cryptography's
    `PSS.MAX_LENGTH`, which some issuers use) and none. RFC 7518 asks for the hash length;
    BoringSSL, so jwt_authn, accepts any length."""
    key = m.generate("PS256", kid="rsa-pss-1")
    add_key(out, "rsa_pss", key)
    for alg in ("PS256", "PS384", "PS512"):
        for salt, label in (("max", "max"), (0, "0")):
            add(out, f"{alg}_salt_{label}", m.mint(key, dict(PAYLOAD), alg=alg, pss_salt=salt),
                f"{alg} signed by key rsa_pss, kid rsa-pss-1, salt length {'PSS.MAX_LENGTH' if salt == 'max' else 0}")


if "--add-pss-salts" in sys.argv[1:]:
    existing = json.loads(FIXTURES.read_text())
    add_pss_salts(existing)
    FIXTURES.write_text(json.dumps(existing, indent=1) + "\n")
    print("added the PS* salt-length tokens to tests/fixtures/tokens.json")
    sys.exit(0)

keys = {
    "rsa": m.generate("RS256", kid="rsa-1"),
    "rsa_other": m.generate("RS256", kid="rsa-1"),
    "ec256": m.generate("ES256", kid="ec256-1"),
    "ec384": m.generate("ES384", kid="ec384-1"),
    "ec521": m.generate("ES512", kid="ec521-1"),
    "ed25519": m.generate("EdDSA", kid="ed-1"),
    "hmac": m.hmac_key(b"a-demo-hmac-secret-of-32-bytes!!", "HS256", kid="hs-1"),
}
out = {"about": __doc__, "keys": {}, "tokens": {}}
for name, key in keys.items():
    add_key(out, name, key)


for alg, key in [("RS256", "rsa"), ("RS384", "rsa"), ("RS512", "rsa"), ("PS256", "rsa"), ("PS384", "rsa"),
                 ("PS512", "rsa"), ("ES256", "ec256"), ("ES384", "ec384"), ("ES512", "ec521"),
                 ("EdDSA", "ed25519"), ("HS256", "hmac"), ("HS384", "hmac"), ("HS512", "hmac")]:
    add(out, alg, m.mint(keys[key], dict(PAYLOAD), alg=alg), f"{alg} signed by key {key}, kid {keys[key].kid}")
add(out, "Ed25519_alg_name", m.mint(keys["ed25519"], dict(PAYLOAD), alg="Ed25519"), "EdDSA signature, alg written Ed25519 (RFC 9864)")
add(out, "RS256_no_kid", m.mint(keys["rsa"], dict(PAYLOAD), kid=None), "RS256 by rsa, no kid")
add(out, "RS256_unknown_kid", m.mint(keys["rsa"], dict(PAYLOAD), kid="nope"), "RS256 by rsa, kid nope")
add(out, "RS256_other_key", m.mint(keys["rsa_other"], dict(PAYLOAD)), "RS256 by rsa_other (same kid rsa-1)")
add(out, "RS256_tampered", m.tamper_signature(m.mint(keys["rsa"], dict(PAYLOAD))), "RS256 by rsa, one signature bit flipped")
add(out, "alg_none", m.mint_unsigned({"alg": "none", "typ": "JWT"}, dict(PAYLOAD), "sig"), "alg none")
add(out, "HS256_rsa_pem_secret", m.mint_hmac(keys["rsa"].public_pem().encode(), dict(PAYLOAD), kid=None),
    "HS256 MAC keyed with the rsa public PEM (algorithm confusion)")
add(out, "ES256_signed_as_ES384_curve", m.mint(keys["ec384"], dict(PAYLOAD), alg="ES256", sign_alg="ES384", kid=None),
    "header ES256, signed by the P-384 key")
add(out, "RS256_no_claims", m.mint(keys["rsa"], {"iss": "https://issuer.example", "exp": EXP}), "RS256, only iss and exp")
add_pss_salts(out)
FIXTURES.write_text(json.dumps(out, indent=1) + "\n")
print("wrote tests/fixtures/tokens.json")
