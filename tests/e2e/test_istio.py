"""Istio integration: the manifests of istio/, configured in Envoy the way Istio configures it.

What Istio does with a `WasmPlugin` (istio/istio pilot/pkg/model/extensions.go, istio-agent pkg/wasm):
the listener's HTTP filter chain gets a filter named `<namespace>.<name>` whose config arrives by ECDS
(`config_discovery`); the config is an `envoy.extensions.filters.http.wasm.v3.Wasm` whose
`PluginConfig` has `name: <namespace>.<name>`, `root_id: <pluginName>` (empty here), `configuration`:
the pluginConfig as JSON in a `google.protobuf.StringValue`, `vm_config` with the v8 runtime, no
`vm_id` (empty: Envoy keys the VM by the code's hash), the local file istio-agent downloaded, the
`ISTIO_META_WASM_*` environment variables, and `failure_policy: FAIL_CLOSED` for `failStrategy:
FAIL_CLOSE` (Istio >= 1.25; older Istio sets `fail_open: false`, the same thing).  Routes are named
after the VirtualService http route, clusters `outbound|PORT||HOST` / `inbound|PORT||`, and the
node carries the workload's labels and namespace in its metadata.

Here ECDS is served from a file (`path_config_source`) instead of istiod's ADS stream: Envoy runs the
same extension-config machinery, including rejecting a configuration the filter refuses.  Each
scenario reads its pluginConfig straight from the manifest in istio/, so the manifests are what is
tested.  Also here: `jwt-policy render --envoy` output booted as is, `make check-manifests` /
`make check-policies` failing on broken copies, the OCI image layout of scripts/oci-image.py, and
the manifests' policy kept equal to policies/dev-example.yaml.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import ipaddress
import json
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

import harness
from jwtmint import Key, mint, segments, tamper_signature
from support import DEV_EXAMPLE_YAML, MISSING, VERIFICATION_FAILS, assert_denied, assert_passed, demo_token

REPO = harness.REPO
ISTIO = REPO / "istio"
CLI = REPO / "target" / "debug" / "jwt-policy"  # make check-policies builds it (cargo test's profile)
SCHEMA_DIR = REPO / ".cache" / "istio-schema"
PUBLIC_PEM = REPO / "policies" / "demo-keys" / "demo-public-key.pem"
HTTPBIN = "httpbin.httpbin.svc.cluster.local"
HTTPBIN_CLUSTER = f"outbound|8000||{HTTPBIN}"
MESH_HOST = "httpbin.httpbin:8000"  # what a client in the mesh puts in Host (the guide's curl)
ISTIO_WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


# --------------------------------------------------------------------------- the manifests


def manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ISTIO / name).read_text()) if d]


def resource(name: str, kind: str) -> dict:
    found = [d for d in manifests(name) if d["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}, found {len(found)}"
    return found[0]


def envoy_version() -> tuple[int, int]:
    out = subprocess.run([harness.envoy_bin(), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"/(\d+)\.(\d+)\.\d+/", out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


def istio_plugin_config(plugin: dict, *, plugin_config: Any = None) -> dict:
    """The envoy.extensions.wasm.v3.PluginConfig Istio builds for this WasmPlugin (after istio-agent
    replaced the oci:// download with the local file)."""
    meta, spec = plugin["metadata"], plugin["spec"]
    cfg = spec["pluginConfig"] if plugin_config is None else plugin_config
    env = {"ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION": "1"}
    if spec.get("imagePullPolicy"):
        env["ISTIO_META_WASM_IMAGE_PULL_POLICY"] = spec["imagePullPolicy"]
    config: dict[str, Any] = {
        "name": f"{meta['namespace']}.{meta['name']}",
        "root_id": spec.get("pluginName", ""),
        # protojson of a google.protobuf.Struct: compact JSON
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": json.dumps(cfg, separators=(",", ":"))},
        "vm_config": {
            "vm_id": "",
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": harness.wasm_path()}},
            "environment_variables": {"key_values": env},
        },
    }
    fail_open = spec.get("failStrategy", "FAIL_CLOSE") == "FAIL_OPEN"
    if envoy_version() >= (1, 34):
        config["failure_policy"] = "FAIL_OPEN" if fail_open else "FAIL_CLOSED"
    else:  # what Istio < 1.25 sends
        config["fail_open"] = fail_open
    return config


def write_ecds(directory: Path, plugin: dict, **kw: Any) -> tuple[dict, Path]:
    """The ECDS file for this WasmPlugin and the HTTP filter that subscribes to it."""
    name = f"{plugin['metadata']['namespace']}.{plugin['metadata']['name']}"
    path = directory / f"ecds-{name}.json"
    path.write_text(json.dumps({
        "version_info": "1",
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": name,
            "typed_config": {"@type": ISTIO_WASM_TYPE, "config": istio_plugin_config(plugin, **kw)},
        }],
    }))
    http_filter = {
        "name": name,
        "config_discovery": {
            "config_source": {"path_config_source": {"path": str(path)}, "initial_fetch_timeout": "0s",
                              "resource_api_version": "V3"},
            "type_urls": [ISTIO_WASM_TYPE],
        },
    }
    return http_filter, path


def istio_node(namespace: str, app: str) -> dict:
    return {
        "id": f"sidecar~10.0.0.7~{app}-7d4b9c-x2x.{namespace}~{namespace}.svc.cluster.local",
        "cluster": f"{app}.{namespace}",
        "metadata": {
            "NAMESPACE": namespace,
            "WORKLOAD_NAME": app,
            "LABELS": {"app": app, "version": "v1", "service.istio.io/canonical-name": app,
                       "service.istio.io/canonical-revision": "v1"},
        },
    }


def istio_bootstrap(http_filters: list[dict], *, node: dict, route_config: dict, clusters: list[dict]) -> dict:
    """An Istio-shaped Envoy: one HTTP listener (named `main` for the harness), the given chain."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "istio_http",
        "codec_type": "AUTO",
        "route_config": route_config,
        "http_filters": [*http_filters, {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    return {
        "node": node,
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": clusters,
        },
    }


def echo_cluster(name: str, services: list[tuple[str, str]] | None = None) -> dict:
    """A cluster to the echo upstream; ``services``: the `(name, namespace)` Services Istio lists
    in its metadata (`filter_metadata.istio.services`, as on every inbound cluster)."""
    cluster = harness.static_cluster(name, harness.upstream_port())
    if services:
        cluster["metadata"] = {"filter_metadata": {"istio": {"services": [
            {"host": f"{n}.{ns}.svc.cluster.local", "name": n, "namespace": ns} for n, ns in services]}}}
    return cluster


def vs_routes(vs: dict) -> list[dict]:
    """A VirtualService's http routes as Istio translates them (the subset these manifests use)."""
    routes = []
    for http in vs["spec"]["http"]:
        dest = http["route"][0]["destination"]
        cluster = f"outbound|{dest['port']['number']}||{dest['host']}"
        matches = http.get("match") or [{}]
        for m in matches:
            assert "name" not in m, "a named match renames the Envoy route"
            match: dict[str, Any] = {"prefix": "/"}
            headers = []
            for header, string_match in (m.get("headers") or {}).items():
                assert string_match in ({"regex": ".*"}, {"regex": "*"}, {"prefix": ""}), string_match
                headers.append({"name": header, "present_match": True})  # Istio: catch-all -> present
            if headers:
                match["headers"] = headers
            routes.append({
                "name": http["name"],
                "match": match,
                "route": {"cluster": cluster, "timeout": "0s"},
                "metadata": {"filter_metadata": {"istio": {
                    "config": f"/apis/networking.istio.io/v1/namespaces/{vs['metadata']['namespace']}"
                              f"/virtual-service/{vs['metadata']['name']}"}}},
                "decorator": {"operation": f"{dest['host']}:{dest['port']['number']}/*"},
            })
    return routes


# --------------------------------------------------------------------------- scenarios


@pytest.fixture(scope="module")
def ecds_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("istio-ecds")


@pytest.fixture(scope="module")
def mesh_client(upstream, ecds_dir):
    """istio/virtualservice.yaml: a client's sidecar (namespace sleep) calling httpbin through the
    VirtualService routes, with the root-namespace WasmPlugin (mode CLIENT) selecting `httpbin-mesh`."""
    vs = resource("virtualservice.yaml", "VirtualService")
    plugin = resource("virtualservice.yaml", "WasmPlugin")
    wasm_filter, _ = write_ecds(ecds_dir, plugin)
    route_config = {
        "name": "8000",
        "virtual_hosts": [{
            "name": f"{HTTPBIN}:8000",
            "domains": [HTTPBIN, f"{HTTPBIN}:8000", "httpbin.httpbin", MESH_HOST, "httpbin", "httpbin:8000"],
            "routes": vs_routes(vs),
        }],
        "validate_clusters": False,
    }
    bootstrap = istio_bootstrap([wasm_filter], node=istio_node("sleep", "sleep"), route_config=route_config,
                                clusters=[echo_cluster(HTTPBIN_CLUSTER)])
    with harness.boot(None, bootstrap=bootstrap, name="istio-mesh-client") as envoy:
        yield envoy


def mesh_get(envoy, path: str = "/get", headers: dict | None = None, *, route_header: bool = True):
    h = {"X-httpbin-mesh": "true"} if route_header else {}
    h.update(headers or {})
    return envoy.get(path, headers=h, host=MESH_HOST)


def test_vs_route_httpbin_mesh_without_token_is_denied(mesh_client):
    assert_denied(mesh_get(mesh_client), MISSING, host=MESH_HOST)


def test_vs_route_httpbin_mesh_query_token_passes_with_claim_headers(mesh_client):
    echo = assert_passed(mesh_get(mesh_client, f"/get?auth_token={demo_token()}"))
    assert echo.header("X-Org") == ["solo.io"]
    assert echo.header("X-Email") == ["dev1@solo.io"]
    assert echo.url == "/get"  # the token is stripped before httpbin


def test_vs_route_httpbin_mesh_header_token_passes(mesh_client):
    echo = assert_passed(mesh_get(mesh_client, headers={"X-Auth": f"Bearer {demo_token()}"}))
    assert echo.header("X-Org") == ["solo.io"]
    assert not echo.has("X-Auth")


def test_vs_route_httpbin_mesh_tampered_token_is_denied(mesh_client):
    resp = mesh_get(mesh_client, headers={"X-Auth": f"Bearer {tamper_signature(demo_token())}"})
    assert_denied(resp, VERIFICATION_FAILS, host=MESH_HOST)


def test_vs_other_route_is_not_selected(mesh_client):
    """Without X-httpbin-mesh the request takes route `httpbin-default`: the policy selects routes by
    name, so it passes untouched (even with a bad token, which stays in place)."""
    echo = assert_passed(mesh_get(mesh_client, route_header=False))
    assert not echo.has("X-Org")
    bad = tamper_signature(demo_token())
    echo = assert_passed(mesh_get(mesh_client, f"/get?auth_token={bad}", route_header=False))
    assert echo.args["auth_token"] == [bad]


def test_vs_filter_runs_under_istio_names(mesh_client):
    stats = mesh_client.stats("extension_config_discovery.http_filter.istio-system.jwt-policy-routes.")
    assert stats["extension_config_discovery.http_filter.istio-system.jwt-policy-routes.update_success"] == 1
    assert "wasm log istio-system.jwt-policy-routes:" in mesh_client.log_text()


# ---- server side: istio/wasmplugin-sidecar.yaml in httpbin's own sidecar


def server_sidecar(ecds_dir: Path, plugin: dict, *, name: str):
    """httpbin's inbound listener with the WasmPlugin in phase AUTHZ and, after it, the RBAC filter that
    an AuthorizationPolicy `ALLOW when request.headers[x-org] in [solo.io]` becomes."""
    assert plugin["spec"]["phase"] == "AUTHZ" and plugin["spec"]["match"] == [{"mode": "SERVER"}]
    wasm_filter, _ = write_ecds(ecds_dir, plugin)
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"ns[httpbin]-policy[solo-io-only]-rule[0]": {
                "permissions": [{"any": True}],
                "principals": [{"header": {"name": "x-org", "string_match": {"exact": "solo.io"}}}],
            }}},
        },
    }
    route_config = {
        "name": "inbound|8080||",
        "virtual_hosts": [{"name": "inbound|http|8000", "domains": ["*"], "routes": [{
            "name": "default", "match": {"prefix": "/"},
            "route": {"cluster": "inbound|8080||", "timeout": "0s"},
        }]}],
        "validate_clusters": False,
    }
    bootstrap = istio_bootstrap([wasm_filter, rbac], node=istio_node("httpbin", "httpbin"),
                                route_config=route_config, clusters=[echo_cluster("inbound|8080||")])
    return harness.boot(None, bootstrap=bootstrap, name=name)


def with_claim_headers_append(plugin: dict, append: bool) -> dict:
    plugin = copy.deepcopy(plugin)
    plugin["metadata"]["name"] += "-no-append"
    provider = plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["config"]["providers"]["dev-example"]
    for entry in provider["claimsToHeaders"]:
        entry["append"] = append
    return plugin


@pytest.fixture(scope="module")
def httpbin_sidecar(upstream, ecds_dir):
    plugin = resource("wasmplugin-sidecar.yaml", "WasmPlugin")
    with server_sidecar(ecds_dir, plugin, name="istio-httpbin-sidecar") as envoy:
        yield envoy


def demo_signed(**fields: Any) -> str:
    """A token signed by the demo key, with the demo token's claims changed."""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(
        (REPO / "policies" / "demo-keys" / "demo-private-key.pem").read_bytes(), password=None)
    payload = {**segments(demo_token())[1], **fields}
    return mint(Key("RS256", private), payload)


def test_sidecar_inbound_without_token_is_denied(httpbin_sidecar):
    assert_denied(httpbin_sidecar.get("/get", host=MESH_HOST), MISSING, host=MESH_HOST)


def test_sidecar_inbound_token_passes_and_authz_sees_the_claim(httpbin_sidecar):
    """Phase AUTHZ puts the filter before Istio's RBAC: the AuthorizationPolicy on x-org sees the
    header the filter added from the token."""
    echo = assert_passed(httpbin_sidecar.get(f"/get?auth_token={demo_token()}", host=MESH_HOST))
    assert echo.header("X-Org") == ["solo.io"] and echo.header("X-Email") == ["dev1@solo.io"]
    resp = httpbin_sidecar.get(f"/get?auth_token={demo_signed(org='acme')}", host=MESH_HOST)
    assert (resp.status, resp.body) == (403, "RBAC: access denied"), resp


def test_sidecar_append_true_claim_header_cannot_be_spoofed(httpbin_sidecar):
    """The guide's `append: true`: a client-sent x-org is removed before the filter adds the
    claim's value (as jwt_authn sanitizes claim headers), so an AuthorizationPolicy on x-org sees
    only what the token says. (It used to keep the client's value in front of the claim's, and
    Envoy 1.40's RBAC let a token of org acme plus `x-org: solo.io` through.)"""
    resp = httpbin_sidecar.get(f"/get?auth_token={demo_signed(org='acme')}", host=MESH_HOST,
                               headers={"x-org": "solo.io"})
    assert (resp.status, resp.body) == (403, "RBAC: access denied"), resp
    echo = assert_passed(httpbin_sidecar.get(f"/get?auth_token={demo_token()}", host=MESH_HOST,
                                             headers={"x-org": "evil", "x-email": "evil@example.com"}))
    assert echo.header("X-Org") == ["solo.io"] and echo.header("X-Email") == ["dev1@solo.io"]


def test_sidecar_append_false_makes_claim_headers_safe_for_authorization(upstream, ecds_dir):
    """With `append: false` the filter removes client-sent claim headers first: only the token speaks."""
    plugin = with_claim_headers_append(resource("wasmplugin-sidecar.yaml", "WasmPlugin"), False)
    with server_sidecar(ecds_dir, plugin, name="istio-httpbin-no-append") as envoy:
        resp = envoy.get(f"/get?auth_token={demo_signed(org='acme')}", host=MESH_HOST, headers={"x-org": "solo.io"})
        assert (resp.status, resp.body) == (403, "RBAC: access denied"), resp
        echo = assert_passed(envoy.get(f"/get?auth_token={demo_token()}", host=MESH_HOST, headers={"x-org": "evil"}))
        assert echo.header("X-Org") == ["solo.io"]


UNEVALUABLE = (500, "jwt policy filter: a policy's selector cannot be evaluated on this proxy")


def inbound_sidecar(tmp_path, plugin: dict, name: str, node: dict | None = None,
                    services: list[tuple[str, str]] | None = None, cluster: str = "inbound|8080||"):
    """A workload's inbound side (httpbin's unless ``node`` says), as Istio builds it: the Service
    port 8000 in the vhost's name only, the workload's target port 8080 in the cluster's (and its
    Services in the cluster's metadata: ``services``, by default the node's app), and Istio's own
    route `default`."""
    wasm_filter, _ = write_ecds(tmp_path, plugin)
    node = node or istio_node("httpbin", "httpbin")
    if services is None:
        services = [(node["metadata"]["LABELS"]["app"], node["metadata"]["NAMESPACE"])]
    route_config = {"name": cluster, "virtual_hosts": [{"name": "inbound|http|8000", "domains": ["*"],
                    "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]}
    bootstrap = istio_bootstrap([wasm_filter], node=node, route_config=route_config,
                                clusters=[echo_cluster(cluster, services)])
    return harness.boot(None, bootstrap=bootstrap, name=name)


@pytest.mark.parametrize("services, expected", [
    ([("web-nginx", "web")], (401, MISSING)),      # the cluster lists the Service: governed
    ([("nginx", "web")], (200, None)),              # it lists others only: not this policy's
    ([], UNEVALUABLE),                              # no list: the canonical name is no proof
])
def test_the_inbound_clusters_service_list_names_the_workload(upstream, tmp_path, services, expected):
    """A chart's Service `web-nginx` in front of pods whose canonical name is `nginx` (review 6):
    the node metadata names the pod, not the Service, so a destination policy for `web-nginx`
    once selected nothing in the workload's own sidecar and every request passed untouched.
    Istio lists the workload's Services on each inbound cluster (`istio.services`); the filter
    reads that list, and without it a Service of this namespace named otherwise is in doubt."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["applyToDestinations"] = [
        {"selector": {"name": "web-nginx", "namespace": "web"}}]
    tag = "-".join(n for n, _ in services) or "none"
    with inbound_sidecar(tmp_path, plugin, f"istio-inbound-svc-{tag}", istio_node("web", "nginx"),
                         services=services) as envoy:
        resp = envoy.get("/get", host=MESH_HOST, headers={"x-org": "admin-org"})
        if expected[0] == 200:
            assert assert_passed(resp).header("X-Org") == ["admin-org"]
        else:
            assert (resp.status, resp.body) == expected, resp


def test_a_callers_passthrough_request_under_a_destination_policy_is_refused(upstream, tmp_path):
    """In a caller's sidecar a Host that no route knows goes to `PassthroughCluster`, on to the
    address it was for, which may be httpbin's (review 6): the cluster names no Service, so a
    destination policy for httpbin cannot tell, and the request is refused, not passed."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["applyToDestinations"] = [
        {"selector": {"name": "httpbin", "namespace": "httpbin"}}]
    with inbound_sidecar(tmp_path, plugin, "istio-outbound-passthrough", istio_node("sleep", "sleep"),
                         services=[], cluster="PassthroughCluster") as envoy:
        resp = envoy.get("/get", host="10.96.0.12:8000", headers={"x-org": "admin-org"})
        assert (resp.status, resp.body) == UNEVALUABLE, resp


@pytest.mark.parametrize("app, selected", [
    ("httpbin", True),
    ("reviews", False),
])
def test_inbound_destination_selector_reads_istio_node_metadata(upstream, tmp_path, app, selected):
    """applyToDestinations on an inbound sidecar: `inbound|8080||` names no service, so the filter
    takes this workload's name and namespace from Istio's node metadata (LABELS, NAMESPACE).  The
    manifests do not rely on it (the WasmPlugin selector picks the workload), but a policy written
    for Gloo's "JWT for destinations" does."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["applyToDestinations"] = [
        {"selector": {"name": "httpbin", "namespace": "httpbin"}}]
    node = istio_node("httpbin" if app == "httpbin" else "bookinfo", app)
    with inbound_sidecar(tmp_path, plugin, f"istio-inbound-{app}", node) as envoy:
        resp = envoy.get("/get", host=MESH_HOST)
        if selected:
            assert_denied(resp, MISSING, host=MESH_HOST)
        else:
            assert not assert_passed(resp).has("X-Org")


@pytest.mark.parametrize("name, number, expected", [
    ("httpbin", 8000, UNEVALUABLE),
    ("httpbin", 8080, (401, MISSING)),
    ("reviews", 9080, (200, None)),  # another workload's port: not in doubt here (review 5)
])
def test_a_destination_port_on_the_inbound_side_refuses_what_it_cannot_tell(upstream, tmp_path, name, number,
                                                                             expected):
    """Gloo's `port` is the Service port (8000); Istio's inbound cluster carries the workload's
    target port (`inbound|8080||`, Istio >= 1.8.1). Compared as they are, 8000 never matched and
    every request reached httpbin unauthenticated, a client's `x-org` with it (review 4). The
    filter cannot tell which Service port a request came in on, so a port that is not the
    cluster's is a 500; the target port itself is matched."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["applyToDestinations"] = [
        {"selector": {"name": name, "namespace": "httpbin"}, "port": {"number": number}}]
    with inbound_sidecar(tmp_path, plugin, f"istio-inbound-port-{name}-{number}") as envoy:
        resp = envoy.get("/get", host=MESH_HOST, headers={"x-org": "admin-org"})
        if expected[0] == 200:
            assert assert_passed(resp).header("X-Org") == ["admin-org"]  # ungoverned: untouched
        else:
            assert (resp.status, resp.body) == expected, resp


def waypoint(tmp_path, plugin: dict, name: str, cluster: str):
    """An ambient waypoint's HTTP chain, as Istio builds it: its upstream cluster names the
    Service and the Service port (`inbound-vip|8000|http|httpbin.httpbin.svc.cluster.local`), or,
    for a workload addressed directly, the pod (`inbound-pod|8080||IP`)."""
    wasm_filter, _ = write_ecds(tmp_path, plugin)
    route_config = {"name": "waypoint", "virtual_hosts": [{"name": "httpbin", "domains": ["*"],
                    "routes": [{"name": "httpbin.httpbin.0.0", "match": {"prefix": "/"},
                                "route": {"cluster": cluster}}]}]}
    node = istio_node("httpbin", "waypoint")
    node["id"] = "waypoint~10.0.0.9~waypoint-5f9c-x.httpbin~httpbin.svc.cluster.local"
    bootstrap = istio_bootstrap([wasm_filter], node=node, route_config=route_config,
                                clusters=[echo_cluster(cluster)])
    return harness.boot(None, bootstrap=bootstrap, name=name)


@pytest.mark.parametrize("cluster, number, expected", [
    ("inbound-vip|8000|http|httpbin.httpbin.svc.cluster.local", 8000, (401, MISSING)),
    ("inbound-vip|8000|http/v1|httpbin.httpbin.svc.cluster.local", 8000, (401, MISSING)),
    ("inbound-vip|9000|http|httpbin.httpbin.svc.cluster.local", 8000, (200, None)),
    ("inbound-pod|8080||127.0.0.1", 8000, UNEVALUABLE),
    ("inbound-pod|8080||127.0.0.1", None, UNEVALUABLE),
])
def test_a_waypoint_reads_the_service_and_its_port_and_refuses_names_it_cannot_read(
        upstream, tmp_path, cluster, number, expected):
    """A destination policy in an ambient waypoint: `inbound-vip|PORT|SUBSET|HOST` carries the
    Service and the Service port, so the policy's port is compared as written; a cluster name of
    a form the filter does not read (`inbound-pod|…`) tells no Service, so the request is refused
    (500), never let through untouched as it was (the cluster was taken for a plain name)."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    selector = {"selector": {"name": "httpbin", "namespace": "httpbin"}}
    if number is not None:
        selector["port"] = {"number": number}
    plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["applyToDestinations"] = [selector]
    tag = cluster.split("|")[0] + cluster.split("|")[1] + cluster.split("|")[2].replace("/", "") + str(number)
    with waypoint(tmp_path, plugin, f"istio-waypoint-{tag}", cluster) as envoy:
        resp = envoy.get("/get", host=MESH_HOST, headers={"x-org": "admin-org"})
        if expected[0] == 200:
            assert assert_passed(resp).header("X-Org") == ["admin-org"]  # another port: ungoverned
        else:
            assert (resp.status, resp.body) == expected, resp
        if expected[0] == 401:
            resp = envoy.get(f"/get?auth_token={demo_token()}", host=MESH_HOST, headers={"x-org": "admin-org"})
            assert assert_passed(resp).header("X-Org") == ["solo.io"]


def test_a_route_name_policy_on_the_inbound_side_refuses_rather_than_passes(upstream, tmp_path):
    """The README's `render --istio` command once made a SERVER plugin of the policy that selects
    the VirtualService route `httpbin-mesh` by name: on httpbin's inbound side the only route is
    Istio's `default`, the policy selected nothing, and a request without a token, carrying a
    client's `x-org: solo.io` for the AuthorizationPolicy, got through (review 4). `render` now
    refuses it (`cli::tests`); a hand-written plugin like it gets a 500 for every request."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["applyToRoutes"] = [{"route": {"name": "httpbin-mesh"}}]
    with server_sidecar(tmp_path, plugin, name="istio-inbound-route-name") as envoy:
        for headers in ({"x-org": "solo.io"}, {}):
            resp = envoy.get("/get", host=MESH_HOST, headers=headers)
            assert (resp.status, resp.body) == UNEVALUABLE, resp
        resp = envoy.get(f"/get?auth_token={demo_token()}", host=MESH_HOST)
        assert (resp.status, resp.body) == UNEVALUABLE, resp
        assert "cannot be evaluated for this request" in envoy.log_text()


def test_a_dry_run_route_name_policy_on_the_inbound_side_strips_the_clients_claim_headers(upstream, tmp_path):
    """The same plugin as a dry run: it never denies, so the request passes; but whether it was
    meant for the request cannot be told there, so nothing it would write is taken from the
    client: the client's `x-org: solo.io` is removed before the AuthorizationPolicy's RBAC reads
    it (before: it reached RBAC and passed it)."""
    plugin = copy.deepcopy(resource("wasmplugin-sidecar.yaml", "WasmPlugin"))
    policy = plugin["spec"]["pluginConfig"]["policies"][0]
    policy["spec"]["applyToRoutes"] = [{"route": {"name": "httpbin-mesh"}}]
    policy.setdefault("metadata", {}).setdefault("annotations", {})["jwt-policy/dry-run"] = "true"
    with server_sidecar(tmp_path, plugin, name="istio-inbound-dry-run-route-name") as envoy:
        resp = envoy.get("/get", host=MESH_HOST, headers={"x-org": "solo.io"})
        assert (resp.status, resp.body) == (403, "RBAC: access denied"), resp
    with inbound_sidecar(tmp_path, plugin, name="istio-inbound-dry-run-route-name-headers") as envoy:
        echo = assert_passed(envoy.get("/get", host=MESH_HOST, headers={"x-org": "solo.io", "x-other": "kept"}))
        assert echo.header("X-Org") == [] and echo.header("X-Other") == ["kept"], echo


# ---- ingress gateway: istio/wasmplugin-gateway.yaml


@pytest.fixture(scope="module")
def ingress(upstream, ecds_dir):
    vs = resource("wasmplugin-gateway.yaml", "VirtualService")
    plugin = resource("wasmplugin-gateway.yaml", "WasmPlugin")
    wasm_filter, _ = write_ecds(ecds_dir, plugin)
    route_config = {"name": "http.8080", "virtual_hosts": [{
        "name": "httpbin.example.com:80", "domains": ["httpbin.example.com", "httpbin.example.com:*"],
        "routes": vs_routes(vs)}], "validate_clusters": False}
    node = istio_node("istio-system", "istio-ingressgateway")
    node["id"] = "router~10.0.0.8~istio-ingressgateway-5b8c.istio-system~istio-system.svc.cluster.local"
    node["metadata"]["LABELS"]["istio"] = "ingressgateway"
    bootstrap = istio_bootstrap([wasm_filter], node=node, route_config=route_config,
                                clusters=[echo_cluster(HTTPBIN_CLUSTER)])
    with harness.boot(None, bootstrap=bootstrap, name="istio-ingress") as envoy:
        yield envoy


def test_gateway_route_needs_the_token(ingress):
    host = "httpbin.example.com"
    assert_denied(ingress.get("/get", host=host), MISSING, host=host)
    echo = assert_passed(ingress.get("/get", host=host, headers={"X-Auth": f"Bearer {demo_token()}"}))
    assert echo.header("X-Email") == ["dev1@solo.io"]


# ---- remote JWKS: istio/wasmplugin-remote.yaml, TLS origination to the derived cluster


def _self_signed(host: str, directory: Path, ip: str | None = None) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(host)] + ([x509.IPAddress(ipaddress.ip_address(ip))] if ip else [])),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "idp.crt", directory / "idp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def demo_jwks() -> bytes:
    from cryptography.hazmat.primitives import serialization

    numbers = serialization.load_pem_public_key(PUBLIC_PEM.read_bytes()).public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return json.dumps({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "n": b64(numbers.n),
                                 "e": b64(numbers.e)}]}).encode()


class _IdpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        _IdpHandler.seen.append((self.path, self.headers.get("Host")))
        body = demo_jwks() if self.path == "/.well-known/jwks.json" else b"not found"
        self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _tls_idp(cert: Path, key: Path) -> ThreadingHTTPServer:
    """A local HTTPS JWKS server (the demo JWKS on /.well-known/jwks.json) with this certificate,
    serving in a thread; the caller shuts it down."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _IdpHandler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _IdpHandler.seen.clear()
    return server


def test_remote_jwks_through_the_derived_istio_cluster(upstream, ecds_dir, tmp_path):
    """The remote manifest's provider has no `cluster`: the filter derives `outbound|443||idp.example.com`
    from its https URL.  That cluster is what the ServiceEntry + DestinationRule (TLS SIMPLE, sni) give
    the sidecar; here it reaches a local HTTPS JWKS server with a certificate for idp.example.com."""
    se = resource("wasmplugin-remote.yaml", "ServiceEntry")
    dr = resource("wasmplugin-remote.yaml", "DestinationRule")
    plugin = resource("wasmplugin-remote.yaml", "WasmPlugin")
    host = se["spec"]["hosts"][0]
    port = se["spec"]["ports"][0]["number"]
    tls = dr["spec"]["trafficPolicy"]["portLevelSettings"][0]
    assert (dr["spec"]["host"], tls["port"]["number"], tls["tls"]["mode"]) == (host, port, "SIMPLE")
    # the sidecar verifies the IdP's certificate (whoever serves the keys can sign any token)
    assert tls["tls"]["caCertificates"] == "/etc/ssl/certs/ca-certificates.crt"
    assert tls["tls"]["subjectAltNames"] == [host] and tls["tls"].get("insecureSkipVerify") is False
    provider = plugin["spec"]["pluginConfig"]["policies"][0]["spec"]["config"]["providers"]["dev-example"]
    assert "cluster" not in provider["remote"] and provider["remote"]["url"].startswith(f"https://{host}/")

    cert, key = _self_signed(host, tmp_path)
    server = _tls_idp(cert, key)
    try:
        idp_cluster = harness.static_cluster(f"outbound|{port}||{host}", server.server_address[1])
        idp_cluster["transport_socket"] = {  # what DestinationRule tls: {mode: SIMPLE, sni} makes
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": tls["tls"]["sni"],
                "common_tls_context": {"validation_context": {
                    "trusted_ca": {"filename": str(cert)},
                    "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": host}}],
                }},
            },
        }
        wasm_filter, _ = write_ecds(ecds_dir, plugin)
        route_config = {"name": "inbound|8080||", "virtual_hosts": [{"name": "inbound|http|8000", "domains": ["*"],
                        "routes": [{"name": "default", "match": {"prefix": "/"},
                                    "route": {"cluster": "inbound|8080||"}}]}]}
        bootstrap = istio_bootstrap([wasm_filter], node=istio_node("httpbin", "httpbin"), route_config=route_config,
                                    clusters=[echo_cluster("inbound|8080||"), idp_cluster])
        with harness.boot(None, bootstrap=bootstrap, name="istio-remote") as envoy:
            assert_denied(envoy.get("/get", host=MESH_HOST), MISSING, host=MESH_HOST)
            echo = assert_passed(envoy.get(f"/get?auth_token={demo_token()}", host=MESH_HOST, timeout=20))
            assert echo.header("X-Org") == ["solo.io"]
            assert ("/.well-known/jwks.json", host) in _IdpHandler.seen
    finally:
        server.shutdown()
        server.server_close()


# ---- fail closed


def test_refused_plugin_config_fails_closed(upstream, ecds_dir, tmp_path):
    """A pluginConfig the filter refuses (here a typo, `nme`) never lets a request through: Envoy
    rejects the extension config and answers 500 instead of skipping the filter."""
    plugin = copy.deepcopy(resource("virtualservice.yaml", "WasmPlugin"))
    plugin["metadata"]["name"] = "jwt-policy-broken"
    cfg = plugin["spec"]["pluginConfig"]
    cfg["policies"][0]["spec"]["applyToRoutes"] = [{"route": {"nme": "httpbin-mesh"}}]
    wasm_filter, _ = write_ecds(tmp_path, plugin)
    route_config = {"name": "8000", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"name": "httpbin-mesh", "match": {"prefix": "/"}, "route": {"cluster": HTTPBIN_CLUSTER}}]}]}
    bootstrap = istio_bootstrap([wasm_filter], node=istio_node("sleep", "sleep"), route_config=route_config,
                                clusters=[echo_cluster(HTTPBIN_CLUSTER)])
    with harness.boot(None, bootstrap=bootstrap, name="istio-refused") as envoy:
        resp = envoy.get(f"/get?auth_token={demo_token()}", host=MESH_HOST)
        assert resp.status == 500, resp
        stats = envoy.stats("extension_config_discovery.http_filter.istio-system.jwt-policy-broken.")
        assert stats["extension_config_discovery.http_filter.istio-system.jwt-policy-broken.update_rejected"] == 1
        assert "policies[0].spec.applyToRoutes[0].route.nme: unknown field" in envoy.log_text()


def test_route_label_selector_is_refused_on_istio(upstream, tmp_path):
    """The guide's policy as is (`applyToRoutes: [{route: {labels: {route: httpbin}}}]`) pasted into
    a WasmPlugin: Istio puts no route labels in Envoy, so the selector would select nothing and
    leave httpbin open. The filter refuses the configuration on an Istio proxy (FAIL_CLOSE: 500),
    naming the selector and route `name` selection; it used to load and let everything through."""
    plugin = copy.deepcopy(resource("virtualservice.yaml", "WasmPlugin"))
    plugin["metadata"]["name"] = "jwt-policy-labelled"
    guide = json.loads((REPO / "policies" / "dev-example.json").read_text())
    plugin["spec"]["pluginConfig"] = {"policies": [guide]}
    wasm_filter, _ = write_ecds(tmp_path, plugin)
    route_config = {"name": "8000", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"name": "httpbin-mesh", "match": {"prefix": "/"}, "route": {"cluster": HTTPBIN_CLUSTER}}]}]}
    bootstrap = istio_bootstrap([wasm_filter], node=istio_node("sleep", "sleep"), route_config=route_config,
                                clusters=[echo_cluster(HTTPBIN_CLUSTER)])
    with harness.boot(None, bootstrap=bootstrap, name="istio-labelled") as envoy:
        resp = envoy.get("/get", host=MESH_HOST)
        assert resp.status == 500, resp
        stats = envoy.stats("extension_config_discovery.http_filter.istio-system.jwt-policy-labelled.")
        assert stats["extension_config_discovery.http_filter.istio-system.jwt-policy-labelled.update_rejected"] == 1
        log = envoy.log_text()
        assert "policies[0].spec.applyToRoutes[0].route.labels: Istio carries no route labels" in log
        assert "select the VirtualService http route by `name`" in log


def test_route_label_selector_still_works_on_plain_envoy(envoy):
    """The same policy in a plain Envoy (routes carry labels in their metadata) loads and enforces."""
    guide = json.loads((REPO / "policies" / "dev-example.json").read_text())
    proxy = envoy(guide)
    assert_denied(proxy.get("/get"), MISSING)
    assert_passed(proxy.get(f"/get?auth_token={demo_token()}"))


# --------------------------------------------------------------------------- the CLI

needs_cli = pytest.mark.skipif(not CLI.exists(), reason=f"{CLI} not built (make check-policies builds it)")


@needs_cli
def test_rendered_envoy_config_runs(upstream):
    """`jwt-policy render --envoy policies/dev-example.yaml`, spliced into a bootstrap as is (only the
    .wasm path changed), serves the guide."""
    out = subprocess.run([str(CLI), "render", "--envoy", "--wasm", harness.wasm_path(),
                          str(REPO / "policies" / "dev-example.yaml")],
                         capture_output=True, text=True, check=True).stdout
    rendered = yaml.safe_load(out)
    assert [f["name"] for f in rendered["http_filters"]][-1] == "envoy.filters.http.router"
    bootstrap = harness.render("{}")
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = rendered["http_filters"]
    bootstrap["static_resources"]["clusters"] += rendered.get("clusters") or []
    with harness.boot(None, bootstrap=bootstrap, name="rendered-envoy") as envoy:
        assert_denied(envoy.get("/get"), MISSING)
        echo = assert_passed(envoy.get(f"/get?auth_token={demo_token()}"))
        assert echo.header("X-Org") == ["solo.io"]


@needs_cli
def test_check_policies_passes_on_the_repository():
    files = sorted(map(str, [*REPO.glob("policies/*.yaml"), *REPO.glob("policies/*.json"), *ISTIO.glob("*.yaml")]))
    proc = subprocess.run([str(CLI), "check", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_cli
def test_check_policies_fails_on_a_broken_policy(tmp_path):
    broken = tmp_path / "broken-policy.yaml"
    broken.write_text(DEV_EXAMPLE_YAML.read_text().replace('prefix: "Bearer "', 'prefx: "Bearer "'))
    wasm = tmp_path / "broken-wasmplugin.yaml"
    wasm.write_text((ISTIO / "virtualservice.yaml").read_text().replace("phase: preAuthz\n", "phase: preauthz\n"))
    proc = subprocess.run(["make", "-s", "check-policies", f"CHECK_POLICIES_FILES={broken} {wasm}"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0, proc.stdout
    out = proc.stdout + proc.stderr
    assert "spec.config.providers.dev-example.tokenSource.headers[0].prefx: unknown field" in out, out
    assert f"{wasm}: document 2" in out and "settings.phase" in out, out


@needs_cli
@pytest.mark.parametrize("trusted", [False, True], ids=["system-cas-only", "with-ca-file"])
def test_rendered_jwks_cluster_verifies_the_server_certificate(upstream, tmp_path, trusted):
    """`render --envoy` used to write an https JWKS cluster with only `sni`: anyone on the path could
    serve keys. Now the cluster checks the certificate against the system CAs (or --ca-file) and its
    SAN against the URL's host: a self-signed JWKS server is refused unless its CA is given."""
    cert, key = _self_signed("localhost", tmp_path, ip="127.0.0.1")
    server = _tls_idp(cert, key)
    try:
        policy = json.loads((REPO / "policies" / "dev-example.json").read_text())
        provider = policy["spec"]["config"]["providers"]["dev-example"]
        del provider["local"]
        port = server.server_address[1]
        provider["remote"] = {"url": f"https://127.0.0.1:{port}/.well-known/jwks.json", "timeout": "2s"}
        path = tmp_path / "remote.json"
        path.write_text(json.dumps(policy))
        ca = ["--ca-file", str(cert)] if trusted else []
        out = subprocess.run([str(CLI), "render", "--envoy", "--wasm", harness.wasm_path(), *ca, str(path)],
                             capture_output=True, text=True, check=True).stdout
        rendered = yaml.safe_load(out)
        bootstrap = harness.render("{}")
        hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = rendered["http_filters"]
        bootstrap["static_resources"]["clusters"] += rendered["clusters"]
        name = "rendered-tls-" + ("trusted" if trusted else "untrusted")
        with harness.boot(None, bootstrap=bootstrap, name=name) as envoy:
            resp = envoy.get(f"/get?auth_token={demo_token()}", timeout=20)
            if trusted:
                assert assert_passed(resp).header("X-Org") == ["solo.io"]
                assert _IdpHandler.seen, "the JWKS was fetched"
            else:
                assert_denied(resp, "Jwks remote fetch is failed")
                assert not _IdpHandler.seen, "no JWKS request got past the TLS handshake"
                stats = envoy.stats(f"cluster.outbound|{port}||127.0.0.1.ssl.")
                assert stats[f"cluster.outbound|{port}||127.0.0.1.ssl.fail_verify_error"] >= 1, stats
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- Istio CRD schemas

needs_schemas = pytest.mark.skipif(not (SCHEMA_DIR / "node_modules").is_dir() or shutil.which("node") is None,
                                   reason="Istio CRD schemas not installed (make check-manifests installs them)")


def check_manifests(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "check-manifests.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


@needs_schemas
def test_manifests_match_istio_crds():
    proc = check_manifests(str(ISTIO))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all valid" in proc.stdout


@needs_schemas
def test_check_manifests_fails_on_a_broken_manifest(tmp_path):
    text = (ISTIO / "wasmplugin-sidecar.yaml").read_text()
    broken = tmp_path / "wasmplugin-broken.yaml"
    broken.write_text(text.replace("phase: AUTHZ", "phase: AUTHZZ").replace("failStrategy:", "failStratgy:"))
    vs = tmp_path / "virtualservice-broken.yaml"
    vs.write_text((ISTIO / "virtualservice.yaml").read_text().replace("  hosts:\n", "  hostz:\n", 1))
    proc = check_manifests(str(broken), str(vs))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    prefix = f"{broken}: document 1 (WasmPlugin httpbin/jwt-policy): "
    assert prefix + "spec.phase: must be one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS" in out, out
    assert prefix + 'spec.failStratgy: unknown field "failStratgy" (did you mean "failStrategy"?)' in out, out
    assert f'{vs}: document 1 (VirtualService httpbin/www-example-com): spec.hostz: unknown field "hostz"' in out, out
    assert "2 invalid" in out


@needs_schemas
def test_check_manifests_fails_on_an_unknown_istio_kind(tmp_path):
    bad = tmp_path / "bad-kind.yaml"
    bad.write_text("apiVersion: extensions.istio.io/v1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {url: oci://x}\n")
    proc = check_manifests(str(bad))
    assert proc.returncode == 1 and "no such Istio resource" in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- the manifests agree


def _guide_config() -> dict:
    return yaml.safe_load(DEV_EXAMPLE_YAML.read_text())["spec"]["config"]


@pytest.mark.parametrize("name", ["wasmplugin-sidecar.yaml", "wasmplugin-gateway.yaml", "virtualservice.yaml",
                                  "wasmplugin-remote.yaml"])
def test_manifests_carry_the_guides_policy(name):
    plugin = resource(name, "WasmPlugin")
    spec = plugin["spec"]
    assert (spec["phase"], spec["priority"], spec["failStrategy"]) == ("AUTHZ", 0, "FAIL_CLOSE")
    assert spec["url"].startswith("oci://")
    assert spec["pluginConfig"]["settings"] == {"phase": "preAuthz"}
    [policy] = spec["pluginConfig"]["policies"]
    assert policy["kind"] == "JWTPolicy" and policy["metadata"] == {"name": "jwt-policy", "namespace": "httpbin"}
    config, guide = copy.deepcopy(policy["spec"]["config"]), _guide_config()
    if name == "wasmplugin-remote.yaml":
        assert config["providers"]["dev-example"].pop("remote")["url"] == "https://idp.example.com/.well-known/jwks.json"
        guide["providers"]["dev-example"].pop("local")
    assert config == guide
    # Istio routes carry no labels: route selection is by name, or the WasmPlugin selects the workload
    assert "labels" not in json.dumps(policy["spec"].get("applyToRoutes") or [])
    if spec.get("match") == [{"mode": "SERVER"}]:
        assert "applyToRoutes" not in policy["spec"] and "applyToDestinations" not in policy["spec"]
    else:
        assert policy["spec"]["applyToRoutes"]


# --------------------------------------------------------------------------- OCI image


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layout_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_oci_image_layout(tmp_path):
    wasm = Path(harness.wasm_path()).read_bytes()
    out, tar = tmp_path / "layout", tmp_path / "image.tar"
    subprocess.run([sys.executable, str(REPO / "scripts" / "oci-image.py"), "--wasm", harness.wasm_path(),
                    "--out", str(out), "--tar", str(tar), "--tag", "test"], check=True, capture_output=True)
    files = _layout_files(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [mdesc] = index["manifests"]
    assert mdesc["annotations"]["org.opencontainers.image.ref.name"] == "test"
    # every blob is stored under its own digest
    blobs = {name: data for name, data in files.items() if name.startswith("blobs/")}
    assert len(blobs) == 3
    for name, data in blobs.items():
        assert name == "blobs/sha256/" + hashlib.sha256(data).hexdigest()

    def blob(desc: dict) -> bytes:
        data = files["blobs/sha256/" + desc["digest"].split(":", 1)[1]]
        assert (_sha(data), len(data)) == (desc["digest"], desc["size"])
        return data

    assert mdesc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(blob(mdesc))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == mdesc["mediaType"]
    assert manifest["config"]["mediaType"] == "application/vnd.module.wasm.config.v1+json"
    json.loads(blob(manifest["config"]))
    [layer] = manifest["layers"]  # Istio requires exactly one layer in this format
    assert layer["mediaType"] == "application/vnd.module.wasm.content.layer.v1+wasm"
    assert blob(layer) == wasm and wasm[:4] == b"\0asm"
    # the tar holds the same tree, and the build is reproducible
    with tarfile.open(tar) as t:
        in_tar = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    assert in_tar == files
    again = tmp_path / "again"
    subprocess.run([sys.executable, str(REPO / "scripts" / "oci-image.py"), "--wasm", harness.wasm_path(),
                    "--out", str(again), "--tag", "test"], check=True, capture_output=True)
    assert _layout_files(again) == files


def test_oci_image_refuses_a_non_wasm_file(tmp_path):
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "oci-image.py"), "--wasm", str(junk),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode != 0 and "not a WebAssembly binary" in proc.stderr
