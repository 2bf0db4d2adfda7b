"""One Envoy process of the benchmark: start (pinned to CPUs), wait until ready, read its CPU
time and memory, stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable


class BenchError(RuntimeError):
    """The benchmark cannot go on (an Envoy did not start, an arm does not enforce, ...)."""


def pinned(cpus: set[int]) -> Callable[[], None]:
    """A preexec_fn that pins the child process to ``cpus``."""
    return lambda: os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Envoy:
    """``Envoy(binary, name, bootstrap, cpus, workdir).start()``; ``port`` is the listener named
    "arm" (or "upstream" when there is no "arm"), read back from the admin API."""

    def __init__(self, binary: str, name: str, config: dict, cpus: set[int], workdir: Path):
        self.binary = binary
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        (self.dir / "envoy.json").write_text(json.dumps(config, indent=1))
        self.cpus = cpus
        self.proc: subprocess.Popen | None = None
        self.admin_port = 0
        self.port = 0
        self.ready_s = 0.0   # from exec to admin /ready LIVE with the listener bound

    def start(self, timeout: float = 60) -> "Envoy":
        args = [self.binary, "-c", str(self.dir / "envoy.json"), "--concurrency", "1",
                "--log-level", "warn", "--disable-hot-restart",
                "--admin-address-path", str(self.dir / "admin.address")]
        with open(self.dir / "envoy.log", "wb") as out:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=pinned(self.cpus))
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise BenchError(f"envoy {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"envoy {self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.005)
        self.ready_s = time.perf_counter() - t0
        return self

    def _ready(self) -> bool:
        try:
            if not self.admin_port:
                text = (self.dir / "admin.address").read_text().strip()
                if not text:
                    return False
                self.admin_port = int(text.rsplit(":", 1)[1])
            if self.admin("/ready").strip() != "LIVE":
                return False
            listeners = json.loads(self.admin("/listeners?format=json"))
        except (OSError, ValueError, http.client.HTTPException):
            return False
        ports = {item["name"]: int(item["local_address"]["socket_address"]["port_value"])
                 for item in listeners.get("listener_statuses", [])}
        self.port = ports.get("arm") or ports.get("upstream") or 0
        return bool(self.port)

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=10) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.dir / "envoy.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all threads) so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self) -> dict:
        """RSS and peak RSS (KiB, /proc/PID/status) and tcmalloc's view (bytes, admin /memory)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
               if line.startswith(("VmRSS:", "VmHWM:"))}
        out = {"rss_kib": kib.get("VmRSS", 0), "hwm_kib": kib.get("VmHWM", 0)}
        try:
            mem = json.loads(self.admin("/memory"))
            out["allocated"] = int(mem.get("allocated", 0))
            out["heap_size"] = int(mem.get("heap_size", 0))
        except (OSError, ValueError, http.client.HTTPException):
            pass
        return out


def get(port: int, token: str | None = None) -> tuple[int, str]:
    """GET / on a new connection, with ``Authorization: Bearer <token>`` when given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()
