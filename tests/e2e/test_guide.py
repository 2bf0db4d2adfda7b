"""The Gloo Mesh guide's walkthrough, through a real Envoy, exactly as a user follows it.

The policy is policies/dev-example.yaml (the guide's JWTPolicy, inline demo key);
the token is policies/demo-keys/demo-token.jwt.  Both Envoy configurations a user
meets are exercised: envoy/demo.yaml as shipped (`make run`), and the policy JSON
file booted on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import harness
from jwtmint import b64url_decode, segments, tamper_signature
from support import (DEV_EXAMPLE_JSON, DEV_EXAMPLE_YAML, MISSING, VERIFICATION_FAILS, assert_denied,
                     assert_passed, demo_token)

DEMO_YAML = harness.REPO / "envoy" / "demo.yaml"
PUBLIC_PEM = harness.REPO / "policies" / "demo-keys" / "demo-public-key.pem"


def demo_filter_config(bootstrap: dict) -> dict:
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["http_filters"][0]["typed_config"]["config"]


def demo_bootstrap() -> dict:
    """envoy/demo.yaml with its fixed ports and relative wasm path made test-safe."""
    bootstrap = yaml.safe_load(DEMO_YAML.read_text())
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0
    listener = bootstrap["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 0
    cluster = bootstrap["static_resources"]["clusters"][0]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"]["port_value"] = harness.upstream_port()
    demo_filter_config(bootstrap)["vm_config"]["code"]["local"]["filename"] = harness.wasm_path()
    return bootstrap


@pytest.fixture(scope="module", params=["envoy/demo.yaml", "policies/dev-example.json"])
def guide(request, upstream):
    if request.param == "envoy/demo.yaml":
        envoy = harness.boot(None, bootstrap=demo_bootstrap(), name="demo")
    else:
        envoy = harness.boot(DEV_EXAMPLE_JSON.read_text(), name="dev-example")
    with envoy:
        yield envoy


# --------------------------------------------------------------------------- the walkthrough


def test_step3_no_token_is_denied_with_jwt_is_missing(guide):
    resp = guide.get("/get")
    assert_denied(resp, MISSING, path="/get")
    assert resp.headers["www-authenticate"] == 'Bearer realm="http://www.example.com/get"'


def test_step3_realm_names_host_and_path_without_query(guide):
    resp = guide.get("/status/200?show_env=1", host="httpbin.httpbin:8000")
    assert_denied(resp, MISSING, path="/status/200", host="httpbin.httpbin:8000")


def test_step4_demo_token_carries_the_guide_claims():
    header, payload = segments(demo_token())
    assert header == {"alg": "RS256", "typ": "JWT"}
    assert payload["iss"] == "https://dev.example.com"
    assert (payload["sub"], payload["org"], payload["email"]) == ("dev1", "solo.io", "dev1@solo.io")
    assert payload["exp"] == 4102444800


def test_step6_token_in_auth_token_query_param_is_accepted(guide):
    echo = assert_passed(guide.get(f"/get?auth_token={demo_token()}"))
    assert echo.header("X-Org") == ["solo.io"]
    assert echo.header("X-Email") == ["dev1@solo.io"]
    assert echo.url == "/get"
    assert echo.args == {}


def test_step6_other_query_params_are_forwarded_without_the_token(guide):
    echo = assert_passed(guide.get(f"/anything?a=1&auth_token={demo_token()}&b=two"))
    assert echo.args == {"a": ["1"], "b": ["two"]}
    assert echo.url == "/anything?a=1&b=two"
    assert echo.header("X-Org") == ["solo.io"]


def test_token_in_x_auth_bearer_header_is_accepted_and_not_forwarded(guide):
    echo = assert_passed(guide.get("/get", headers={"X-Auth": f"Bearer {demo_token()}"}))
    assert echo.header("X-Org") == ["solo.io"]
    assert echo.header("X-Email") == ["dev1@solo.io"]
    assert not echo.has("X-Auth")


def test_both_locations_with_valid_tokens_are_accepted(guide):
    token = demo_token()
    echo = assert_passed(guide.get(f"/get?auth_token={token}", headers={"X-Auth": f"Bearer {token}"}))
    assert not echo.has("X-Auth") and echo.url == "/get"


def test_both_locations_must_be_valid(guide):
    token = demo_token()
    resp = guide.get(f"/get?auth_token={token}", headers={"X-Auth": f"Bearer {tamper_signature(token)}"})
    assert_denied(resp, VERIFICATION_FAILS)
    resp = guide.get(f"/get?auth_token={tamper_signature(token)}", headers={"X-Auth": f"Bearer {token}"})
    assert_denied(resp, VERIFICATION_FAILS)


def test_x_auth_without_bearer_prefix_holds_no_token(guide):
    assert_denied(guide.get("/get", headers={"X-Auth": demo_token()}), MISSING)


def test_default_authorization_header_is_not_a_configured_location(guide):
    assert_denied(guide.get("/get", headers={"Authorization": f"Bearer {demo_token()}"}), MISSING)


def test_incoming_claim_headers_are_removed_although_the_guide_appends(guide):
    """The guide's claimsToHeaders use append: true, yet a client's X-Org / X-Email never reach
    the upstream (they used to stay in front of the claim's value: `acme,solo.io`)."""
    sent = {"X-Auth": f"Bearer {demo_token()}", "X-Org": "acme", "X-Email": "root@acme.example"}
    echo = assert_passed(guide.get("/get", headers=sent))
    assert echo.header("X-Org") == ["solo.io"] and echo.header("X-Email") == ["dev1@solo.io"]
    assert_denied(guide.get("/get", headers={"X-Org": "acme"}), MISSING)


# --------------------------------------------------------------------------- shipped files in sync


def test_demo_yaml_embeds_the_dev_example_policy():
    policy = yaml.safe_load(DEV_EXAMPLE_YAML.read_text())
    embedded = json.loads(demo_filter_config(yaml.safe_load(DEMO_YAML.read_text()))["configuration"]["value"])
    assert embedded == policy
    assert json.loads(DEV_EXAMPLE_JSON.read_text()) == policy


def test_dev_example_is_the_guide_policy():
    policy = yaml.safe_load(DEV_EXAMPLE_YAML.read_text())
    assert (policy["apiVersion"], policy["kind"]) == ("security.policy.gloo.solo.io/v2", "JWTPolicy")
    assert policy["metadata"] == {"name": "jwt-policy", "namespace": "httpbin"}
    assert policy["spec"]["applyToRoutes"] == [{"route": {"labels": {"route": "httpbin"}}}]
    provider = policy["spec"]["config"]["providers"]["dev-example"]
    assert provider["issuer"] == "https://dev.example.com"
    assert provider["local"]["inline"].strip() == PUBLIC_PEM.read_text().strip()
    assert provider["tokenSource"] == {"headers": [{"name": "X-Auth", "prefix": "Bearer "}],
                                       "queryParams": ["auth_token"]}
    assert provider["claimsToHeaders"] == [
        {"claim": "org", "header": "x-org", "append": True},
        {"claim": "email", "header": "x-email", "append": True},
    ]


def test_demo_yaml_routes_the_labelled_route_to_the_echo_upstream():
    bootstrap = yaml.safe_load(DEMO_YAML.read_text())
    assert bootstrap["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    listener = bootstrap["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["name"] == "httpbin-mesh"
    assert route["metadata"]["filter_metadata"]["jwt_policy"]["labels"] == {"route": "httpbin"}
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    config = demo_filter_config(bootstrap)
    assert (config["root_id"], config["vm_config"]["runtime"]) == ("jwt_policy_filter", "envoy.wasm.runtime.v8")
    assert config["vm_config"]["code"]["local"]["filename"] == "target/wasm32-wasip1/release/jwt_policy_filter.wasm"


def test_demo_token_signature_matches_the_shipped_public_key():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    head, payload, sig = demo_token().split(".")
    key = serialization.load_pem_public_key(PUBLIC_PEM.read_bytes())
    key.verify(b64url_decode(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    private = serialization.load_pem_private_key(
        (Path(PUBLIC_PEM).parent / "demo-private-key.pem").read_bytes(), password=None)
    assert private.public_key().public_numbers() == key.public_numbers()
