"""One Envoy process of the benchmark: start (pinned to CPUs), wait until ready, read its CPU
time and memory, stop."""

from __future__ import annotations

import http.client
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

from envoy_process import EnvoyProcess  # tests/e2e (bench.py puts it on sys.path)


class BenchError(RuntimeError):
    """The benchmark cannot go on (an Envoy did not start, an arm does not enforce, ...)."""


def pinned(cpus: set[int]) -> Callable[[], None]:
    """A preexec_fn that pins the child process to ``cpus``."""
    return lambda: os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Envoy(EnvoyProcess):
    """``Envoy(binary, name, bootstrap, cpus, workdir).start()``; ``port`` is the listener named
    "arm" (or "upstream" when there is no "arm"), read back from the admin API."""

    error = BenchError

    def __init__(self, binary: str, name: str, config: dict, cpus: set[int], workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        (directory / "envoy.json").write_text(json.dumps(config, indent=1))
        super().__init__(name, directory, [
            binary, "-c", str(directory / "envoy.json"), "--concurrency", "1", "--log-level", "warn",
            "--disable-hot-restart", "--admin-address-path", str(directory / "admin.address")])
        self.cpus = cpus
        self.ready_s = 0.0   # from exec to admin /ready LIVE with the listener bound

    @property
    def port(self) -> int:
        return self.ports.get("arm") or self.ports.get("upstream") or 0

    def start(self, timeout: float = 60) -> "Envoy":
        t0 = time.perf_counter()
        self.spawn(preexec_fn=pinned(self.cpus))
        self.wait_ready(timeout, interval=0.005)
        self.ready_s = time.perf_counter() - t0
        return self


def get(port: int, token: str | None = None, header: str = "Authorization") -> tuple[int, str]:
    """GET / on a new connection, with ``<header>: Bearer <token>`` when given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={header: f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()
