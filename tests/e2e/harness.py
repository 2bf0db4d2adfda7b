"""Start a real Envoy with the jwt-policy-filter wasm and talk HTTP to it.

The one entry point is :func:`boot`::

    with boot({"config": {"providers": {...}}}) as envoy:
        resp = envoy.request("GET", "/get", headers={"X-Auth": "Bearer " + token})
        status, headers, body = resp

It renders an Envoy bootstrap from a template into a fresh directory under
``tests/e2e/.logs/`` (ignored by git), with every port chosen by the kernel
(port 0, read back from the admin API), so tests never collide with each
other or with ``make run``.  ``ENVOY_BIN`` overrides the Envoy binary (default
``.venv/bin/envoy``) and ``WASM`` the filter (default the release build).

Template options (all keyword arguments of :func:`boot` / :func:`render`):

``routes``                 list of Envoy route dicts (default: one ``/`` route named
                           ``httpbin-mesh`` with labels ``route: httpbin`` to ``httpbin``)
``route_labels``           labels of the default route (``None``: no route metadata)
``clusters``               extra Envoy cluster dicts (the ``httpbin`` echo cluster is always there)
``max_request_headers_kb`` the HTTP connection manager's header size limit
``http_filters_before``    extra HTTP filters placed before the wasm filter
``root_id`` / ``vm_id``    wasm root and VM ids
``log_level``              Envoy ``--log-level`` (default ``info``)
``component_log_level``    Envoy ``--component-log-level`` (default ``wasm:debug``)
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

import echo_upstream
from bootstrap import static_cluster
from envoy_process import EnvoyProcess

REPO = Path(__file__).resolve().parents[2]
LOG_ROOT = Path(__file__).resolve().parent / ".logs"
DEFAULT_HOST = "www.example.com"
READY_TIMEOUT = float(os.environ.get("ENVOY_READY_TIMEOUT", "30"))


def envoy_bin() -> str:
    return os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")


def wasm_path() -> str:
    path = os.environ.get("WASM") or str(
        REPO / "target" / "wasm32-wasip1" / "release" / "jwt_policy_filter.wasm"
    )
    return str(Path(path).resolve())


# --------------------------------------------------------------------------- upstream

_UPSTREAM: echo_upstream.EchoServer | None = None


def upstream_port() -> int:
    """The session's echo upstream (started on first use, in-process)."""
    global _UPSTREAM
    if _UPSTREAM is None:
        _UPSTREAM = echo_upstream.start(0)
        # socketserver listens with a backlog of 5: a burst of concurrent requests through Envoy
        # would overflow it (dropped SYNs, Envoy's 1 s connect timeout, 503).  Listening again
        # on the same socket only raises the backlog.
        _UPSTREAM.socket.listen(128)
    return _UPSTREAM.server_port


def stop_upstream() -> None:
    global _UPSTREAM
    if _UPSTREAM is not None:
        _UPSTREAM.shutdown()
        _UPSTREAM.server_close()
        _UPSTREAM = None


# --------------------------------------------------------------------------- template


def default_route(labels: Mapping[str, str] | None = None, name: str = "httpbin-mesh",
                  cluster: str = "httpbin", prefix: str = "/") -> dict:
    route: dict[str, Any] = {"name": name, "match": {"prefix": prefix}, "route": {"cluster": cluster}}
    if labels is not None:
        route["metadata"] = {"filter_metadata": {"jwt_policy": {"labels": dict(labels)}}}
    return route


def plugin_configuration(config: Union[str, Mapping, Sequence]) -> str:
    """The wasm plugin configuration string: dicts are JSON-encoded, strings kept verbatim."""
    if isinstance(config, (bytes, bytearray)):
        return config.decode()
    if isinstance(config, str):
        return config
    return json.dumps(config)


def wasm_filter(config: Union[str, Mapping], root_id: str = "jwt_policy_filter",
                vm_id: str = "", wasm: str | None = None) -> dict:
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "jwt_policy",
                "root_id": root_id,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_configuration(config),
                },
                "vm_config": {
                    "vm_id": vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm or wasm_path()}},
                },
            },
        },
    }


def render(config: Union[str, Mapping], *, upstream: int | None = None,
           routes: Sequence[dict] | None = None,
           route_labels: Mapping[str, str] | None = {"route": "httpbin"},
           clusters: Iterable[dict] = (),
           max_request_headers_kb: int | None = None,
           http_filters_before: Iterable[dict] = (),
           root_id: str = "jwt_policy_filter", vm_id: str = "",
           wasm: str | None = None) -> dict:
    """The Envoy bootstrap (a dict) for one plugin configuration."""
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress_http",
        "codec_type": "AUTO",
        "route_config": {
            "name": "local_route",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": list(routes) if routes is not None else [default_route(route_labels)],
                }
            ],
        },
        "http_filters": [
            *http_filters_before,
            wasm_filter(config, root_id=root_id, vm_id=vm_id, wasm=wasm),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }
    if max_request_headers_kb is not None:
        hcm["max_request_headers_kb"] = max_request_headers_kb
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "main",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
                    ],
                }
            ],
            "clusters": [
                static_cluster("httpbin", upstream if upstream is not None else upstream_port()),
                *clusters,
            ],
        },
    }


# --------------------------------------------------------------------------- HTTP

HeaderValue = Union[str, bytes]
HeadersArg = Union[Mapping[str, HeaderValue], Sequence[tuple[str, HeaderValue]], None]


class Headers:
    """An ordered multi-map of response headers with case-insensitive lookup."""

    def __init__(self, items: Iterable[tuple[str, str]]):
        self.items = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.items:
            if key.lower() == name.lower():
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.items if key.lower() == name.lower()]

    def __contains__(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key, _ in self.items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"


class Response:
    """What the client saw.  Unpacks as ``status, headers, body``."""

    def __init__(self, status: int, headers: Headers, raw: bytes):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.body = raw.decode("utf-8", "replace")

    def __iter__(self) -> Iterator:
        return iter((self.status, self.headers, self.body))

    def json(self) -> Any:
        return json.loads(self.raw)

    def echo(self) -> "Echo":
        """The echo upstream's view of the forwarded request (only for 200s)."""
        assert self.status == 200, f"expected the upstream's 200, got {self.status}: {self.body!r}"
        return Echo(self.json())

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers!r}, {self.body[:300]!r})"


class Echo:
    """The request as the echo upstream received it."""

    def __init__(self, data: dict):
        self.data = data
        self.url: str = data["url"]
        self.args: dict[str, list[str]] = data["args"]
        self.method: str = data["method"]
        self._headers = {k.lower(): v for k, v in data["headers"].items()}

    def header(self, name: str) -> list[str]:
        """All values of one forwarded header, in order ([] when absent)."""
        return list(self._headers.get(name.lower(), []))

    def joined(self, name: str) -> str | None:
        """All values joined by ``,``: the same whether Envoy sent one line or several."""
        values = self.header(name)
        return ",".join(values) if values else None

    def has(self, name: str) -> bool:
        return name.lower() in self._headers

    def __repr__(self) -> str:
        return f"Echo({self.data!r})"


def http_request(port: int, method: str = "GET", path: str = "/", headers: HeadersArg = None,
                 host: str | bytes | None = DEFAULT_HOST, body: bytes | str | None = None,
                 timeout: float = 10.0) -> Response:
    """One HTTP/1.1 request on a new connection; header values may be raw bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        items = headers.items() if isinstance(headers, Mapping) else (headers or [])
        for name, value in items:
            conn.putheader(name, value)
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        raw = resp.read()
        return Response(resp.status, Headers(resp.getheaders()), raw)
    finally:
        conn.close()


# --------------------------------------------------------------------------- Envoy


def log_digest(log: str, limit: int = 40) -> str:
    """The warning/error lines of an Envoy log (the info banner is thousands of characters)."""
    lines = [line for line in log.splitlines()
             if any(level in line for level in ("[warning]", "[error]", "[critical]", "panicked"))]
    return "\n".join(lines[-limit:]) or "\n".join(log.splitlines()[-10:])


class EnvoyExited(RuntimeError):
    def __init__(self, returncode: int | None, log: str):
        super().__init__(f"envoy exited with {returncode} before it was ready:\n{log_digest(log)}")
        self.returncode = returncode
        self.log = log


class Envoy(EnvoyProcess):
    """One running Envoy process (see :func:`boot`)."""

    def __init__(self, config: Union[str, Mapping, None], *, name: str = "envoy",
                 log_level: str = "info", component_log_level: str | None = "wasm:debug",
                 concurrency: int = 1, bootstrap: dict | None = None, **template: Any):
        """``bootstrap`` replaces the rendered template (then ``config`` is ignored); its
        admin must listen on port 0 and its listener be named ``main``."""
        LOG_ROOT.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=LOG_ROOT))
        self.bootstrap = bootstrap if bootstrap is not None else render(config, **template)
        self.config_path = self.dir / "envoy.json"
        self.config_path.write_text(json.dumps(self.bootstrap, indent=2))
        self.admin_path = self.dir / "admin.address"
        self.args = [
            envoy_bin(), "-c", str(self.config_path),
            "--concurrency", str(concurrency),
            "--log-level", log_level,
            "--disable-hot-restart",
            "--admin-address-path", str(self.admin_path),
        ]
        if component_log_level:
            self.args += ["--component-log-level", component_log_level]
        super().__init__(name, self.dir, self.args)
        self._log_keep = None  # a read handle on the log (see log_text)

    @property
    def port(self) -> int:
        """The port of the listener named ``main``."""
        return self.ports.get("main", 0)

    # lifecycle -------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT) -> "Envoy":
        self._spawn()
        deadline = time.monotonic() + timeout
        respawns = 2
        while True:
            if self.proc.poll() is not None:
                if respawns and not self.config_path.exists():
                    # Another pytest session in this checkout started and wiped LOG_ROOT
                    # (clean_logs) before this Envoy read its config: write it again, retry.
                    respawns -= 1
                    self._spawn()
                    continue
                raise EnvoyExited(self.proc.returncode, self.log_text())
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"envoy not LIVE after {timeout}s; log tail:\n{self.log_text()[-4000:]}")
            if self.ready():
                return self
            time.sleep(0.05)

    def _spawn(self) -> None:
        if not self.config_path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(json.dumps(self.bootstrap, indent=2))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(REPO))
        log.close()
        self._log_keep = open(self.log_path, "rb")

    def read_admin_port(self) -> int:
        try:
            address = self.admin_path.read_text().strip()
        except OSError:
            address = ""
        if not address:
            # The folder may have been removed under us (another pytest session in the same
            # checkout starting: clean_logs), so Envoy could not write the file; it also logs
            # "admin address: HOST:PORT" at startup.
            found = re.search(r"admin address: [^\s:]+:(\d+)", self.log_text())
            return int(found.group(1)) if found else 0
        return int(address.rsplit(":", 1)[1])

    def bound(self) -> bool:
        return bool(self.port)

    def __enter__(self) -> "Envoy":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # inspection ------------------------------------------------------------
    def alive(self) -> bool:
        """Still running and answering its admin ``/ready``."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            return self.admin("/ready").strip() == "LIVE"
        except (OSError, http.client.HTTPException):
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            pass
        # The folder can vanish under a running Envoy when another pytest session in the same
        # checkout starts (clean_logs); the handle kept since start still reads the whole log.
        if self._log_keep is not None:
            try:
                self._log_keep.seek(0)
                return self._log_keep.read().decode(errors="replace")
            except (OSError, ValueError):
                pass
        return ""

    # traffic ---------------------------------------------------------------
    def request(self, method: str = "GET", path: str = "/", headers: HeadersArg = None,
                host: str | bytes | None = DEFAULT_HOST, body: bytes | str | None = None,
                timeout: float = 10.0) -> Response:
        return http_request(self.port, method, path, headers=headers, host=host, body=body, timeout=timeout)

    def get(self, path: str = "/", headers: HeadersArg = None, **kw: Any) -> Response:
        return self.request("GET", path, headers=headers, **kw)


def boot(config: Union[str, Mapping, None], **opts: Any) -> Envoy:
    """Start Envoy with this plugin configuration; use as a context manager (stops at exit)."""
    return Envoy(config, **opts).start()


def run_until_exit(config: Union[str, Mapping], timeout: float = READY_TIMEOUT,
                   **opts: Any) -> tuple[int | None, str]:
    """Start Envoy expecting it to refuse the configuration.

    Returns ``(returncode, log)``: the exit code when Envoy exited by itself,
    or ``None`` when it became ready anyway (it is stopped then)."""
    envoy = Envoy(config, **opts)
    try:
        envoy.start(timeout=timeout)
    except EnvoyExited as exited:
        return exited.returncode, exited.log
    envoy.stop()
    return None, envoy.log_text()


def clean_logs() -> None:
    shutil.rmtree(LOG_ROOT, ignore_errors=True)
