#!/usr/bin/env python3
"""A tiny go-httpbin-like echo upstream (stdlib only).

Every request, whatever its method and path, is answered 200 with JSON shaped
like go-httpbin's ``/get``::

    {"args": {"name": ["v", ...]},
     "headers": {"Canonical-Name": ["v1", "v2", ...]},
     "method": "GET",
     "url": "/path?query as received",
     "origin": "127.0.0.1",
     "body": "<request body, if any>"}

A header sent several times stays several list entries, in arrival order, so a
claim header appended after an incoming one shows both values.  Header bytes
are decoded as ISO-8859-1 (what HTTP/1.1 carries), so nothing is lost.

Usage: ``python echo_upstream.py PORT [HOST]`` (HOST defaults to 127.0.0.1;
PORT 0 picks a free port, printed on stdout as ``listening on HOST:PORT``).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: ``x-org`` -> ``X-Org``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-upstream"
    # TCP_NODELAY: the headers and the body go out in two writes; with Nagle the body waited
    # for Envoy's delayed ACK, 40 ms on every request after a connection's first.
    disable_nagle_algorithm = True
    sys_version = ""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _echo(self) -> None:
        body = self._read_body()
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(canonical(name), []).append(value)
        query = urlsplit(self.path).query
        payload = {
            "args": parse_qs(query, keep_blank_values=True),
            "headers": headers,
            "method": self.command,
            "url": self.path,
            "origin": self.client_address[0],
        }
        if body:
            payload["body"] = body.decode("utf-8", "replace")
        out = json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _echo

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib name
        pass  # keep test output quiet


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(port: int = 0, host: str = "127.0.0.1") -> EchoServer:
    """Start the echo server on a background thread; ``server.server_port`` is the port."""
    server = EchoServer((host, port), EchoHandler)
    threading.Thread(target=server.serve_forever, name="echo-upstream", daemon=True).start()
    return server


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        print("usage: echo_upstream.py PORT [HOST]", file=sys.stderr)
        return 2
    host = argv[2] if len(argv) == 3 else "127.0.0.1"
    server = EchoServer((host, int(argv[1])), EchoHandler)
    print(f"listening on {host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
