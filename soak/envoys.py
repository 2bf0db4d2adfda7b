"""The two Envoy processes of the soak test and their bootstraps.

* **upstream** (``--concurrency 1``): one listener per token class (``up_valid``,
  ``up_expired``, …; stat prefix = listener name), each answering with ``direct_response``, so
  ``http.up_<class>.downstream_rq_total`` counts what got through the filter, per class.
  The ``up_valid`` listener also checks what the filter forwarded: the token must be gone (no
  ``authorization`` header, no ``access_token`` query parameter), the claim header ``x-soak-sub``
  present and not the client's spoofed value.  Otherwise it answers one of the codes in
  :data:`UPSTREAM_CHECKS` (which the client then sees as a valid request not answered 200).
* **front** (``--concurrency 2``): the filter under test, with one remote provider whose JWKS
  comes from the chaos JWKS server through the STATIC cluster ``jwks``; route
  ``/<class>/`` → cluster ``up_<class>``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from envoy_process import EnvoyProcess  # tests/e2e (material.py put it on sys.path)
from material import AUDIENCE, CLASSES, ISSUER

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

# what the upstream answers when a forwarded valid request is wrong (the client sees it)
UPSTREAM_CHECKS = {
    460: "token forwarded upstream (Authorization header)",
    461: "token forwarded upstream (access_token query parameter)",
    462: "spoofed x-soak-sub reached the upstream",
    463: "claim header x-soak-sub missing upstream",
}


def _cluster(name: str, port: int) -> dict:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]}}


def _listener(name: str, routes: list[dict], filters: list[dict]) -> dict:
    hcm = {"@type": HCM, "stat_prefix": name, "codec_type": "AUTO",
           "route_config": {"name": name, "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
           "http_filters": [*filters, ROUTER]}
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def _bootstrap(listeners: list[dict], clusters: list[dict]) -> dict:
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": listeners, "clusters": clusters}}


def _answer(status: int, text: str) -> dict:
    return {"status": status, "body": {"inline_string": text + "\n"}}


def upstream_bootstrap() -> dict:
    listeners = []
    for cls in CLASSES:
        routes = []
        if cls == "valid":
            checks = [
                (460, {"headers": [{"name": "authorization", "present_match": True}]}),
                (461, {"query_parameters": [{"name": "access_token", "present_match": True}]}),
                (462, {"headers": [{"name": "x-soak-sub", "string_match": {"contains": "spoofed"}}]}),
                (463, {"headers": [{"name": "x-soak-sub", "present_match": True, "invert_match": True}]}),
            ]
            for status, match in checks:
                routes.append({"match": {"prefix": "/", **match},
                               "direct_response": _answer(status, UPSTREAM_CHECKS[status])})
            routes.append({"match": {"prefix": "/"}, "direct_response": _answer(200, "ok")})
        else:
            routes.append({"match": {"prefix": "/"}, "direct_response": _answer(200, f"{cls} REACHED THE UPSTREAM")})
        listeners.append(_listener(f"up_{cls}", routes, []))
    return _bootstrap(listeners, [])


def plugin_config(jwks_url: str, *, cache_duration: str, timeout: str) -> dict:
    return {
        "apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy",
        "metadata": {"name": "soak", "namespace": "soak"},
        "spec": {"config": {
            "providers": {"soak-remote": {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "remote": {"url": jwks_url, "cluster": "jwks", "cacheDuration": cache_duration,
                           "timeout": timeout},
                "claimsToHeaders": [{"claim": "sub", "header": "x-soak-sub"},
                                    {"claim": "key", "header": "x-soak-key"},
                                    {"claim": "org", "header": "x-soak-org", "append": True}],
            }},
            "claims": [{"key": "org", "values": ["soak"]}],
            "requiredScopes": ["read"],
        }},
    }


def front_bootstrap(wasm: Path, plugin: dict, upstream_ports: dict[str, int], jwks_port: int) -> dict:
    wasm_filter = {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "jwt_policy", "root_id": "jwt_policy_filter",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(plugin)},
                "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": str(wasm)}}}}}}
    routes = [{"name": f"route_{cls}", "match": {"prefix": f"/{cls}/"}, "route": {"cluster": f"up_{cls}"}}
              for cls in CLASSES]
    clusters = [_cluster(f"up_{cls}", port) for cls, port in upstream_ports.items()]
    clusters.append(_cluster("jwks", jwks_port))
    return _bootstrap([_listener("main", routes, [wasm_filter])], clusters)


class EnvoyError(RuntimeError):
    pass


class Envoy(EnvoyProcess):
    """One Envoy process: ``Envoy(binary, name, bootstrap, workdir, concurrency).start()``."""

    error = EnvoyError

    def __init__(self, binary: str, name: str, bootstrap: dict, workdir: Path, concurrency: int,
                 component_log_level: str | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        (directory / "envoy.json").write_text(json.dumps(bootstrap, indent=1))
        args = [binary, "-c", str(directory / "envoy.json"), "--concurrency", str(concurrency),
                "--log-level", "info", "--disable-hot-restart",
                "--admin-address-path", str(directory / "admin.address")]
        if component_log_level:
            args += ["--component-log-level", component_log_level]
        super().__init__(name, directory, args)

    def start(self, timeout: float = 60) -> "Envoy":
        self.spawn()
        self.wait_ready(timeout)
        return self

    def stop(self, timeout: float = 15) -> None:
        super().stop(timeout)
