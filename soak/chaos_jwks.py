"""The soak test's JWKS server: the e2e suite's :class:`jwks_server.JwksServer`, whose every
fetch is decided on its own:

* the keys follow the rotation schedule (:class:`material.Schedule`): what is served is decided
  from the wall clock when the request arrives;
* ``fail_rate`` of the fetches are answered with a 5xx (500/502/503/504, at random);
* ``stall_rate`` of them wait ``stall_s`` (past the filter's ``timeout``) before answering 200;
* the rest are answered 200 with the current JWKS at once.

Every fetch is recorded (:class:`Fetch`): when, what it answered, which keys it held.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass

from material import Material

import jwks_server  # tests/e2e (material.py put it on sys.path)


@dataclass
class Fetch:
    at: float            # time.time() when the request arrived
    outcome: str         # ok | 5xx | stalled
    status: int
    keys: tuple[int, ...]  # indices of the keys in the document (empty for a 5xx)


class ChaosJwks(jwks_server.JwksServer):
    def __init__(self, material: Material, *, fail_rate: float, stall_rate: float, stall_s: float,
                 seed: int, chaos_from: float = 0.0):
        super().__init__()
        self.material = material
        self.fail_rate = fail_rate
        self.stall_rate = stall_rate
        self.stall_s = stall_s
        self.chaos_from = chaos_from   # epoch seconds: no failures before (0: from the start)
        self.rng = random.Random(seed)
        self.log: list[Fetch] = []
        self._log_lock = threading.Lock()
        self._docs: dict[tuple[int, ...], bytes] = {}

    def document_for(self, served: tuple[int, ...]) -> bytes:
        doc = self._docs.get(served)
        if doc is None:
            doc = json.dumps({"keys": [self.material.jwk(i) for i in served]}).encode()
            self._docs[served] = doc
        return doc

    def _record(self, seen: jwks_server.Seen) -> tuple[str, float, int, bytes, str]:
        now = time.time()
        with self._changed:
            self.requests.append(seen)
            self._changed.notify_all()
        if seen.path.split("?", 1)[0] != self.path:
            return "status", 0.0, 404, b"not found\n", "text/plain"
        served = tuple(self.material.schedule.served(now))
        with self._log_lock:
            roll = self.rng.random() if now >= self.chaos_from else 1.0
            if roll < self.fail_rate:
                status = self.rng.choice((500, 502, 503, 504))
                self.log.append(Fetch(now, "5xx", status, ()))
                return "status", 0.0, status, b"jwks backend unavailable\n", "text/plain"
            stalled = roll < self.fail_rate + self.stall_rate
            self.log.append(Fetch(now, "stalled" if stalled else "ok", 200, served))
        return "ok", self.stall_s if stalled else 0.0, 200, self.document_for(served), "application/json"

    def fetch_log(self) -> list[Fetch]:
        with self._log_lock:
            return list(self.log)
