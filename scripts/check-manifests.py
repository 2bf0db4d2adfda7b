#!/usr/bin/env python3
"""Validate the Istio resources of istio/ (and what `jwt-policy render --istio` makes) against Istio's CRDs.

    make check-manifests                       # installs the pinned schemas once, then runs this
    .venv/bin/python scripts/check-manifests.py [--cli target/debug/jwt-policy] [FILE_OR_DIR ...]

Reads every YAML file given (directories: their *.yaml / *.yml, recursively; default: istio/), every
document of each, and, with --cli, renders `jwt-policy render --istio` over policies/*.yaml and checks
that output too.  The validation itself is scripts/check-manifests.mjs (Node.js), with the CRD schemas
of the npm package pinned in istio/schema/ (installed into .cache/istio-schema/ by the Make target):
Istio's openAPIV3Schema plus unknown-field rejection as `kubectl apply` does.  Non-Istio resources
are listed as skipped (the JWTPolicy inside pluginConfig is `make check-policies`' job).

Exit status: 0 all valid, 1 a resource is invalid (one line per problem, naming file, document,
resource and field), 2 a file cannot be read or parsed, or the tools are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO / ".cache" / "istio-schema"
VALIDATOR = REPO / "scripts" / "check-manifests.mjs"
# What `make check-manifests` renders with the CLI: the clients' sidecars (route names exist there,
# not on httpbin's inbound side, which render refuses for them) and a gateway, over the policies.
RENDER_VARIANTS = (
    ["--namespace", "istio-system", "--mode", "CLIENT", "--image", "oci://registry.example.com/jwt-policy-filter:0.1.0"],
    ["--namespace", "istio-system", "--selector", "istio=ingressgateway", "--gateway"],
)


def yaml_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
        else:
            out.append(p)
    return out


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def load_docs(source: str, text: str) -> list[dict]:
    docs = []
    for i, doc in enumerate(yaml.safe_load_all(text), start=1):
        if doc is not None:
            docs.append({"source": source, "index": i, "doc": doc})
    return docs


def selects_route_labels(policy: Path) -> bool:
    """True when a JWTPolicy of the file selects routes by labels: Istio cannot evaluate that."""
    for doc in yaml.safe_load_all(policy.read_text()):
        for sel in ((doc or {}).get("spec") or {}).get("applyToRoutes") or []:
            if ((sel or {}).get("route") or {}).get("labels"):
                return True
    return False


REFUSED_ON_ISTIO = "select the VirtualService http route by `name`"


def render_docs(cli: str, policies: list[Path]) -> list[dict]:
    docs = []
    for variant in RENDER_VARIANTS:
        for policy in policies:
            cmd = [cli, "render", "--istio", *variant, str(policy)]
            shown = " ".join(["jwt-policy", "render", "--istio", *variant, rel(policy)])
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if selects_route_labels(policy):
                # such a policy would select nothing on Istio: render must refuse it
                if proc.returncode == 0 or REFUSED_ON_ISTIO not in proc.stderr:
                    raise SystemExit(f"check-manifests: `{shown}` should refuse the route-label selector:\n"
                                     f"{proc.stderr.strip()}")
                continue
            if proc.returncode != 0:
                raise SystemExit(f"check-manifests: `{shown}` failed ({proc.returncode}):\n{proc.stderr.strip()}")
            rendered = load_docs(shown, proc.stdout)
            if not any(d["doc"].get("kind") == "WasmPlugin" for d in rendered if isinstance(d["doc"], dict)):
                raise SystemExit(f"check-manifests: `{shown}` rendered no WasmPlugin:\n{proc.stdout[:500]}")
            docs += rendered
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="YAML files or directories (default: istio/)")
    ap.add_argument("--cli", help="the jwt-policy binary: also check `jwt-policy render --istio` over --policies")
    ap.add_argument("--policies", nargs="*", type=Path, default=None,
                    help="policy files to render with --cli (default: policies/*.yaml)")
    ap.add_argument("--schema-dir", type=Path, default=Path(os.environ.get("ISTIO_SCHEMA_DIR", SCHEMA_DIR)))
    args = ap.parse_args(argv)

    node = shutil.which("node")
    if node is None:
        print("check-manifests: node (Node.js) not found; install it (apt-get install nodejs)", file=sys.stderr)
        return 2
    docs: list[dict] = []
    for path in yaml_files(args.paths or [REPO / "istio"]):
        try:
            docs += load_docs(rel(path), path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            print(f"{rel(path)}: cannot read: {exc}", file=sys.stderr)
            return 2
    if args.cli:
        policies = args.policies if args.policies is not None else sorted((REPO / "policies").glob("*.yaml"))
        docs += render_docs(args.cli, policies)
    if not docs:
        print("check-manifests: no documents to check", file=sys.stderr)
        return 2
    proc = subprocess.run([node, str(VALIDATOR), str(args.schema_dir)], input=json.dumps(docs), text=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
