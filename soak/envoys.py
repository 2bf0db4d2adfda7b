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

from bootstrap import http_listener, static_bootstrap, static_cluster, wasm_filter  # tests/e2e
from envoy_process import EnvoyProcess  # tests/e2e (material.py puts it on sys.path)
from material import AUDIENCE, CLASSES, ISSUER

# what the upstream answers when a forwarded valid request is wrong (the client sees it)
UPSTREAM_CHECKS = {
    460: "token forwarded upstream (Authorization header)",
    461: "token forwarded upstream (access_token query parameter)",
    462: "spoofed x-soak-sub reached the upstream",
    463: "claim header x-soak-sub missing upstream",
}


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
        listeners.append(http_listener(f"up_{cls}", routes, []))
    return static_bootstrap(listeners, [])


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
    routes = [{"name": f"route_{cls}", "match": {"prefix": f"/{cls}/"}, "route": {"cluster": f"up_{cls}"}}
              for cls in CLASSES]
    clusters = [static_cluster(f"up_{cls}", port) for cls, port in upstream_ports.items()]
    clusters.append(static_cluster("jwks", jwks_port))
    return static_bootstrap([http_listener("main", routes, [wasm_filter(plugin, wasm)])], clusters)


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
