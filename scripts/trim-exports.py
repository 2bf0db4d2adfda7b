#!/usr/bin/env python3
"""Removes the Proxy-Wasm callbacks the filter does not use from a .wasm's export section.

The Rust SDK exports every `proxy_on_*` callback, and Envoy calls each one the module exports:
for an HTTP request that is also `proxy_on_response_headers`, `proxy_on_response_body` (once
per body chunk), `proxy_on_response_trailers` and `proxy_on_log`, each one entry into the VM
that only answers "continue". The host skips a callback the module does not export, answering
exactly what the SDK's default would (Continue), so removing these exports changes nothing but
the cost. `proxy_on_request_body`/`_trailers` go too: while a request waits for keys, Envoy
holds its body behind the paused headers whether or not the filter sees it (tested in
tests/e2e/test_remote_jwks.py).

Usage: trim-exports.py FILE.wasm  (rewrites FILE in place; running it twice changes nothing)
"""

from __future__ import annotations

import sys
from pathlib import Path

UNUSED = {
    "proxy_on_request_body", "proxy_on_request_trailers",
    "proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers",
    "proxy_on_log",
    # Network-filter callbacks: never called for an HTTP filter, dropped for tidiness.
    "proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close", "proxy_on_upstream_connection_close",
}
EXPORT_SECTION = 7


def leb(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def to_leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def trim(wasm: bytes) -> tuple[bytes, list[str]]:
    if wasm[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    out, pos, removed = bytearray(wasm[:8]), 8, []
    while pos < len(wasm):
        section_id = wasm[pos]
        size, body = leb(wasm, pos + 1)
        end = body + size
        if section_id != EXPORT_SECTION:
            out += wasm[pos:end]
            pos = end
            continue
        count, p = leb(wasm, body)
        kept = []
        for _ in range(count):
            name_len, q = leb(wasm, p)
            name = wasm[q:q + name_len].decode()
            _, after = leb(wasm, q + name_len + 1)  # kind byte, then the index
            if name in UNUSED:
                removed.append(name)
            else:
                kept.append(wasm[p:after])
            p = after
        if p != end:
            raise ValueError("export section does not parse")
        content = to_leb(len(kept)) + b"".join(kept)
        out += bytes([EXPORT_SECTION]) + to_leb(len(content)) + content
        pos = end
    return bytes(out), removed


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    path = Path(sys.argv[1])
    trimmed, removed = trim(path.read_bytes())
    if removed:
        path.write_bytes(trimmed)
    print(f"{path}: {len(removed)} unused callback export(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
