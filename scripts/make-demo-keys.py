#!/usr/bin/env python3
"""Make the DEMO-ONLY key pair and token, and render the demo configs from them.

    .venv/bin/python scripts/make-demo-keys.py            # keys kept if present; configs re-rendered
    .venv/bin/python scripts/make-demo-keys.py --new-keys # new key pair and token (then commit them)
    .venv/bin/python scripts/make-demo-keys.py --new-token

Writes:
  policies/demo-keys/demo-private-key.pem   RSA 2048, PKCS#8 (DEMO ONLY, it is public)
  policies/demo-keys/demo-public-key.pem    SubjectPublicKeyInfo
  policies/demo-keys/demo-token.jwt         RS256, iss https://dev.example.com, exp 2100-01-01
  policies/dev-example.yaml                 the guide's JWTPolicy resource (inline public key)
  policies/dev-example.json                 the same as JSON (what Envoy's StringValue takes)
  policies/dev-example-istio.yaml           the same, selecting the VirtualService route by name
  envoy/demo.yaml                           static Envoy config embedding dev-example.json
  policies/dev-example-remote.yaml          the same policy with `remote` keys instead of `local`
  policies/dev-example-remote.json          (url http://127.0.0.1:8082/.well-known/jwks.json, cluster jwks)
  envoy/demo-remote.yaml                    Envoy embedding dev-example-remote.json, with a second
                                            listener on 127.0.0.1:8082 serving the demo JWKS

The configs are generated, so they always stay in sync; edit this script, not them.
Needs the `cryptography` package (`make envoy` installs it into .venv).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REPO = Path(__file__).resolve().parent.parent
KEYS = REPO / "policies" / "demo-keys"
PRIVATE = KEYS / "demo-private-key.pem"
PUBLIC = KEYS / "demo-public-key.pem"
TOKEN = KEYS / "demo-token.jwt"
POLICY_YAML = REPO / "policies" / "dev-example.yaml"
POLICY_JSON = REPO / "policies" / "dev-example.json"
ENVOY_DEMO = REPO / "envoy" / "demo.yaml"
POLICY_ISTIO_YAML = REPO / "policies" / "dev-example-istio.yaml"
POLICY_REMOTE_YAML = REPO / "policies" / "dev-example-remote.yaml"
POLICY_REMOTE_JSON = REPO / "policies" / "dev-example-remote.json"
ENVOY_DEMO_REMOTE = REPO / "envoy" / "demo-remote.yaml"

ISSUER = "https://dev.example.com"
WASM = "target/wasm32-wasip1/release/jwt_policy_filter.wasm"
JWKS_PORT = 8082
JWKS_PATH = "/.well-known/jwks.json"
JWKS_URL = f"http://127.0.0.1:{JWKS_PORT}{JWKS_PATH}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key_pair() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    PRIVATE.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    PUBLIC.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def new_token() -> None:
    key = serialization.load_pem_private_key(PRIVATE.read_bytes(), password=None)
    header = {"alg": "RS256", "typ": "JWT"}
    payload = {"iss": ISSUER, "sub": "dev1", "org": "solo.io", "email": "dev1@solo.io",
               "exp": 4102444800, "iat": int(time.time())}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode())
                             for part in (header, payload))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    TOKEN.write_text(f"{signing_input}.{b64url(signature)}\n")


def policy(public_pem: str, remote: dict | None = None) -> dict:
    """The guide's JWTPolicy, as a Kubernetes resource (``remote``: keys from a JWKS URL instead)."""
    keys = {"remote": remote} if remote is not None else {"local": {"inline": public_pem}}
    return {
        "apiVersion": "security.policy.gloo.solo.io/v2",
        "kind": "JWTPolicy",
        "metadata": {"name": "jwt-policy", "namespace": "httpbin"},
        "spec": {
            "applyToRoutes": [{"route": {"labels": {"route": "httpbin"}}}],
            "config": {
                "phase": {"preAuthz": {}},
                "providers": {
                    "dev-example": {
                        "issuer": ISSUER,
                        **keys,
                        "tokenSource": {
                            "headers": [{"name": "X-Auth", "prefix": "Bearer "}],
                            "queryParams": ["auth_token"],
                        },
                        "claimsToHeaders": [
                            {"claim": "org", "header": "x-org", "append": True},
                            {"claim": "email", "header": "x-email", "append": True},
                        ],
                    }
                },
            },
        },
    }


def policy_yaml(public_pem: str) -> str:
    pem = "\n".join("            " + line for line in public_pem.splitlines())
    return f"""\
# The JWTPolicy of the Gloo Mesh guide "Configure JWT policies", unchanged.
# The inline key is the DEMO-ONLY public key of policies/demo-keys/; the demo
# token policies/demo-keys/demo-token.jwt passes it.
# Generated by scripts/make-demo-keys.py (with dev-example.json and envoy/demo.yaml).
apiVersion: security.policy.gloo.solo.io/v2
kind: JWTPolicy
metadata:
  name: jwt-policy
  namespace: httpbin
spec:
  applyToRoutes:
  - route:
      labels:
        route: httpbin
  config:
    phase:
      preAuthz: {{}}
    providers:
      dev-example:
        issuer: "{ISSUER}"
        local:
          inline: |-
{pem}
        tokenSource:
          headers:
          - name: X-Auth
            prefix: "Bearer "
          queryParams:
          - auth_token
        claimsToHeaders:
        - claim: org
          header: x-org
          append: true
        - claim: email
          header: x-email
          append: true
"""


def policy_istio_yaml(public_pem: str) -> str:
    """The guide's policy for Istio: Istio carries no route labels into Envoy (the filter refuses a
    label selector there), so it selects the VirtualService http route by name instead."""
    text = policy_yaml(public_pem)
    head, body = text.split("apiVersion:", 1)
    labels = "  - route:\n      labels:\n        route: httpbin\n"
    assert labels in body
    return ("""\
# The JWTPolicy of the Gloo Mesh guide "Configure JWT policies", for Istio: the guide selects its
# route by the label `route: httpbin`, which Istio cannot carry into Envoy, so this one selects the
# VirtualService http route `httpbin-mesh` (istio/virtualservice.yaml) by name. Otherwise unchanged.
# The inline key is the DEMO-ONLY public key of policies/demo-keys/.
# Generated by scripts/make-demo-keys.py.
apiVersion:""" + body.replace(labels, "  - route:\n      name: httpbin-mesh\n"))


def envoy_demo_yaml(policy_json: str) -> str:
    assert "'" not in policy_json
    return f"""\
# Envoy running the jwt-policy-filter with the guide's JWTPolicy (policies/dev-example.json).
#   make run     # builds the wasm, starts the echo upstream on :8081 and this Envoy on :8080
# Run Envoy from the repository root: the wasm path below is relative to it.
# Generated by scripts/make-demo-keys.py: keep the embedded policy equal to policies/dev-example.yaml.
admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
  - name: main
    address:
      socket_address: {{address: 127.0.0.1, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: httpbin
              domains: ["*"]
              routes:
              - name: httpbin-mesh
                match: {{prefix: "/"}}
                route: {{cluster: httpbin}}
                metadata:
                  filter_metadata:
                    jwt_policy:
                      labels: {{route: httpbin}}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: jwt_policy
                root_id: jwt_policy_filter
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{policy_json}'
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: {WASM}}}}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: httpbin
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: httpbin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: 8081}}
"""


def demo_jwk(public_pem: str) -> dict:
    """The demo public key as a JWK; its kid is the RFC 7638 thumbprint (stable for the key)."""
    numbers = serialization.load_pem_public_key(public_pem.encode()).public_numbers()

    def b64int(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    n, e = b64int(numbers.n), b64int(numbers.e)
    thumbprint = hashes.Hash(hashes.SHA256())
    thumbprint.update(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode())
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": b64url(thumbprint.finalize()), "n": n, "e": e}


def remote_keys() -> dict:
    return {"url": JWKS_URL, "cluster": "jwks"}


def policy_remote_yaml() -> str:
    remote = remote_keys()
    return f"""\
# The JWTPolicy of the Gloo Mesh guide "Configure JWT policies", with the keys fetched
# from a remote JWKS instead of the inline key.  The JWKS is the DEMO-ONLY public key of
# policies/demo-keys/, served by envoy/demo-remote.yaml itself (its second listener,
# 127.0.0.1:{JWKS_PORT}, reached through the Envoy cluster `jwks`); `make run-remote` starts it.
# The demo token policies/demo-keys/demo-token.jwt passes it (it has no kid: any key may verify it).
# Generated by scripts/make-demo-keys.py (with dev-example-remote.json and envoy/demo-remote.yaml).
apiVersion: security.policy.gloo.solo.io/v2
kind: JWTPolicy
metadata:
  name: jwt-policy
  namespace: httpbin
spec:
  applyToRoutes:
  - route:
      labels:
        route: httpbin
  config:
    phase:
      preAuthz: {{}}
    providers:
      dev-example:
        issuer: "{ISSUER}"
        remote:
          url: "{remote["url"]}"
          cluster: {remote["cluster"]}
        tokenSource:
          headers:
          - name: X-Auth
            prefix: "Bearer "
          queryParams:
          - auth_token
        claimsToHeaders:
        - claim: org
          header: x-org
          append: true
        - claim: email
          header: x-email
          append: true
"""


def envoy_demo_remote_yaml(policy_json: str, jwks_json: str) -> str:
    assert "'" not in policy_json and "'" not in jwks_json
    return f"""\
# Envoy running the jwt-policy-filter with the guide's JWTPolicy, keys from a remote JWKS
# (policies/dev-example-remote.json).
#   make run-remote   # builds the wasm, starts the echo upstream on :8081 and this Envoy on :8080
# The second listener (127.0.0.1:{JWKS_PORT}) plays the identity provider: it answers
# GET {JWKS_PATH} with the demo public key as a JWKS (direct_response); the filter fetches it
# through the cluster `jwks`, which points back at that listener.
# Run Envoy from the repository root: the wasm path below is relative to it.
# Generated by scripts/make-demo-keys.py: keep the embedded policy equal to policies/dev-example-remote.yaml.
admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
  - name: main
    address:
      socket_address: {{address: 127.0.0.1, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: httpbin
              domains: ["*"]
              routes:
              - name: httpbin-mesh
                match: {{prefix: "/"}}
                route: {{cluster: httpbin}}
                metadata:
                  filter_metadata:
                    jwt_policy:
                      labels: {{route: httpbin}}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: jwt_policy
                root_id: jwt_policy_filter
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{policy_json}'
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: {WASM}}}}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - name: jwks
    address:
      socket_address: {{address: 127.0.0.1, port_value: {JWKS_PORT}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: jwks
          codec_type: AUTO
          route_config:
            name: jwks_route
            virtual_hosts:
            - name: jwks
              domains: ["*"]
              routes:
              - name: jwks-document
                match: {{path: "{JWKS_PATH}"}}
                direct_response:
                  status: 200
                  body:
                    inline_string: '{jwks_json}'
                response_headers_to_add:
                - header: {{key: content-type, value: application/json}}
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: httpbin
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: httpbin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: 8081}}
  - name: jwks
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: jwks
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {JWKS_PORT}}}
"""


def render_configs() -> None:
    public_pem = PUBLIC.read_text().strip()
    resource = policy(public_pem)
    POLICY_YAML.write_text(policy_yaml(public_pem))
    POLICY_ISTIO_YAML.write_text(policy_istio_yaml(public_pem))
    POLICY_JSON.write_text(json.dumps(resource, indent=2) + "\n")
    ENVOY_DEMO.parent.mkdir(parents=True, exist_ok=True)
    ENVOY_DEMO.write_text(envoy_demo_yaml(json.dumps(resource, separators=(",", ":"))))
    remote = policy(public_pem, remote_keys())
    jwks_doc = {"keys": [demo_jwk(public_pem)]}
    POLICY_REMOTE_YAML.write_text(policy_remote_yaml())
    POLICY_REMOTE_JSON.write_text(json.dumps(remote, indent=2) + "\n")
    ENVOY_DEMO_REMOTE.write_text(envoy_demo_remote_yaml(json.dumps(remote, separators=(",", ":")),
                                                        json.dumps(jwks_doc, separators=(",", ":"))))
    try:
        import yaml
    except ImportError:
        return
    assert yaml.safe_load(POLICY_YAML.read_text()) == resource, "dev-example.yaml does not round-trip"
    demo = yaml.safe_load(ENVOY_DEMO.read_text())
    hcm = demo["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    value = hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
    assert json.loads(value) == resource, "envoy/demo.yaml does not embed the policy"
    assert yaml.safe_load(POLICY_REMOTE_YAML.read_text()) == remote, "dev-example-remote.yaml does not round-trip"
    demo = yaml.safe_load(ENVOY_DEMO_REMOTE.read_text())
    main, jwks_listener = demo["static_resources"]["listeners"]
    hcm = main["filter_chains"][0]["filters"][0]["typed_config"]
    value = hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
    assert json.loads(value) == remote, "envoy/demo-remote.yaml does not embed the remote policy"
    route = jwks_listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    body = route["routes"][0]["direct_response"]["body"]["inline_string"]
    assert json.loads(body) == jwks_doc, "envoy/demo-remote.yaml does not serve the demo JWKS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-keys", action="store_true", help="replace the key pair (and the token)")
    parser.add_argument("--new-token", action="store_true", help="sign a new demo token")
    args = parser.parse_args()
    KEYS.mkdir(parents=True, exist_ok=True)
    if args.new_keys or not (PRIVATE.exists() and PUBLIC.exists()):
        new_key_pair()
        print(f"wrote {PRIVATE.relative_to(REPO)} and {PUBLIC.relative_to(REPO)}")
        args.new_token = True
    if args.new_token or not TOKEN.exists():
        new_token()
        print(f"wrote {TOKEN.relative_to(REPO)}")
    render_configs()
    print("rendered " + ", ".join(str(p.relative_to(REPO)) for p in (
        POLICY_YAML, POLICY_ISTIO_YAML, POLICY_JSON, ENVOY_DEMO, POLICY_REMOTE_YAML, POLICY_REMOTE_JSON, ENVOY_DEMO_REMOTE)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
