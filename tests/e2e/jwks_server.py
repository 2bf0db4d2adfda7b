"""A JWKS server the end-to-end tests control (stdlib only, threaded, 127.0.0.1).

    server = JwksServer(KEY).start()             # port chosen by the kernel
    server.url                                   # http://127.0.0.1:PORT/jwks
    server.count                                 # requests for the JWKS path received so far
    server.fail(503)                             # answer 503 from now on
    server.serve_body(b"{not json")              # answer 200 with this body
    server.stall(5)                              # wait 5 s before answering (then as usual)
    server.reset()                               # read the request, close the connection, no answer
    server.refuse()                              # stop listening: connections are refused (port kept)
    server.add_keys(NEW_KEY); server.set_keys(K) # rotation
    server.ok()                                  # back to normal: listening, no stall, the JWKS
    server.stop()

Every answer carries ``Connection: close``, so each fetch is a new connection and ``refuse``
takes effect at once (no pooled connection keeps working).  ``requests`` records every request
(time, method, path, headers); ``count`` counts those for ``path`` (any mode but ``refuse``,
where nothing reaches the server).  ``wait_for_count(n, timeout)`` polls.

Usage as a program (for poking at it by hand): ``python jwks_server.py PORT [JWKS-FILE]``.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

@dataclass
class Seen:
    """One request as the server saw it."""

    at: float  # time.monotonic()
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: "JwksServer"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jwks-test-server"
    # TCP_NODELAY: the headers and the body go out in two writes; with Nagle the body waited
    # for Envoy's delayed ACK, 40 ms on every request after a connection's first.
    disable_nagle_algorithm = True
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _answer(self) -> None:
        owner = self.server.owner
        seen = Seen(time.monotonic(), self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        mode, delay, status, body, content_type = owner._record(seen)
        self.close_connection = True
        if delay > 0 and owner._stop.wait(delay):
            return  # shutting down: drop the connection
        if mode == "reset":
            # An abortive close (RST), no status line: the client sees a reset before headers.
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass  # the client gave up (e.g. Envoy's callout timed out during a stall)

    do_GET = do_HEAD = do_POST = _answer


class JwksServer:
    """See the module docstring."""

    def __init__(self, *keys: Any, path: str = "/jwks", host: str = "127.0.0.1", port: int = 0):
        self.path = path
        self.host = host
        self.port = port
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._keys: list[dict] = [self._jwk(k) for k in keys]
        self._mode = "ok"  # ok | status | body | reset
        self._delay = 0.0
        self._status = 200
        self._body = b""
        self._content_type = "application/json"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._holder: socket.socket | None = None  # keeps the port while refusing

    # lifecycle -------------------------------------------------------------
    def start(self, refusing: bool = False) -> "JwksServer":
        """Listen (or, with ``refusing``, only reserve the port: connections are refused)."""
        if refusing:
            self._hold_port()
        else:
            self._listen()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._unlisten()
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    def __enter__(self) -> "JwksServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def _listen(self) -> None:
        if self._server is not None:
            return
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        last: OSError | None = None
        for _ in range(50):  # the port was just released by us; retry briefly if it lingers
            try:
                server = _Server((self.host, self.port), _Handler)
                break
            except OSError as e:
                last = e
                time.sleep(0.05)
        else:
            raise RuntimeError(f"cannot listen again on {self.host}:{self.port}: {last}")
        server.owner = self
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"jwks-{self.port}", daemon=True)
        self._thread.start()

    def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _hold_port(self) -> None:
        """Bind the port without listening: a connection gets RST (refused), the port stays ours."""
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((self.host, self.port))
        self.port = holder.getsockname()[1]
        self._holder = holder

    # behaviour -------------------------------------------------------------
    def ok(self) -> "JwksServer":
        """Listening, no stall, answering the JWKS with 200."""
        with self._lock:
            self._mode, self._delay = "ok", 0.0
        self._listen()
        return self

    def fail(self, status: int = 503, body: bytes = b"upstream unavailable\n") -> "JwksServer":
        with self._lock:
            self._mode, self._status, self._body, self._content_type = "status", status, body, "text/plain"
        return self

    def serve_body(self, body: bytes | str, status: int = 200,
                   content_type: str = "application/json") -> "JwksServer":
        with self._lock:
            self._mode, self._status, self._content_type = "body", status, content_type
            self._body = body.encode() if isinstance(body, str) else body
        return self

    def stall(self, seconds: float) -> "JwksServer":
        """Wait this long before every answer (whatever the mode); ``stall(0)`` stops stalling."""
        with self._lock:
            self._delay = float(seconds)
        return self

    def reset(self) -> "JwksServer":
        """Accept, read the request, then close the connection with a reset and no answer."""
        with self._lock:
            self._mode = "reset"
        return self

    def refuse(self) -> "JwksServer":
        """Stop listening (the port stays reserved): connections are refused until ``ok()``."""
        self._unlisten()
        self._hold_port()
        return self

    def set_keys(self, *keys: Any) -> "JwksServer":
        with self._lock:
            self._keys = [self._jwk(k) for k in keys]
        return self

    def add_keys(self, *keys: Any) -> "JwksServer":
        with self._lock:
            self._keys.extend(self._jwk(k) for k in keys)
        return self

    def document(self) -> bytes:
        with self._lock:
            return json.dumps({"keys": list(self._keys)}).encode()

    @staticmethod
    def _jwk(key: Any) -> dict:
        if isinstance(key, dict):
            return dict(key)
        return key.jwk()

    def _record(self, seen: Seen) -> tuple[str, float, int, bytes, str]:
        with self._changed:
            self.requests.append(seen)
            self._changed.notify_all()
            mode, delay = self._mode, self._delay
            if seen.path.split("?", 1)[0] != self.path.split("?", 1)[0] and mode == "ok":
                return "status", delay, 404, b"not found\n", "text/plain"
            if mode == "ok":
                body = json.dumps({"keys": list(self._keys)}).encode()
                return mode, delay, 200, body, "application/json"
            return mode, delay, self._status, self._body, self._content_type

    # observation -----------------------------------------------------------
    @property
    def count(self) -> int:
        """Requests for the JWKS path received so far."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == self.path)

    def fetches(self) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == self.path]

    def wait_for_count(self, n: int, timeout: float) -> bool:
        """Wait until ``count >= n``; False when ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for r in self.requests if r.path == self.path) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: jwks_server.py PORT [JWKS-FILE]", file=sys.stderr)
        return 2
    keys: Iterable[dict] = []
    if len(argv) == 3:
        with open(argv[2]) as f:
            keys = json.load(f)["keys"]
    server = JwksServer(*keys, port=int(argv[1])).start()
    print(f"serving {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
