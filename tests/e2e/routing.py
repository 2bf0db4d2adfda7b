"""envoy/routes.yaml as a test bootstrap, and builders for multi-policy configurations.

``routes_bootstrap()`` loads the example Envoy config with several routes and clusters
(envoy/routes.yaml), points every cluster at the session's echo upstream, makes its ports
kernel-chosen and its wasm path absolute, and optionally swaps the embedded plugin
configuration for another one, keeping the route table::

    proxy = envoy(None, bootstrap=routes_bootstrap(policies(resource("a", spec(...)))), name="routes")
    echo = assert_passed(proxy.get("/labelled", headers=...))
    assert echo.header("X-Cluster") == ["httpbin"]     # the route's marker header

Each route of routes.yaml adds ``x-route: <route name>`` and ``x-cluster: <cluster name>``.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Mapping, Sequence

import yaml
from cryptography.hazmat.primitives import serialization

import harness
from jwtmint import Key

ROUTES_YAML = harness.REPO / "envoy" / "routes.yaml"
DEMO_PRIVATE_PEM = harness.REPO / "policies" / "demo-keys" / "demo-private-key.pem"
DEMO_PUBLIC_PEM = harness.REPO / "policies" / "demo-keys" / "demo-public-key.pem"
DEMO_ISSUER = "https://dev.example.com"

# Istio-style names of the destination clusters in routes.yaml.
HTTPBIN_8000 = "outbound|8000||httpbin.httpbin.svc.cluster.local"
HTTPBIN_9000 = "outbound|9000||httpbin.httpbin.svc.cluster.local"
OTHER_NS_8000 = "outbound|8000||httpbin.other.svc.cluster.local"


@functools.lru_cache(maxsize=None)
def _routes_yaml() -> dict:
    return yaml.safe_load(ROUTES_YAML.read_text())


def hcm(bootstrap: dict) -> dict:
    """The HTTP connection manager of the ``main`` listener."""
    listener = bootstrap["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def wasm_config(bootstrap: dict) -> dict:
    """The wasm filter's ``config`` (name, root_id, configuration, vm_config)."""
    return hcm(bootstrap)["http_filters"][0]["typed_config"]["config"]


def routes(bootstrap: dict | None = None) -> list[dict]:
    """The route table (of routes.yaml unless another bootstrap is given)."""
    return hcm(bootstrap or _routes_yaml())["route_config"]["virtual_hosts"][0]["routes"]


def shipped_config() -> dict:
    """The plugin configuration embedded in routes.yaml, parsed."""
    return json.loads(wasm_config(_routes_yaml())["configuration"]["value"])


def routes_bootstrap(config: str | Mapping | None = None, filters_before: Sequence[dict] = ()) -> dict:
    """routes.yaml made test-safe; ``config`` replaces the embedded plugin configuration and
    ``filters_before`` are HTTP filters put in front of the wasm filter."""
    bootstrap = copy.deepcopy(_routes_yaml())
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0
    bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 0
    for cluster in bootstrap["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["port_value"] = harness.upstream_port()
    wasm = wasm_config(bootstrap)
    wasm["vm_config"]["code"]["local"]["filename"] = harness.wasm_path()
    if config is not None:
        wasm["configuration"]["value"] = harness.plugin_configuration(config)
    hcm(bootstrap)["http_filters"][:0] = [copy.deepcopy(f) for f in filters_before]
    return bootstrap


def set_request_headers(**headers: str) -> dict:
    """An Envoy header_mutation filter that sets request headers (``x_org="internal"`` sets
    ``x-org``) and, unlike a wasm filter, does not clear the route cache: the route Envoy picked
    before it ran stays picked unless a later filter clears the cache."""
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [
                {"append": {"header": {"key": name.replace("_", "-"), "value": value},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
                for name, value in headers.items()
            ]},
        },
    }


# --------------------------------------------------------------------------- policies


def resource(name: str, spec: dict, created: str | None = None, namespace: str = "httpbin") -> dict:
    """A JWTPolicy resource (configuration shape 2) around a spec; ``created`` is its
    ``metadata.creationTimestamp`` (RFC 3339)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {"apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy",
            "metadata": metadata, "spec": spec}


def policies(*items: dict, **settings: Any) -> dict:
    """Configuration shape 3: ``{"policies": [...], "settings": {...}}``."""
    out: dict[str, Any] = {"policies": list(items)}
    if settings:
        out["settings"] = settings
    return out


def on_routes(spec: dict, *selectors: dict) -> dict:
    """``spec`` with ``applyToRoutes`` set to these ``route`` selectors."""
    return {**spec, "applyToRoutes": [{"route": s} for s in selectors]}


def on_destinations(spec: dict, *selectors: dict) -> dict:
    """``spec`` with ``applyToDestinations`` set to these entries."""
    return {**spec, "applyToDestinations": list(selectors)}


def with_phase(spec: dict, phase: str, priority: int | None = None) -> dict:
    """``spec`` with ``config.phase`` = ``{phase: {priority}}``."""
    inner = {} if priority is None else {"priority": priority}
    return {**spec, "config": {**spec["config"], "phase": {phase: inner}}}


# --------------------------------------------------------------------------- demo key


@functools.lru_cache(maxsize=None)
def demo_key() -> Key:
    """The DEMO-ONLY RS256 key of policies/demo-keys/, which routes.yaml's policies trust."""
    private = serialization.load_pem_private_key(DEMO_PRIVATE_PEM.read_bytes(), password=None)
    return Key("RS256", private)
