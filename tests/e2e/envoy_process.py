"""One Envoy process, as the end-to-end suite, the benchmark and the soak test run it: started
with ``--admin-address-path``, ready when the admin API says LIVE and every listener is bound
(ports read back from the admin API, so nothing needs a fixed port), then its stats, CPU time,
memory, log, and a clean stop. Each user subclasses it for its own bootstrap and arguments."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Callable


class EnvoyProcess:
    """``dir`` holds the bootstrap, ``envoy.log`` and ``admin.address``; ``args`` is the whole
    command line (which must pass ``--admin-address-path <dir>/admin.address``)."""

    error: type[Exception] = RuntimeError  # what start() raises; users set their own

    def __init__(self, name: str, dir: Path, args: list[str]):  # noqa: A002 - a directory
        self.name = name
        self.dir = dir
        self.args = args
        self.log_path = dir / "envoy.log"
        self.proc: subprocess.Popen | None = None
        self.admin_port = 0
        self.ports: dict[str, int] = {}  # listener name -> port

    # lifecycle ------------------------------------------------------------------
    def spawn(self, preexec_fn: Callable[[], None] | None = None) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)

    def wait_ready(self, timeout: float, interval: float = 0.05) -> None:
        """Until ready; raises ``error`` with the log's tail if Envoy exits or takes too long."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise self.error(f"envoy {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise self.error(f"envoy {self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(interval)

    def ready(self) -> bool:
        """Admin /ready is LIVE and the listeners are bound (:meth:`bound`; ports in ``self.ports``)."""
        try:
            if not self.admin_port:
                self.admin_port = self.read_admin_port()
                if not self.admin_port:
                    return False
            if self.admin("/ready").strip() != "LIVE":
                return False
            listeners = json.loads(self.admin("/listeners?format=json"))
        except (OSError, ValueError, http.client.HTTPException):
            return False
        self.ports = {item["name"]: int(item["local_address"]["socket_address"]["port_value"])
                      for item in listeners.get("listener_statuses", [])}
        return self.bound()

    def read_admin_port(self) -> int:
        """The admin port Envoy wrote to ``admin.address`` (0: not yet)."""
        text = (self.dir / "admin.address").read_text().strip()
        return int(text.rsplit(":", 1)[1]) if text else 0

    def bound(self) -> bool:
        """Whether the listeners that matter have a port: by default, every one."""
        return bool(self.ports) and all(self.ports.values())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # what it shows ----------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=10) as resp:
            return resp.read().decode()

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges from the admin ``/stats`` (optionally only names with ``prefix``)."""
        out = {}
        for line in self.admin("/stats").splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all threads) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self) -> dict[str, int]:
        """RSS and peak RSS (KiB, /proc/PID/status) and tcmalloc's allocated and heap size (bytes,
        admin /memory; V8's heap and the wasm memory are outside tcmalloc)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
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

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])
