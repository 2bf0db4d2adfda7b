"""Pieces of a static Envoy bootstrap, shared by the end-to-end harness, the benchmark
(bench/configs.py) and the soak test (soak/envoys.py): a STATIC cluster, an HTTP listener on
127.0.0.1 ending with the router, the bootstrap around them, and the filter itself."""

from __future__ import annotations

import json
from pathlib import Path

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def static_cluster(name: str, port: int, host: str = "127.0.0.1") -> dict:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]}}


def http_listener(name: str, routes: list[dict], filters: list[dict], port: int = 0) -> dict:
    """An HTTP listener on 127.0.0.1 (port 0: the kernel picks, read back from the admin API);
    ``name`` is also its stat prefix and route configuration's name."""
    hcm = {"@type": HCM, "stat_prefix": name, "codec_type": "AUTO",
           "route_config": {"name": name, "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
           "http_filters": [*filters, ROUTER]}
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def static_bootstrap(listeners: list[dict], clusters: list[dict]) -> dict:
    """Admin on 127.0.0.1, port 0; the listeners and clusters as static resources."""
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": listeners, "clusters": clusters}}


def wasm_filter(plugin_config: dict, wasm: Path | str) -> dict:
    """This project's filter (V8 runtime, root_id ``jwt_policy_filter``) with ``plugin_config`` as
    its JSON configuration."""
    return {"name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "jwt_policy", "root_id": "jwt_policy_filter",
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                      "value": json.dumps(plugin_config)},
                    "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                                  "code": {"local": {"filename": str(wasm)}}}}}}
