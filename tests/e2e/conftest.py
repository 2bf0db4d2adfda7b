"""Fixtures of the end-to-end suite: one echo upstream per session, and ``envoy(config)``.

``envoy(config, **opts)`` returns a running Envoy for that plugin configuration,
booting it on first use and reusing it for later tests that ask for the same
configuration (a few stay running; the least recently used is stopped).  Use
``harness.boot(...)`` directly as a context manager for a private Envoy (e.g.
a test that may crash it).
"""

from __future__ import annotations

import json
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

MAX_RUNNING = 4


def pytest_sessionstart(session: pytest.Session) -> None:
    harness.clean_logs()
    missing = [p for p in (harness.envoy_bin(), harness.wasm_path()) if not os.path.exists(p)]
    if missing:
        pytest.exit(f"missing {', '.join(missing)}: run `make build-wasm envoy` first "
                    "(or set ENVOY_BIN / WASM)", returncode=4)


class EnvoyPool:
    def __init__(self) -> None:
        self.running: OrderedDict[str, harness.Envoy] = OrderedDict()
        self.refused: dict[str, harness.EnvoyExited] = {}
        self.used: list[harness.Envoy] = []

    def get(self, config: Any, **opts: Any) -> harness.Envoy:
        key = json.dumps([harness.plugin_configuration(config), opts], sort_keys=True, default=str)
        if key in self.refused:  # do not boot the same refused configuration again
            refused = self.refused[key]
            raise harness.EnvoyExited(refused.returncode, refused.log)
        envoy = self.running.pop(key, None)
        if envoy is not None and not envoy.alive():
            envoy.stop()
            envoy = None
        if envoy is None:
            while len(self.running) >= MAX_RUNNING:
                _, oldest = self.running.popitem(last=False)
                oldest.stop()
            try:
                envoy = harness.boot(config, **opts)
            except harness.EnvoyExited as exited:
                self.refused[key] = exited
                raise
        self.running[key] = envoy
        self.used.append(envoy)
        return envoy

    def stop_all(self) -> None:
        for envoy in self.running.values():
            envoy.stop()
        self.running.clear()


@pytest.fixture(scope="session", autouse=True)
def upstream() -> Iterator[int]:
    """The echo upstream every Envoy's ``httpbin`` cluster points at."""
    yield harness.upstream_port()
    harness.stop_upstream()


@pytest.fixture(scope="session")
def envoy_pool(upstream: int) -> Iterator[EnvoyPool]:
    pool = EnvoyPool()
    yield pool
    pool.stop_all()


@pytest.fixture
def envoy(envoy_pool: EnvoyPool, request: pytest.FixtureRequest):
    """``envoy(config, **boot_opts)`` -> a running :class:`harness.Envoy`."""
    envoy_pool.used = []
    yield envoy_pool.get
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for used in envoy_pool.used:
            tail = "\n".join(used.log_text().splitlines()[-15:])
            request.node.add_report_section("call", f"envoy {used.dir}", tail)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
