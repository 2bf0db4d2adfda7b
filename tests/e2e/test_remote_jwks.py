"""Remote JWKS (README "Remote JWKS", SPEC §5) through a real Envoy with two workers.

Every scenario boots its own Envoy (``--concurrency 2``) in front of the echo upstream, with a
``jwks`` cluster pointing at a :class:`jwks_server.JwksServer` the test controls and counts.
Each test checks what the client sees (status and exact body), what the upstream sees, how many
times the JWKS server was fetched, and the filter's counters at Envoy's admin ``/stats``.

Timing: nothing sleeps a fixed time to "let things settle"; waits are polls with deadlines (the
one computed wait is the filter's own 10 s refetch interval), and timing assertions carry
margins meant for a loaded 2-core machine.  The whole file takes about a minute.  Measured numbers (fetch
counts, answer and recovery times) are printed as ``MEASURED ...`` lines (``pytest -s``) and
recorded as test properties (``--junitxml``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import pytest
import yaml

import harness
from jwks_server import JwksServer
from jwtmint import claims, generate, mint, segments, shared_key, tamper_signature
from support import (DEV_EXAMPLE_YAML, ISSUER, MISSING, NO_MATCHING_KEY, NO_VALID_KEY, REMOTE_FETCH_FAILED,
                     VERIFICATION_FAILS, assert_denied, assert_passed, bearer, demo_token, spec)

WORKERS = 2  # Envoy --concurrency: every scenario runs two worker threads, i.e. two wasm VMs
PREFIX = "wasmcustom.jwt_policy."
REQUEST_TIMEOUT = 20.0  # client-side cap of one request (a paused request is answered far sooner)
RECOVERY_TIMEOUT = 15.0  # polls for "the filter recovered" give up after this long

KEY = shared_key("RS256", kid="remote-rs-1")
TOKEN = mint(KEY, claims(iss=ISSUER, sub="alice"))
CLAIM_HEADERS = [{"claim": "sub", "header": "x-sub"}]

DEMO_REMOTE_YAML = harness.REPO / "envoy" / "demo-remote.yaml"
DEV_EXAMPLE_REMOTE_YAML = harness.REPO / "policies" / "dev-example-remote.yaml"
DEV_EXAMPLE_REMOTE_JSON = harness.REPO / "policies" / "dev-example-remote.json"
PUBLIC_PEM = harness.REPO / "policies" / "demo-keys" / "demo-public-key.pem"


# --------------------------------------------------------------------------- helpers


def remote_provider(server: JwksServer, *, url: str | None = None, **remote: Any) -> dict:
    """A provider whose keys come from ``server`` through the ``jwks`` cluster."""
    spec_remote = {"url": url or server.url, "cluster": "jwks", "timeout": "2s"}
    spec_remote.update(remote)
    spec_remote = {k: v for k, v in spec_remote.items() if v is not None}
    return {"issuer": ISSUER, "remote": spec_remote, "claimsToHeaders": CLAIM_HEADERS}


def jwks_cluster(server: JwksServer, name: str = "jwks") -> dict:
    return harness.static_cluster(name, server.port)


def counters(envoy: harness.Envoy) -> dict[str, int]:
    """The filter's counters (``wasmcustom.jwt_policy.`` stripped), 0 when not yet defined."""
    names = ("allowed", "denied", "denied.jwks", "denied.signature", "jwks_fetch_success",
             "jwks_fetch_failure", "requests_paused")
    raw = envoy.stats(PREFIX)
    out = {name: 0 for name in names}
    out.update({k[len(PREFIX):]: v for k, v in raw.items()})
    return out


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def measured(record_property: Callable[[str, Any], None], name: str, value: Any) -> None:
    record_property(name, value)
    print(f"MEASURED {name} = {value}")


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


def get(proxy: harness.Envoy, token: str | None = None, path: str = "/get") -> harness.Response:
    return proxy.get(path, headers=bearer(token) if token else None, timeout=REQUEST_TIMEOUT)


def timed_get(proxy: harness.Envoy, token: str | None = None) -> tuple[harness.Response, float]:
    start = time.monotonic()
    resp = get(proxy, token)
    return resp, time.monotonic() - start


def until_passes(proxy: harness.Envoy, token: str, *, allowed: Iterable[str], timeout: float = RECOVERY_TIMEOUT,
                 consecutive: int = 1, streak_s: float = 0.0, interval: float = 0.1) -> tuple[float, list[str]]:
    """Send ``token`` until it passes ``consecutive`` times in a row, over at least ``streak_s``
    seconds (each request is a new connection, spread over both workers; a worker adopts keys
    another one fetched within its 1 s tick, so a 1.5 s streak means every worker has them).
    Every answer on the way must be a 200 or a 401 whose body is in ``allowed``.  Returns
    (seconds until the first pass of the final streak, the bodies of the denials seen)."""
    allowed = set(allowed)
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    denials: list[str] = []
    streak, streak_start = 0, None
    while True:
        resp = get(proxy, token)
        if resp.status == 200:
            assert_passed(resp)
            if streak == 0:
                streak_start = time.monotonic()
            streak += 1
            if streak >= consecutive and time.monotonic() - streak_start >= streak_s:
                assert streak_start is not None
                return streak_start - start, denials
            time.sleep(interval / 2)
            continue
        streak = 0
        assert resp.status == 401 and resp.body in allowed, resp
        denials.append(resp.body)
        assert time.monotonic() < deadline, f"still denied after {timeout}s: {denials[-5:]}"
        time.sleep(interval)


def assert_log_clean(envoy: harness.Envoy) -> None:
    log = envoy.log_text()
    bad = [line for line in log.splitlines() if "panicked" in line or "[critical]" in line]
    assert not bad, "\n".join(bad[-10:])


def assert_healthy(envoy: harness.Envoy) -> None:
    assert envoy.alive(), harness.log_digest(envoy.log_text())
    assert_log_clean(envoy)


def wasm_lines(envoy: harness.Envoy, needle: str) -> list[str]:
    return [line for line in envoy.log_text().splitlines() if "wasm" in line and needle in line]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def jwks():
    """``jwks(*keys, refusing=False, path="/jwks")`` -> a started :class:`JwksServer`."""
    servers: list[JwksServer] = []

    def make(*keys: Any, refusing: bool = False, path: str = "/jwks") -> JwksServer:
        server = JwksServer(*keys, path=path).start(refusing=refusing)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def boot(request, upstream):
    """``boot(config, *servers, clusters=[...], **opts)`` -> an Envoy with two workers and a
    ``jwks`` cluster for the first server (more clusters via ``clusters``); stopped after the
    test, its log's warnings added to the report when the test fails."""
    booted: list[harness.Envoy] = []

    def make(config: Any, *servers: JwksServer, clusters: Iterable[dict] = (), **opts: Any) -> harness.Envoy:
        extra = [jwks_cluster(servers[0])] if servers else []
        opts.setdefault("concurrency", WORKERS)
        opts.setdefault("name", "remote")
        envoy = harness.boot(config, clusters=[*extra, *clusters], **opts)
        booted.append(envoy)
        return envoy

    yield make
    report = getattr(request.node, "rep_call", None)
    for envoy in booted:
        if report is not None and report.failed:
            lines = [line for line in envoy.log_text().splitlines()
                     if "wasm" in line or "[warning]" in line or "[error]" in line or "[critical]" in line]
            request.node.add_report_section("call", f"envoy {envoy.dir}", "\n".join(lines[-40:]))
        envoy.stop()


# --------------------------------------------------------------------------- 1. one fetch for all


@pytest.mark.parametrize("server_delay", [0.0, 1.5], ids=["fast-server", "server-takes-1.5s"])
def test_forty_concurrent_first_requests_share_one_fetch(boot, jwks, server_delay, record_property):
    """40 first requests at once, spread over both workers.  With a server that takes 1.5 s,
    they all arrive while the fetch is in flight: they all wait for that one fetch."""
    server = jwks(KEY)
    server.stall(server_delay)
    proxy = boot(spec(remote_provider(server, timeout="3s")), server)
    assert server.count == 0, "no fetch before the first request (enableAsyncFetch is off)"
    before = counters(proxy)

    n = 40
    barrier = threading.Barrier(n)

    def one(_: int) -> tuple[harness.Response, float]:
        barrier.wait(timeout=30)
        return timed_get(proxy, TOKEN)

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))

    for resp, _ in results:
        echo = assert_passed(resp)
        assert echo.header("X-Sub") == ["alice"]
        assert not echo.has("Authorization"), "the token is stripped before the upstream"
    fetches = server.count
    tag = f"concurrent40_delay{server_delay:g}s"
    measured(record_property, f"{tag}_fetches", fetches)
    measured(record_property, f"{tag}_slowest_s", round(max(t for _, t in results), 3))
    assert 1 <= fetches <= WORKERS, f"{fetches} fetches for {n} concurrent first requests"
    assert all(r.method == "GET" and r.path == "/jwks" for r in server.fetches())

    c = delta(counters(proxy), before)
    measured(record_property, f"{tag}_paused", c["requests_paused"])
    assert c["allowed"] == n and c["denied"] == 0, c
    assert c["jwks_fetch_success"] == fetches and c["jwks_fetch_failure"] == 0, c
    assert 1 <= c["requests_paused"] <= n, c
    if server_delay:
        # (all 40 were sent within a few ms of each other; allow a loaded machine some stragglers)
        assert c["requests_paused"] >= n * 3 // 4, c
        assert max(t for _, t in results) < server_delay + 3.0

    # Keys are cached: more requests, no more fetches, nothing paused.
    for _ in range(10):
        assert_passed(get(proxy, TOKEN))
    assert server.count == fetches
    c2 = delta(counters(proxy), before)
    assert c2["requests_paused"] == c["requests_paused"] and c2["allowed"] == n + 10, c2
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 2. rotation


def test_key_rotation_unknown_kid_refetches_at_most_once_per_10s(boot, jwks, record_property):
    old, new = generate("ES256", kid="rot-old"), generate("ES256", kid="rot-new")
    old_token = mint(old, claims(iss=ISSUER, sub="old"))
    new_token = mint(new, claims(iss=ISSUER, sub="new"))
    server = jwks(old)
    proxy = boot(spec(remote_provider(server)), server)

    assert assert_passed(get(proxy, old_token)).header("X-Sub") == ["old"]
    assert server.count == 1
    fetched_at = server.fetches()[0].at

    # The issuer rotates: a new key with a new kid.  Within 10 s of the last fetch an unknown
    # kid does not refetch: it is denied at once.
    server.add_keys(new)
    resp, took = timed_get(proxy, new_token)
    if time.monotonic() - fetched_at < 9.0:  # (a very slow machine may already be past the window)
        assert_denied(resp, NO_MATCHING_KEY)
        assert server.count == 1, "an unknown kid refetched within 10 s of the last fetch"
        assert took < 3.0, took

    # 10 s after the last fetch, the same token triggers a refetch and passes right away.
    # (The filter's 10 s count from when it handled the answer, a little after the server saw
    # the request: wait 11 s from the latter.)
    time.sleep(max(0.0, fetched_at + 11.0 - time.monotonic()))
    before = counters(proxy)
    resp, took = timed_get(proxy, new_token)
    assert assert_passed(resp).header("X-Sub") == ["new"]
    measured(record_property, "rotation_new_kid_answer_s", round(took, 3))
    assert server.count == 2, server.count
    c = delta(counters(proxy), before)
    assert c["jwks_fetch_success"] == 1 and c["requests_paused"] == 1 and c["allowed"] == 1, c
    assert_passed(get(proxy, old_token))  # the old key is still published: still valid

    # 60 tokens with kids nobody published: denied at once, and no refetch storm.
    bogus = [mint(new, claims(iss=ISSUER, sub="x"), kid=f"bogus-{i}") for i in range(60)]
    before = counters(proxy)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: timed_get(proxy, t), bogus))
    for resp, _ in results:
        assert_denied(resp, NO_MATCHING_KEY)
    extra = server.count - 2
    measured(record_property, "rotation_bogus60_extra_fetches", extra)
    measured(record_property, "rotation_bogus60_slowest_s", round(max(t for _, t in results), 3))
    assert extra <= 3, f"{extra} extra fetches for 60 unknown kids"
    assert max(t for _, t in results) < 5.0
    c = delta(counters(proxy), before)
    assert c["denied"] == 60 and c["denied.jwks"] == 60 and c["allowed"] == 0, c
    assert c["jwks_fetch_success"] == extra, c
    # Both keys still work after the storm.
    assert_passed(get(proxy, new_token))
    assert_passed(get(proxy, old_token))
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 3. down at start


@pytest.mark.parametrize("down", ["refused", "reset"])
def test_jwks_down_at_start_then_recovers_without_restart(boot, jwks, down, record_property):
    server = jwks(KEY, refusing=(down == "refused"))
    if down == "reset":
        server.reset()
    proxy = boot(spec(remote_provider(server, timeout="2s")), server)

    resp, took = timed_get(proxy, TOKEN)
    assert_denied(resp, REMOTE_FETCH_FAILED)
    measured(record_property, f"down_{down}_first_answer_s", round(took, 3))
    assert took < 2.0 + 2.5, took
    if down == "reset":
        assert server.count >= 1
    # While down, requests keep failing the same way (not hanging, not passing).
    assert_denied(get(proxy, TOKEN), REMOTE_FETCH_FAILED)
    assert_denied(get(proxy), MISSING)  # no token: still "missing", no fetch needed

    c = counters(proxy)
    assert c["jwks_fetch_failure"] >= 1 and c["jwks_fetch_success"] == 0, c
    assert c["denied.jwks"] >= 2 and c["allowed"] == 0 and c["requests_paused"] >= 1, c
    fetches_while_down = server.count

    server.ok()
    recovered, denials = until_passes(proxy, TOKEN, allowed=[REMOTE_FETCH_FAILED], consecutive=6)
    measured(record_property, f"down_{down}_recovery_s", round(recovered, 3))
    measured(record_property, f"down_{down}_fetches_while_down", fetches_while_down)
    assert server.count - fetches_while_down <= WORKERS, "the recovery fetched once (per worker at most)"
    c = counters(proxy)
    assert c["jwks_fetch_success"] >= 1, c
    assert proxy.proc is not None and proxy.proc.poll() is None  # the same Envoy, never restarted
    assert wasm_lines(proxy, "JWKS fetch from"), "the failed fetch is logged at warn"
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 4. stale-while-error


def test_expired_keys_keep_serving_while_server_fails_then_rotation_applies(boot, jwks, record_property):
    old, new = generate("ES256", kid="stale-old"), generate("ES256", kid="stale-new")
    old_token = mint(old, claims(iss=ISSUER, sub="old"))
    new_token = mint(new, claims(iss=ISSUER, sub="new"))
    server = jwks(old)
    proxy = boot(spec(remote_provider(server, cacheDuration="2s", timeout="1s")), server)

    assert_passed(get(proxy, old_token))
    fetched_at = server.fetches()[0].at
    server.fail(503)

    # Keys are 2 s fresh; well past that (3 x cacheDuration) the last good keys still serve,
    # while the background refresh keeps failing.
    while time.monotonic() < fetched_at + 6.0:
        assert assert_passed(get(proxy, old_token)).header("X-Sub") == ["old"]
        time.sleep(0.2)
    failed_fetches = server.count - 1
    measured(record_property, "stale_failed_refreshes_in_6s", failed_fetches)
    assert failed_fetches >= 2, "the refresh was retried after the first failure"
    assert failed_fetches <= 4 * WORKERS, "retries back off (1 s, 2 s, 4 s ...)"
    c = counters(proxy)
    assert c["jwks_fetch_failure"] >= 2 and c["denied"] == 0, c
    assert wasm_lines(proxy, "HTTP status 503")

    # The server recovers, rotated: the old key is gone, a new one is published.
    server.set_keys(new)
    server.ok()
    recovered_at = time.monotonic()
    # Until the next retry, the new kid is unknown (401 no matching key); then it passes.
    took, denials = until_passes(proxy, new_token, allowed=[NO_MATCHING_KEY], consecutive=8, streak_s=1.5)
    measured(record_property, "stale_rotation_recovery_s", round(took, 3))
    assert time.monotonic() - recovered_at < RECOVERY_TIMEOUT
    for _ in range(8):
        assert_denied(get(proxy, old_token), NO_MATCHING_KEY)
    assert counters(proxy)["jwks_fetch_success"] >= 2
    assert_healthy(proxy)


def test_stale_keys_stop_serving_at_max_stale_keys(boot, jwks, record_property):
    """``settings.maxStaleKeys`` bounds stale-while-error: keys fresh 1 s, stale at most 2 s more.
    The server fails after the first fetch: the token passes within 3 s of the fetch, then gets
    401 ``Jwks remote fetch is failed``; when the server is back it passes again."""
    server = jwks(KEY)
    config = {"policies": [spec(remote_provider(server, cacheDuration="1s", timeout="1s"))],
              "settings": {"maxStaleKeys": "2s"}}
    proxy = boot(config, server)
    assert_passed(get(proxy, TOKEN))
    fetched_at = server.fetches()[0].at
    server.fail(503)

    while time.monotonic() < fetched_at + 2.4:  # expired after 1 s, within the bound
        assert assert_passed(get(proxy, TOKEN)).header("X-Sub") == ["alice"]
        time.sleep(0.1)
    time.sleep(max(0.0, fetched_at + 4.0 - time.monotonic()))
    denied = 0
    while time.monotonic() < fetched_at + 7.0:  # past the bound: no usable keys
        assert_denied(get(proxy, TOKEN), REMOTE_FETCH_FAILED)
        denied += 1
        time.sleep(0.1)
    measured(record_property, "stale_bound_denials", denied)
    c = counters(proxy)
    assert c["denied.jwks"] == denied and c["jwks_fetch_failure"] >= 2, c

    server.ok()
    recovered, _ = until_passes(proxy, TOKEN, allowed=[REMOTE_FETCH_FAILED], consecutive=4)
    measured(record_property, "stale_bound_recovery_s", round(recovered, 3))
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 5. slow server


def test_jwks_slower_than_timeout_answers_within_timeout_plus_margin(boot, jwks, record_property):
    """The server stalls 5 s, the timeout is 1 s: paused requests (on both workers) are answered
    401 within the timeout plus a margin, after one fetch."""
    server = jwks(KEY)
    server.stall(5)
    proxy = boot(spec(remote_provider(server, timeout="1s")), server)

    n = 10
    barrier = threading.Barrier(n)

    def one(_: int) -> tuple[harness.Response, float]:
        barrier.wait(timeout=30)
        return timed_get(proxy, TOKEN)

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    for resp, _ in results:
        assert_denied(resp, REMOTE_FETCH_FAILED)
    times = sorted(t for _, t in results)
    measured(record_property, "stall_answer_s", f"{times[0]:.3f}..{times[-1]:.3f}")
    assert times[-1] < 1.0 + 2.5, times
    assert times[0] >= 0.9, "answered before the fetch could time out"
    assert server.count == 1
    c = counters(proxy)
    assert c["jwks_fetch_failure"] == 1 and c["denied.jwks"] == n and c["allowed"] == 0, c
    assert c["requests_paused"] >= n * 3 // 4, c

    server.stall(0)
    recovered, _ = until_passes(proxy, TOKEN, allowed=[REMOTE_FETCH_FAILED], consecutive=4)
    measured(record_property, "stall_recovery_s", round(recovered, 3))
    assert_healthy(proxy)


def raw_post(port: int, token: str, body: bytes, body_delay: float) -> tuple[int, bytes]:
    """A POST whose body is written ``body_delay`` seconds after its headers (one connection);
    returns the status and the response body."""
    head = (f"POST /post HTTP/1.1\r\nHost: {harness.DEFAULT_HOST}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as s:
        s.sendall(head.encode())
        if body_delay:
            time.sleep(body_delay)
        s.sendall(body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("body_delay", [0.0, 0.3], ids=["body-with-headers", "body-later"])
def test_a_request_body_does_not_push_a_paused_request_through(boot, jwks, upstream, body_delay):
    """While a POST waits for the keys, its body arrives (with the headers, or later): the request
    stays paused until the keys decide it. A forged token is denied after the fetch and never
    reaches the upstream; a valid one passes with its whole body."""
    server = jwks(KEY)
    server.stall(1.0)
    proxy = boot(spec(remote_provider(server, timeout="4s")), server)
    forged = mint(generate("RS256", kid=KEY.kid), claims(iss=ISSUER, sub="mallory"))
    body = b"payload-" * 1000
    start = time.monotonic()
    status, answer = raw_post(proxy.port, forged, body, body_delay)
    assert (status, answer) == (401, VERIFICATION_FAILS.encode()), (status, answer[:200])
    assert time.monotonic() - start >= 0.9, "answered before the keys arrived"
    status, answer = raw_post(proxy.port, TOKEN, body, body_delay)
    assert status == 200, answer[:200]
    echo = json.loads(answer)
    assert echo["method"] == "POST" and echo["body"] == body.decode(), echo.get("body", "")[:80]
    c = counters(proxy)
    assert c["denied.signature"] == 1 and c["allowed"] == 1, c
    assert_healthy(proxy)


def test_clients_that_give_up_while_paused_do_not_disturb_the_fetch(boot, jwks):
    """Paused requests whose clients hang up before the keys arrive: the fetch completes, later
    requests pass, Envoy keeps serving (the filter forgets the gone requests)."""
    server = jwks(KEY)
    server.stall(1.5)
    proxy = boot(spec(remote_provider(server, timeout="4s")), server)

    def give_up(_: int) -> str:
        try:
            proxy.get("/get", headers=bearer(TOKEN), timeout=0.3)
        except OSError as e:  # socket.timeout is an OSError
            return type(e).__name__
        return "answered"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(give_up, range(6)))
    assert "answered" not in outcomes, outcomes
    assert server.wait_for_count(1, timeout=5)
    poll(lambda: counters(proxy)["jwks_fetch_success"] >= 1, timeout=10, what="the fetch completed")
    assert assert_passed(get(proxy, TOKEN)).header("X-Sub") == ["alice"]
    c = counters(proxy)
    assert c["requests_paused"] >= 1 and c["allowed"] == 1 and c["denied"] == 0, c
    assert server.count <= WORKERS
    assert_healthy(proxy)


def test_keys_are_refreshed_in_the_background_before_they_expire(boot, jwks, record_property):
    """cacheDuration 2 s: keys are refetched about every 1.8 s (a tenth early) while requests
    keep flowing, and no request waits for a refresh.  Then the server publishes a JWKS without
    one valid key: a failed refresh, the last good keys stay."""
    server = jwks(KEY)
    proxy = boot(spec(remote_provider(server, cacheDuration="2s", timeout="1s")), server)
    assert_passed(get(proxy, TOKEN))
    first = server.fetches()[0].at
    while time.monotonic() < first + 5.0:
        assert_passed(get(proxy, TOKEN))
        time.sleep(0.05)
    fetches = server.count
    measured(record_property, "refresh_fetches_in_5s_cache2s", fetches)
    assert 2 <= fetches <= 1 + 3 * WORKERS, fetches
    c = counters(proxy)
    assert c["requests_paused"] == 1, "only the very first request waited"
    assert c["jwks_fetch_success"] == fetches and c["jwks_fetch_failure"] == 0 and c["denied"] == 0, c

    server.set_keys({"kty": "EC", "crv": "P-256", "kid": "broken"}, KEY.jwk(use="enc"))
    deadline = time.monotonic() + 8.0
    while server.count < fetches + 2:  # two refreshes that got the key-less JWKS
        assert time.monotonic() < deadline, f"no refresh after the keys broke ({server.count} fetches)"
        assert assert_passed(get(proxy, TOKEN)).header("X-Sub") == ["alice"]
        time.sleep(0.05)
    assert_passed(get(proxy, TOKEN))
    c = counters(proxy)
    assert c["jwks_fetch_failure"] >= 1 and c["denied"] == 0, c
    assert wasm_lines(proxy, "no valid key")
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 6. bad documents


def _four_mib_jwks() -> bytes:
    doc = json.dumps({"keys": [KEY.jwk()]}).encode()
    return doc[:-1] + b" " * (4 * 1024 * 1024 - len(doc)) + b"}"


BAD_BODIES = {
    "malformed": b'{"keys": [{"kty": "RSA", "n": ',
    "keys-not-a-list": b'{"keys": 5}',
    "html": b"<html><body>It works!</body></html>",
    "empty": b"",
    "4MiB-valid-jwks": _four_mib_jwks(),
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_bad_jwks_document_fails_then_server_fixes_itself(boot, jwks, kind, record_property):
    server = jwks(KEY)
    server.serve_body(BAD_BODIES[kind])
    proxy = boot(spec(remote_provider(server)), server)

    assert_denied(get(proxy, TOKEN), REMOTE_FETCH_FAILED)
    assert server.count == 1
    assert_healthy(proxy)
    c = counters(proxy)
    assert c["jwks_fetch_failure"] == 1 and c["jwks_fetch_success"] == 0 and c["denied.jwks"] == 1, c

    server.ok()
    recovered, _ = until_passes(proxy, TOKEN, allowed=[REMOTE_FETCH_FAILED], consecutive=4)
    measured(record_property, f"bad_{kind}_recovery_s", round(recovered, 3))
    assert counters(proxy)["jwks_fetch_success"] >= 1
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 7. no valid key


def test_well_formed_jwks_without_a_valid_key(boot, jwks):
    invalid = [
        {"kty": "EC", "crv": "P-256", "kid": "no-coordinates"},
        {"kty": "RSA", "kid": "empty-modulus", "n": "", "e": "AQAB"},
        {"kty": "oct", "kid": "no-secret"},
        {"kty": "XYZ", "kid": "unknown-type"},
        KEY.jwk(use="enc"),  # a valid key, but not for signatures
    ]
    server = jwks(*invalid)
    proxy = boot(spec(remote_provider(server)), server)

    assert_denied(get(proxy, TOKEN), NO_VALID_KEY)
    assert_denied(get(proxy, TOKEN), NO_VALID_KEY)
    c = counters(proxy)
    assert c["jwks_fetch_failure"] >= 1 and c["jwks_fetch_success"] == 0 and c["denied.jwks"] == 2, c

    server.set_keys(*invalid[:4], KEY)
    until_passes(proxy, TOKEN, allowed=[NO_VALID_KEY], consecutive=4)
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 8. async fetch


def test_enable_async_fetch_fetches_before_any_request(boot, jwks, record_property):
    server = jwks(KEY)
    booting = time.monotonic()
    proxy = boot(spec(remote_provider(server, enableAsyncFetch=True)), server)
    ready = time.monotonic()

    assert server.wait_for_count(1, timeout=10), "no fetch after boot"
    measured(record_property, "async_fetch_after_ready_s", round(max(0.0, server.fetches()[0].at - ready), 3))
    assert server.fetches()[0].at - booting < 10
    poll(lambda: counters(proxy)["jwks_fetch_success"] >= 1, timeout=10, what="the async fetch completed")

    before = counters(proxy)
    assert before["requests_paused"] == 0 and before["allowed"] == 0, before
    for _ in range(10):
        assert assert_passed(get(proxy, TOKEN)).header("X-Sub") == ["alice"]
    c = counters(proxy)
    assert c["requests_paused"] == 0, "with keys fetched at start, no request waits"
    assert c["allowed"] == 10, c
    fetches = server.count
    measured(record_property, "async_fetches", fetches)
    assert fetches <= WORKERS
    assert_healthy(proxy)


# --------------------------------------------------------------------------- 10. derived cluster names


def test_cluster_name_derived_from_url_and_destination_ref(boot, jwks):
    """No ``cluster``: the filter uses Istio's ``outbound|PORT||HOST`` (from the URL, or from
    ``destinationRef``), and Envoy clusters with exactly those names reach the servers."""
    key_a, key_b = generate("ES256", kid="by-url"), generate("ES256", kid="by-ref")
    by_url, by_ref = jwks(key_a), jwks(key_b, path="/keys")
    url_cluster = f"outbound|{by_url.port}||jwks.local"
    ref_cluster = f"outbound|{by_ref.port}||idp.auth.svc.cluster.local"
    providers = {
        "by-url": {"issuer": ISSUER, "claimsToHeaders": CLAIM_HEADERS,
                   "remote": {"url": f"http://jwks.local:{by_url.port}/jwks", "timeout": "2s"},
                   "tokenSource": {"headers": [{"name": "X-Url-Token", "prefix": "Bearer "}]}},
        "by-ref": {"issuer": ISSUER, "claimsToHeaders": CLAIM_HEADERS,
                   "remote": {"url": "http://idp.auth.svc.cluster.local/keys", "timeout": "2s",
                              "destinationRef": {"ref": {"name": "idp", "namespace": "auth"},
                                                 "port": {"number": by_ref.port}}},
                   "tokenSource": {"headers": [{"name": "X-Ref-Token", "prefix": "Bearer "}]}},
    }
    proxy = boot(spec(providers_by_name=providers),
                 clusters=[harness.static_cluster(url_cluster, by_url.port),
                           harness.static_cluster(ref_cluster, by_ref.port)])

    echo = assert_passed(proxy.get("/get", headers=bearer(mint(key_a, claims(iss=ISSUER, sub="u")), "X-Url-Token"),
                                   timeout=REQUEST_TIMEOUT))
    assert echo.header("X-Sub") == ["u"] and not echo.has("X-Url-Token")
    echo = assert_passed(proxy.get("/get", headers=bearer(mint(key_b, claims(iss=ISSUER, sub="r")), "X-Ref-Token"),
                                   timeout=REQUEST_TIMEOUT))
    assert echo.header("X-Sub") == ["r"]
    assert by_url.count == 1 and by_ref.count == 1
    (fa,), (fb,) = by_url.fetches(), by_ref.fetches()
    assert (fa.path, fa.headers.get("host")) == ("/jwks", f"jwks.local:{by_url.port}")
    assert (fb.path, fb.headers.get("host")) == ("/keys", "idp.auth.svc.cluster.local")
    # Each provider has its own keys: a token of one in the other's header fails.
    resp = proxy.get("/get", headers=bearer(mint(key_a, claims(iss=ISSUER)), "X-Ref-Token"), timeout=REQUEST_TIMEOUT)
    assert_denied(resp, NO_MATCHING_KEY)
    assert_healthy(proxy)


def test_missing_cluster_is_a_failed_fetch_not_a_crash(boot, jwks):
    """The derived cluster does not exist in Envoy: 401 fetch failed, a warning naming it."""
    server = jwks(KEY)
    provider = {"issuer": ISSUER, "remote": {"url": f"http://jwks.local:{server.port}/jwks", "timeout": "1s"}}
    proxy = boot(spec(provider))  # no outbound|PORT||jwks.local cluster
    assert_denied(get(proxy, TOKEN), REMOTE_FETCH_FAILED)
    assert server.count == 0
    assert counters(proxy)["jwks_fetch_failure"] >= 1
    assert any(f"outbound|{server.port}||jwks.local" in line for line in wasm_lines(proxy, "cluster"))
    assert_healthy(proxy)


# --------------------------------------------------------------------------- the guide, remote keys


def demo_remote_bootstrap() -> tuple[dict, int]:
    """envoy/demo-remote.yaml with test-safe ports: admin and main listener on 0, the JWKS
    listener on a free port (its cluster must know it before boot), upstream the echo server."""
    bootstrap = yaml.safe_load(DEMO_REMOTE_YAML.read_text())
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0
    listeners = {lst["name"]: lst for lst in bootstrap["static_resources"]["listeners"]}
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    listeners["main"]["address"]["socket_address"]["port_value"] = 0
    jwks_port = free_port()
    listeners["jwks"]["address"]["socket_address"]["port_value"] = jwks_port

    def point(cluster: dict, port: int) -> None:
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        endpoint["address"]["socket_address"]["port_value"] = port

    point(clusters["httpbin"], harness.upstream_port())
    point(clusters["jwks"], jwks_port)
    demo_filter_config(bootstrap)["vm_config"]["code"]["local"]["filename"] = harness.wasm_path()
    return bootstrap, jwks_port


def demo_filter_config(bootstrap: dict) -> dict:
    main = next(lst for lst in bootstrap["static_resources"]["listeners"] if lst["name"] == "main")
    hcm = main["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["http_filters"][0]["typed_config"]["config"]


def served_jwks(bootstrap: dict) -> dict:
    jwks_listener = next(lst for lst in bootstrap["static_resources"]["listeners"] if lst["name"] == "jwks")
    hcm = jwks_listener["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    return json.loads(route["direct_response"]["body"]["inline_string"])


@pytest.fixture(scope="module")
def remote_guide(upstream):
    bootstrap, jwks_port = demo_remote_bootstrap()
    with harness.boot(None, bootstrap=bootstrap, name="demo-remote", concurrency=WORKERS) as envoy:
        envoy.jwks_port = jwks_port
        yield envoy


def test_remote_guide_no_token_is_denied(remote_guide):
    resp = remote_guide.get("/get")
    assert_denied(resp, MISSING)
    assert resp.headers["www-authenticate"] == 'Bearer realm="http://www.example.com/get"'


def test_remote_guide_token_in_query_param_passes_with_keys_from_the_jwks_listener(remote_guide):
    echo = assert_passed(remote_guide.get(f"/get?auth_token={demo_token()}", timeout=REQUEST_TIMEOUT))
    assert echo.header("X-Org") == ["solo.io"] and echo.header("X-Email") == ["dev1@solo.io"]
    assert echo.url == "/get" and echo.args == {}
    stats = remote_guide.stats()
    assert 1 <= stats[PREFIX + "jwks_fetch_success"] <= WORKERS
    assert stats[PREFIX + "jwks_fetch_failure"] == 0
    assert stats["cluster.jwks.upstream_rq_200"] == stats[PREFIX + "jwks_fetch_success"]


def test_remote_guide_token_in_x_auth_header_passes(remote_guide):
    echo = assert_passed(remote_guide.get("/get", headers={"X-Auth": f"Bearer {demo_token()}"},
                                          timeout=REQUEST_TIMEOUT))
    assert echo.header("X-Org") == ["solo.io"] and not echo.has("X-Auth")
    # the client's X-Org is removed although the guide appends (claim headers are never the client's)
    echo = assert_passed(remote_guide.get("/get", headers={"X-Auth": f"Bearer {demo_token()}", "X-Org": "acme"}))
    assert echo.header("X-Org") == ["solo.io"]


def test_remote_guide_bad_tokens(remote_guide):
    token = demo_token()
    assert_denied(remote_guide.get("/get", headers={"X-Auth": f"Bearer {tamper_signature(token)}"}),
                  VERIFICATION_FAILS)
    assert_denied(remote_guide.get("/get", headers={"X-Auth": token}), MISSING)
    assert_denied(remote_guide.get("/get", headers={"Authorization": f"Bearer {token}"}), MISSING)


def test_remote_guide_jwks_listener_serves_the_demo_key(remote_guide):
    resp = harness.http_request(remote_guide.jwks_port, "GET", "/.well-known/jwks.json", host="127.0.0.1")
    assert resp.status == 200 and resp.headers.get("content-type") == "application/json"
    (jwk,) = resp.json()["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig") and jwk["kid"]
    assert_healthy(remote_guide)


def test_remote_demo_files_are_in_sync():
    from cryptography.hazmat.primitives import serialization

    from jwtmint import b64url_decode

    remote_policy = yaml.safe_load(DEV_EXAMPLE_REMOTE_YAML.read_text())
    assert json.loads(DEV_EXAMPLE_REMOTE_JSON.read_text()) == remote_policy
    bootstrap = yaml.safe_load(DEMO_REMOTE_YAML.read_text())
    assert json.loads(demo_filter_config(bootstrap)["configuration"]["value"]) == remote_policy

    # The guide's policy, with remote keys instead of the inline key.
    guide = yaml.safe_load(DEV_EXAMPLE_YAML.read_text())
    provider = remote_policy["spec"]["config"]["providers"]["dev-example"]
    assert provider["remote"] == {"url": "http://127.0.0.1:8082/.well-known/jwks.json", "cluster": "jwks"}
    guide_provider = guide["spec"]["config"]["providers"]["dev-example"]
    del guide_provider["local"]
    del provider["remote"]
    assert remote_policy == guide

    # The JWKS the demo serves is the demo public key; the demo token has no kid.
    (jwk,) = served_jwks(bootstrap)["keys"]
    public = serialization.load_pem_public_key(PUBLIC_PEM.read_bytes()).public_numbers()
    assert int.from_bytes(b64url_decode(jwk["n"]), "big") == public.n
    assert int.from_bytes(b64url_decode(jwk["e"]), "big") == public.e
    assert "kid" not in segments(demo_token())[0]

    listeners = {lst["name"]: lst["address"]["socket_address"] for lst in bootstrap["static_resources"]["listeners"]}
    assert listeners == {"main": {"address": "127.0.0.1", "port_value": 8080},
                         "jwks": {"address": "127.0.0.1", "port_value": 8082}}
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    jwks_endpoint = clusters["jwks"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert jwks_endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8082}
