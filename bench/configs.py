"""Envoy bootstraps of the benchmark: the upstream, and one per arm (see bench/README.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from bootstrap import http_listener, static_bootstrap, static_cluster, wasm_filter  # noqa: E402  (tests/e2e)

ISSUER = "https://bench.example.com"
# The guide's policy (policies/dev-example.yaml): token in `X-Auth: Bearer …` (or `?auth_token=`),
# `org` and `email` copied to `x-org` / `x-email`, issuer checked.
GUIDE_HEADER = "X-Auth"
GUIDE_CLAIMS = [{"claim": "org", "header": "x-org", "append": True},
                {"claim": "email", "header": "x-email", "append": True}]
# The Zipf workload's cache sizes for ours (settings.limits.maxCachedTokens), beside the default.
ZIPF_CACHE_SIZES = (1024, 4096)
JWT_CACHE_SIZE = 1024      # native arm (c); ours' settings.limits.maxCachedTokens defaults to 16384
OURS_CACHE_DEFAULT = 16384
CLAIMS_TO_HEADERS = [{"claim": "sub", "header": "x-jwt-sub"}, {"claim": "org", "header": "x-jwt-org"},
                     {"claim": "email", "header": "x-jwt-email"}]

# --------------------------------------------------------------------------- the upstream and the arms' bootstraps

def upstream_listener(jwks: str, port: int = 0) -> dict:
    """The fast upstream: direct_response "ok" on every path, and the bench JWKS on /jwks."""
    routes = [
        {"match": {"path": "/jwks"},
         "direct_response": {"status": 200, "body": {"inline_string": jwks}},
         "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}]},
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}},
    ]
    return http_listener("upstream", routes, [], port)


def upstream_bootstrap(jwks: str) -> dict:
    return static_bootstrap([upstream_listener(jwks)], [])


def arm_bootstrap(filters: list[dict], upstream_port: int, inprocess_jwks: str | None = None) -> dict:
    """The arm's listener "arm": one route, / to the cluster "upstream".  The cluster "jwks" (for
    remote keys) is the same server.  ``inprocess_jwks``: the upstream listener lives in this
    Envoy too, on ``upstream_port`` (BENCH_UPSTREAM=inprocess)."""
    routes = [{"name": "bench", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
    listeners = [http_listener("arm", routes, filters)]
    if inprocess_jwks is not None:
        listeners.append(upstream_listener(inprocess_jwks, upstream_port))
    return static_bootstrap(listeners, [static_cluster("upstream", upstream_port), static_cluster("jwks", upstream_port)])


# --------------------------------------------------------------------------- the filters

def jwt_authn(provider: dict, cache_size: int | None = None) -> dict:
    """Native jwt_authn: one provider, required on every path, default token locations
    (`Authorization: Bearer`, `access_token`) unless ``provider`` names others, `forward: false`
    (token stripped)."""
    provider = {"issuer": ISSUER, **provider}
    if cache_size is not None:
        provider["jwt_cache_config"] = {"jwt_cache_size": cache_size}
    return {"name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"bench": provider},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}}


def native_remote(async_fetch: bool) -> dict:
    """remote_jwks from the cluster "jwks".  Without async_fetch the first request on the worker
    fetches; with `async_fetch: {}` (fast_listener false) the listener waits for the keys."""
    remote: dict[str, Any] = {"http_uri": {"uri": "http://127.0.0.1/jwks", "cluster": "jwks", "timeout": "5s"},
                              "cache_duration": "300s"}
    if async_fetch:
        remote["async_fetch"] = {}
    return jwt_authn({"remote_jwks": remote})


def native_guide(jwks: str, cache_size: int | None = None) -> dict:
    """Native jwt_authn configured as the guide's policy: `X-Auth: Bearer` or `?auth_token=`, the
    `org` and `email` claims to `x-org` / `x-email` (jwt_authn sanitizes those headers too)."""
    return jwt_authn({"local_jwks": {"inline_string": jwks},
                      "from_headers": [{"name": GUIDE_HEADER, "value_prefix": "Bearer "}],
                      "from_params": ["auth_token"],
                      "claim_to_headers": [{"header_name": c["header"], "claim_name": c["claim"]}
                                           for c in GUIDE_CLAIMS]}, cache_size)


def guide_provider(jwks: str) -> dict:
    return {"local": {"inline": jwks},
            "tokenSource": {"headers": [{"name": GUIDE_HEADER, "prefix": "Bearer "}], "queryParams": ["auth_token"]},
            "claimsToHeaders": GUIDE_CLAIMS}


def policy(provider: dict) -> dict:
    """A JWTPolicy resource with one provider named "bench" and the default token source
    (`Authorization: Bearer`, `access_token`: the same as jwt_authn's), `keepToken` false."""
    return {"apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy",
            "metadata": {"name": "bench", "namespace": "bench"},
            "spec": {"config": {"providers": {"bench": {"issuer": ISSUER, **provider}}}}}


def floor_config(provider: dict) -> dict:
    """Ours configured so that no policy is enforced and no property is read: the postAuthz
    instance of a preAuthz policy (the oldest, it selects every request and governs it, but in
    the preAuthz instance), as `render --istio` deploys them; the younger postAuthz policy makes
    the instance's phase one that a policy has."""
    post = policy(provider)
    post["metadata"]["name"] = "bench-post"
    post["spec"]["config"]["phase"] = {"postAuthz": {}}
    return {"policies": [policy(provider), post], "settings": {"phase": "postAuthz"}}


# --------------------------------------------------------------------------- the arms

@dataclass
class Arm:
    name: str
    label: str
    filters: list[dict]
    enforces: bool = True
    workloads: tuple[str, ...] | None = None  # None: every workload of its profile
    token_header: str = "Authorization"  # where the enforcement check puts its token


def arms(jwks: str, wasm: Path) -> list[Arm]:
    """The measured arms, local keys (the JWKS inline)."""
    local = {"local": {"inline": jwks}}
    return [
        Arm("none", "no auth filter", [], enforces=False),
        Arm("native", "native jwt_authn", [jwt_authn({"local_jwks": {"inline_string": jwks}})]),
        Arm("native_cache", "native + jwt_cache",
            [jwt_authn({"local_jwks": {"inline_string": jwks}}, JWT_CACHE_SIZE)],
            workloads=("rs256", "es256", "distinct")),
        Arm("ours", "ours (wasm)", [wasm_filter(policy(local), wasm)]),
        # The fixed cost of any Proxy-Wasm filter in this Envoy: ours with a policy that governs
        # no request (the governing policy is another phase's), so each request only crosses the wasm
        # boundary for the SDK's callbacks. What ours can at best reach against "none".
        Arm("wasm_floor", "wasm filter, no policy applies",
            [wasm_filter(floor_config(local), wasm)],
            enforces=False, workloads=("rs256",)),
        # The header cost does not depend on the algorithm: one workload is enough.
        Arm("ours_c2h", "ours + 3 claimsToHeaders",
            [wasm_filter(policy({**local, "claimsToHeaders": CLAIMS_TO_HEADERS}), wasm)], workloads=("rs256",)),
    ]


def guide_arms(jwks: str, wasm: Path) -> list[Arm]:
    """The guide's workload: the same arm names, each configured as the guide's policy."""
    h = GUIDE_HEADER
    return [
        Arm("none", "no auth filter", [], enforces=False, token_header=h),
        Arm("native", "native jwt_authn", [native_guide(jwks)], token_header=h),
        Arm("native_cache", "native + jwt_cache", [native_guide(jwks, JWT_CACHE_SIZE)], token_header=h),
        Arm("ours", "ours (wasm)", [wasm_filter(policy(guide_provider(jwks)), wasm)], token_header=h),
        Arm("wasm_floor", "wasm filter, no policy applies",
            [wasm_filter(floor_config(guide_provider(jwks)), wasm)],
            enforces=False, token_header=h),
    ]


def zipf_arms(jwks: str, wasm: Path) -> list[Arm]:
    """The many-users workload: native with and without its cache, ours at several cache sizes."""
    local = {"local": {"inline": jwks}}
    return [
        Arm("none", "no auth filter", [], enforces=False),
        Arm("native", "native jwt_authn", [jwt_authn({"local_jwks": {"inline_string": jwks}})]),
        Arm("native_cache", "native + jwt_cache",
            [jwt_authn({"local_jwks": {"inline_string": jwks}}, JWT_CACHE_SIZE)]),
        Arm("ours", "ours (wasm)", [wasm_filter(policy(local), wasm)]),
        *(Arm(f"ours_{n}", f"ours, maxCachedTokens {n}",
              [wasm_filter({"policies": [policy(local)], "settings": {"limits": {"maxCachedTokens": n}}}, wasm)])
          for n in ZIPF_CACHE_SIZES),
    ]


def cold_arms(wasm: Path) -> list[Arm]:
    """The remote-JWKS arms (cold start).  The URL's host is not used for routing: the cluster is."""
    remote = {"url": "http://127.0.0.1/jwks", "cluster": "jwks", "timeout": "5s"}
    return [
        Arm("ours", "ours, fetch on first request", [wasm_filter(policy({"remote": remote}), wasm)]),
        Arm("native", "native, fetch on first request", [native_remote(async_fetch=False)]),
        Arm("ours_async", "ours, `enableAsyncFetch: true`",
            [wasm_filter(policy({"remote": {**remote, "enableAsyncFetch": True}}), wasm)]),
        Arm("native_async", "native, `async_fetch: {}`", [native_remote(async_fetch=True)]),
    ]
