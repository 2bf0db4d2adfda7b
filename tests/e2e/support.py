"""Small builders and assertions shared by the end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import DEFAULT_HOST, REPO, Response
from jwtmint import Key, jwks

ISSUER = "https://issuer.example.com"
OTHER_ISSUER = "https://other.example.com"

# SPEC §3 status strings.
MISSING = "Jwt is missing"
BAD_FORMAT = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
HEADER_BAD_B64 = "Jwt header is an invalid Base64url encoded"
HEADER_BAD_JSON = "Jwt header is an invalid JSON"
ALG_MISSING = "Jwt header [alg] field is required and must be a string"
ALG_UNSUPPORTED = "Jwt header [alg] is not supported"
PAYLOAD_BAD_B64 = "Jwt payload is an invalid Base64url encoded"
PAYLOAD_BAD_JSON = "Jwt payload is an invalid JSON"
SIGNATURE_BAD_B64 = "Jwt signature is an invalid Base64url encoded"
UNKNOWN_ISSUER = "Jwt issuer is not configured"
EXPIRED = "Jwt is expired"
NOT_YET_VALID = "Jwt not yet valid"
BAD_AUDIENCE = "Audiences in Jwt are not allowed"
VERIFICATION_FAILS = "Jwt verification fails"
NO_MATCHING_KEY = "Jwks doesn't have key to match kid or alg from Jwt"
NO_VALID_KEY = "Jwks doesn't have any valid public key"
REMOTE_FETCH_FAILED = "Jwks remote fetch is failed"

DEMO_TOKEN_PATH = REPO / "policies" / "demo-keys" / "demo-token.jwt"
DEV_EXAMPLE_JSON = REPO / "policies" / "dev-example.json"
DEV_EXAMPLE_YAML = REPO / "policies" / "dev-example.yaml"
CONFORMANCE = REPO.parent / "shared" / "conformance" / "jwt_verify_lib_vectors.json"


def provider(key: Key | str, **fields: Any) -> dict:
    """A provider with a local inline key: a Key (its PEM, or a JWKS for HMAC keys) or a string."""
    if isinstance(key, Key):
        inline = jwks(key) if key.secret is not None else key.public_pem()
    else:
        inline = key
    return {"local": {"inline": inline}, **fields}


def spec(*providers: dict, providers_by_name: dict | None = None, **config: Any) -> dict:
    """A policy ``spec`` (configuration shape 1) with these providers (named p0, p1, ...)."""
    named = dict(providers_by_name or {})
    named.update({f"p{i}": p for i, p in enumerate(providers)})
    return {"config": {"providers": named, **config}}


def bearer(token: str, header: str = "Authorization") -> dict:
    return {header: f"Bearer {token}"}


def realm(path: str = "/get", host: str = DEFAULT_HOST) -> str:
    return f'Bearer realm="http://{host}{path.split("?", 1)[0]}"'


def assert_denied(resp: Response, body: str, status: int | None = None, path: str = "/get",
                  host: str = DEFAULT_HOST) -> None:
    """A local reply of the filter: status, body, content type and www-authenticate."""
    if status is None:
        status = 403 if body == BAD_AUDIENCE else 401
    assert (resp.status, resp.body) == (status, body), resp
    assert resp.headers.get("content-type") == "text/plain", resp
    expected = realm(path, host) + ("" if body == MISSING else ', error="invalid_token"')
    assert resp.headers.get("www-authenticate") == expected, resp


def assert_passed(resp: Response) -> Any:
    """The request reached the upstream; returns the echo of it."""
    assert resp.status == 200, resp
    return resp.echo()


def demo_token() -> str:
    return DEMO_TOKEN_PATH.read_text().strip()


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
