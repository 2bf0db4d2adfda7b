"""jwt_verify_lib's JWKS x token vectors against the oracle: Envoy 1.40's native jwt_authn.

Each vector's JWKS is one provider (no issuer, no audiences, default token location
``Authorization: Bearer``); the filter must answer the oracle's status, and for a
denial the oracle's body.  One Envoy per distinct JWKS.
"""

from __future__ import annotations

import json

import pytest

from support import CONFORMANCE, assert_denied, assert_passed, bearer

VECTORS = json.loads(CONFORMANCE.read_text())["vectors"] if CONFORMANCE.exists() else []
VECTORS.sort(key=lambda v: v["jwks_name"])  # consecutive vectors share one Envoy


def vector_id(vector: dict) -> str:
    return f"{vector['jwks_name']}-{vector['token_name']}"


@pytest.mark.skipif(not VECTORS, reason=f"{CONFORMANCE} not found")
@pytest.mark.parametrize("vector", VECTORS, ids=[vector_id(v) for v in VECTORS])
def test_vector_matches_envoy_jwt_authn(envoy, vector):
    proxy = envoy({"config": {"providers": {vector["jwks_name"]: {"local": {"inline": vector["jwks"]}}}}})
    resp = proxy.get("/get", headers=bearer(vector["token"]))
    if vector["oracle_status"] == 200:
        echo = assert_passed(resp)
        assert not echo.has("Authorization")
    else:
        assert_denied(resp, vector["oracle_body"], status=vector["oracle_status"])


def test_conformance_vectors_are_present():
    assert CONFORMANCE.exists(), f"expected the shared conformance vectors at {CONFORMANCE}"
    assert len(VECTORS) >= 30
