#!/usr/bin/env python3
"""`make vm-bench`: microseconds per signature verification inside Envoy's own V8.

Starts the pinned Envoy (`--concurrency 1`) with the module built `--features vmbench` (it times
the fixture tokens' verification when configured, on each VM: the main thread's and the
worker's) and prints its `VMBENCH` lines. Node's V8 (`scripts/run-wasi.cjs`) is an older V8
than Envoy's; this measures the engine the filter runs in.

    scripts/vm_bench.py WASM [ALG=RUNS ...] [--rounds N]      e.g. ES256=400 RS256=800 --rounds 9
    scripts/vm_bench.py WASM --hostcalls [--rounds N]         ns per host call, in a request

Each VM reports the median over the rounds (the algorithms interleaved within a round); on a
shared machine read the medians, and compare algorithms measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from bootstrap import http_listener, static_bootstrap, wasm_filter  # noqa: E402

ENVOY = ROOT / ".venv" / "bin" / "envoy"


def start_envoy(d: Path, conf: dict, wasm: str, port: int = 0,
                routes: list[dict] | None = None) -> tuple[subprocess.Popen, Path]:
    """The pinned Envoy (`--concurrency 1`) with the module configured with ``conf`` on a
    listener at ``port`` (with ``routes``); its log in ``d``."""
    boot = static_bootstrap([http_listener("bench", routes or [], [wasm_filter(conf, wasm)], port)], [])
    (d / "envoy.json").write_text(json.dumps(boot))
    log = d / "envoy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(ENVOY), "-c", str(d / "envoy.json"), "--concurrency", "1",
                                 "-l", "warning", "--base-id", str(int(time.time()) % 60000 + 1000)],
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    wasm, rest = argv[0], argv[1:]
    rounds = 5
    if "--rounds" in rest:
        i = rest.index("--rounds")
        rounds = int(rest[i + 1])
        rest = rest[:i] + rest[i + 2:]
    if "--hostcalls" in rest:
        return hostcalls(wasm, rounds)
    runs = {a: int(n) for a, n in (x.split("=", 1) for x in rest)} or {
        "RS256": 800, "ES256": 400, "ES384": 100, "ES512": 100, "EdDSA": 400}
    conf = {"runs": runs, "rounds": rounds}
    expected = 2 * len(runs)  # each VM (main thread, worker) reports every one
    with tempfile.TemporaryDirectory(prefix="vm-bench-") as d:
        proc, log = start_envoy(Path(d), conf, wasm)
        lines: list[str] = []
        deadline = time.time() + 600
        try:
            while time.time() < deadline and proc.poll() is None:
                lines = [x for x in log.read_text(errors="replace").splitlines() if "VMBENCH" in x]
                if len(lines) >= expected:
                    break
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(10)
        half = len(lines) // 2
        for i, x in enumerate(lines):
            if i in (0, half):
                print("# the main thread's VM (created first, while Envoy starts)" if i == 0
                      else "# the worker's VM (the one that serves requests)")
            print(x[x.index("VMBENCH"):])
        if len(lines) < expected or any("[error]" in x for x in lines):
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 1
    return 0


HOSTCALLS = ("none", "headers", "add-remove", "remove-absent", "clear-route-cache", "time", "metric",
             "route-labels", "route-name")
# The hostcalls' route: labels in its metadata as the guide's routes carry them (`route-labels`).
LABELED_ROUTE = {"name": "labeled", "match": {"prefix": "/"}, "direct_response": {"status": 200},
                 "metadata": {"filter_metadata": {"jwt_policy": {"labels": {"route": "httpbin"}}}}}


def hostcalls(wasm: str, rounds: int, n: int = 20000) -> int:
    """Each host call timed `n` times inside one request's context, `rounds` times interleaved;
    the median ns per call (the module answers each request itself)."""
    import socket
    import statistics
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="vm-bench-") as d:
        proc, _ = start_envoy(Path(d), {"runs": {}}, wasm, port, [LABELED_ROUTE])
        results: dict[str, list[float]] = {op: [] for op in HOSTCALLS}
        try:
            def ask(op: str) -> float:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/",
                                             headers={"x-bench-op": op, "x-bench-n": str(n),
                                                      "authorization": "Bearer " + "x" * 600})
                with urllib.request.urlopen(req, timeout=30) as r:
                    return float(r.read().decode().split()[1])
            for _ in range(100):
                try:
                    ask("none")
                    break
                except OSError:
                    time.sleep(0.1)
            for _ in range(rounds):
                for op in HOSTCALLS:
                    results[op].append(ask(op))
        finally:
            proc.terminate()
            proc.wait(10)
    for op, v in results.items():
        print(f"HOSTCALL {op:18s} median {statistics.median(v):7.0f} ns per call "
              f"({len(v)} rounds of {n}: {min(v):.0f}–{max(v):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
