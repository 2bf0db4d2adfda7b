#!/usr/bin/env python3
"""`make soak`: chaos + soak test of the filter in a real Envoy (see soak/README.md).

 1. keys (rotation schedule known in advance) and every token, by class -> soak/.work/
 2. the chaos JWKS server (rotates keys, answers 5xx, stalls), the upstream Envoy (direct_response,
    one listener per class), the front Envoy (--concurrency 2) with the filter
 3. one wrk per class (soak.lua) for SOAK_SECONDS; memory and counters sampled every 5 s,
    the warm-up sample at SOAK_WARMUP
 4. verdict: exit 0 (pass), 1 (a check failed), 2 (the soak could not run); the summary is
    printed and written to soak/last-run.txt
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

SOAK = Path(__file__).resolve().parent
sys.path.insert(0, str(SOAK))

import material  # noqa: E402  (also puts tests/e2e on sys.path)
from chaos_jwks import ChaosJwks, Fetch  # noqa: E402
from envoys import UPSTREAM_CHECKS, Envoy, EnvoyError, front_bootstrap, plugin_config, upstream_bootstrap  # noqa: E402
from material import CLASSES, Schedule  # noqa: E402

REPO = SOAK.parent
WORK = SOAK / ".work"
LAST_RUN = SOAK / "last-run.txt"
LUA = SOAK / "soak.lua"
PREFIX = "wasmcustom.jwt_policy."
REFETCH_INTERVAL = 10  # the filter's minimum interval between unknown-kid refetches (README)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass
class Settings:
    seconds: int = env_int("SOAK_SECONDS", 600)
    warmup: int = env_int("SOAK_WARMUP", 60)
    connections: int = env_int("SOAK_CONNECTIONS", 2)          # per class (one wrk thread each)
    valid_connections: int = env_int("SOAK_VALID_CONNECTIONS", 0) or env_int("SOAK_CONNECTIONS", 2)
    delay_ms: int = env_int("SOAK_DELAY_MS", 0)                # before each valid request
    invalid_delay_ms: int = env_int("SOAK_INVALID_DELAY_MS", 2)  # before each expired/forged/malformed one
    rotate: int = env_int("SOAK_ROTATE_SECONDS", 30)
    keep: int = env_int("SOAK_KEEP_SECONDS", 120)
    margin: int = env_int("SOAK_VALID_MARGIN", 15)             # on top of the 10 s refetch interval
    fail_rate: float = env_float("SOAK_FAIL_RATE", 0.10)
    stall_rate: float = env_float("SOAK_STALL_RATE", 0.05)
    stall_s: float = env_float("SOAK_STALL_SECONDS", 3)
    cache_duration: str = os.environ.get("SOAK_CACHE_DURATION") or "20s"
    timeout: str = os.environ.get("SOAK_TIMEOUT") or "1s"
    valid_per_key: int = env_int("SOAK_VALID_PER_KEY", 300)
    memory_limit: float = env_float("SOAK_MEMORY_GROWTH", 0.10)
    seed: int = env_int("SOAK_SEED", int(time.time()))
    envoy_bin: str = os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")
    wasm: str = os.environ.get("WASM") or str(REPO / "target" / "wasm32-wasip1" / "release" / "jwt_policy_filter.wasm")

    @property
    def valid_after(self) -> int:
        return REFETCH_INTERVAL + self.margin


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    cls: str
    returncode: int = 0
    tally: Counter = field(default_factory=Counter)        # (kind, status, body) -> n
    failures: dict[tuple, list[int]] = field(default_factory=dict)  # (kind, label, status, body) -> [n, first, last]
    failure_count: int = 0
    requests: int = 0
    duration_us: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    p99_us: int = 0
    max_us: int = 0
    raw: str = ""

    @property
    def by_status(self) -> Counter:
        out: Counter = Counter()
        for (kind, status, body), n in self.tally.items():
            out[(status, body)] += n
        return out


def start_wrk(cls: str, token_file: Path, seconds: int, connections: int, delay_ms: int, port: int,
              out: Path) -> subprocess.Popen:
    env = dict(os.environ, SOAK_CLASS=cls, SOAK_TOKENS=str(token_file), SOAK_DELAY_MS=str(delay_ms))
    cmd = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", str(LUA), f"http://127.0.0.1:{port}/"]
    return subprocess.Popen(cmd, stdout=open(out, "w"), stderr=subprocess.STDOUT, env=env, text=True)


def parse_wrk(cls: str, proc: subprocess.Popen, out: Path) -> WrkResult:
    r = WrkResult(cls, proc.returncode or 0)
    r.raw = out.read_text(errors="replace")
    for line in r.raw.splitlines():
        parts = line.split("\t")
        if parts[0] == "SOAK_TALLY" and len(parts) == 5:
            r.tally[(parts[1], int(parts[2]), parts[3])] += int(parts[4])
        elif parts[0] == "SOAK_FAIL" and len(parts) == 8:
            group = (parts[1], parts[2], int(parts[3]), parts[4])
            n, first, last = int(parts[5]), int(parts[6]), int(parts[7])
            if group in r.failures:
                old = r.failures[group]
                r.failures[group] = [old[0] + n, min(old[1], first), max(old[2], last)]
            else:
                r.failures[group] = [n, first, last]
        elif parts[0] == "SOAK_SUMMARY" and len(parts) == 11:
            (r.requests, r.duration_us, connect, read, write, status, timeout, r.failure_count,
             r.p99_us, r.max_us) = map(int, parts[1:])
            r.errors = {"connect": connect, "read": read, "write": write, "timeout": timeout}
    return r


# --------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float          # seconds since the load started
    rss: int
    hwm: int
    allocated: int
    heap_size: int
    cpu: float
    counters: dict[str, int]


def sample(envoy: Envoy, t: float) -> Sample:
    mem = envoy.memory()
    stats = envoy.stats()
    counters = {k[len(PREFIX):]: v for k, v in stats.items() if k.startswith(PREFIX)}
    counters.update({k: v for k, v in stats.items() if k.startswith(("wasm.", "wasm_vm."))})
    return Sample(t, mem["rss_kib"] * 1024, mem["hwm_kib"] * 1024, mem.get("allocated", 0), mem.get("heap_size", 0),
                  envoy.cpu_seconds(), counters)


# --------------------------------------------------------------------------- log scan

LOG_FAILURES = [
    ("panicked", re.compile(r"panicked")),
    ("critical", re.compile(r"\[critical\]")),
    ("wasm VM failure", re.compile(r"(?i)wasm.*(vm .*(fail|crash|restart|reload)|runtime ?error|trap|"
                                   r"proxy_on_\w+ failed|uncaught|unreachable|out of bounds)")),
    ("wasm VM failure", re.compile(r"(?i)Function: proxy_on_\w+ failed")),
    ("Envoy error", re.compile(r"\[error\]")),
]
EXPECTED_WARNINGS = re.compile(r"JWKS fetch from \S+ (failed: |timed out)|There is no configured limit to the number "
                               r"of allowed active downstream connections|caught ENVOY_SIGTERM")


def scan_log(text: str) -> tuple[list[tuple[str, str]], Counter]:
    """(offending lines with their reason, counts of every [warning] line by message)."""
    bad: list[tuple[str, str]] = []
    warnings: Counter = Counter()
    for line in text.splitlines():
        for reason, pattern in LOG_FAILURES:
            if pattern.search(line):
                bad.append((reason, line))
                break
        else:
            if "[warning]" in line:
                msg = line.split("]", 4)[-1].strip() if line.count("]") >= 4 else line
                msg = re.sub(r"\d+", "N", msg)[:160]
                warnings[msg] += 1
    return bad, warnings


# --------------------------------------------------------------------------- the run


def main() -> int:
    s = Settings()
    if s.seconds < s.valid_after + 10:
        print(f"SOAK_SECONDS must be at least {s.valid_after + 10} (valid tokens start at {s.valid_after} s)",
              file=sys.stderr)
        return 2
    if s.warmup >= s.seconds:
        s.warmup = s.seconds // 2
        log(f"SOAK_WARMUP is not shorter than the run: the warm-up sample is taken at {s.warmup} s")
    if not Path(s.envoy_bin).exists():
        print(f"no Envoy at {s.envoy_bin} (make envoy)", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install -y wrk)", file=sys.stderr)
        return 2
    started = time.time()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    wasm = WORK / "jwt_policy_filter.wasm"
    shutil.copy2(s.wasm, wasm)  # a rebuild during the run changes nothing

    n_keys = math.ceil((s.seconds + 10) / s.rotate) + 1
    schedule = Schedule(rotate=s.rotate, keep=s.keep, valid_after=s.valid_after, valid_before=5, keys=n_keys)
    log(f"seed {s.seed}: {n_keys} keys ({', '.join(sorted(set(material.ALGORITHMS[i % len(material.ALGORITHMS)] for i in range(n_keys))))}), "
        f"{s.valid_per_key} valid tokens each; rotation every {s.rotate} s, superseded keys kept {s.keep} s")
    now = int(time.time())
    mat = material.make(schedule, valid_per_key=s.valid_per_key, now=now, end=now + s.seconds + 120)
    log("tokens: " + ", ".join(f"{cls} {len(t)}" for cls, t in mat.tokens.items())
        + f" ({time.time() - started:.0f} s)")

    jwks = upstream = front = None
    procs: dict[str, subprocess.Popen] = {}
    try:
        jwks = ChaosJwks(mat, fail_rate=s.fail_rate, stall_rate=s.stall_rate, stall_s=s.stall_s, seed=s.seed)
        jwks.start()
        upstream = Envoy(s.envoy_bin, "upstream", upstream_bootstrap(), WORK / "envoy", concurrency=1).start()
        up_ports = {cls: upstream.ports[f"up_{cls}"] for cls in CLASSES}
        plugin = plugin_config(jwks.url, cache_duration=s.cache_duration, timeout=s.timeout)
        front = Envoy(s.envoy_bin, "front", front_bootstrap(wasm, plugin, up_ports, jwks.port), WORK / "envoy",
                      concurrency=2, component_log_level="wasm:info").start()
        schedule.t0 = int(time.time()) + 1     # key 0 is published from here on
        files = mat.write(WORK / "tokens")
        (WORK / "settings.json").write_text(json.dumps({**s.__dict__, "t0": schedule.t0,
                                                         "jwks": jwks.url, "front_port": front.ports["main"]}, indent=1))
        while time.time() < schedule.t0:
            time.sleep(0.05)
        load_start = time.time()
        end = load_start + s.seconds
        log(f"front Envoy pid {front.pid} on :{front.ports['main']} (admin :{front.admin_port}), "
            f"JWKS {jwks.url}; load for {s.seconds} s, warm-up {s.warmup} s")
        for cls in ("expired", "forged", "malformed"):
            procs[cls] = start_wrk(cls, files[cls], s.seconds, s.connections, s.invalid_delay_ms, front.ports["main"],
                                   WORK / f"wrk-{cls}.out")
        valid_start = schedule.t0 + s.valid_after
        samples: list[Sample] = []
        warm: Sample | None = None
        next_sample = load_start
        next_progress = load_start + 30
        died = None
        while True:
            t = time.time()
            if "valid" not in procs and t >= valid_start:
                procs["valid"] = start_wrk("valid", files["valid"], max(1, int(end - t)), s.valid_connections,
                                           s.delay_ms, front.ports["main"], WORK / "wrk-valid.out")
            if not front.alive():
                died = f"front Envoy exited with {front.proc.returncode} at t={t - load_start:.0f} s"
                log(died)
                for p in procs.values():
                    p.terminate()
                break
            if t >= next_sample:
                try:
                    smp = sample(front, t - load_start)
                    samples.append(smp)
                    if warm is None and smp.t >= s.warmup:
                        warm = smp
                        log(f"warm-up sample at t={smp.t:.0f} s: RSS {mib(smp.rss)}, allocated {mib(smp.allocated)}")
                except (OSError, ValueError) as e:
                    log(f"sample failed: {e}")
                next_sample += 5
            if t >= next_progress and samples:
                smp = samples[-1]
                fl = jwks.fetch_log()
                c = smp.counters
                log(f"t={smp.t:4.0f} s  RSS {mib(smp.rss)}  allocated {mib(smp.allocated)}  "
                    f"allowed {c.get('allowed', 0)}  denied {c.get('denied', 0)}  "
                    f"JWKS fetches {len(fl)} (5xx {sum(f.outcome == '5xx' for f in fl)}, "
                    f"stalled {sum(f.outcome == 'stalled' for f in fl)})  keys served {schedule.served(t)}")
                next_progress += 30
            if "valid" in procs and all(p.poll() is not None for p in procs.values()):
                break
            if t > end + 60:
                log("wrk did not finish 60 s after the end: stopping it")
                for p in procs.values():
                    p.kill()
                break
            time.sleep(0.2)
        load_end = time.time()
        final = None
        if front.alive():
            final = sample(front, load_end - load_start)
            samples.append(final)
        for p in procs.values():
            p.wait()
        results = {cls: parse_wrk(cls, p, WORK / f"wrk-{cls}.out") for cls, p in procs.items()}
        up_stats = upstream.stats()
        front_stats = front.stats() if front.alive() else {}
        fetches = jwks.fetch_log()
        jwks_requests = len(jwks.requests)
    except EnvoyError as e:
        log(str(e))
        return 2
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for thing in (front, upstream, jwks):
            if thing is not None:
                thing.stop()
    front_log = front.log_text()
    summary, failed = report(s, schedule, load_start, load_end, results, samples, warm, final, up_stats,
                             front_stats, fetches, jwks_requests, front_log, died)
    text = "\n".join(summary) + "\n"
    print("\n" + text, end="")
    LAST_RUN.write_text(text)
    (WORK / "fetches.json").write_text(json.dumps([f.__dict__ for f in fetches], indent=0))
    (WORK / "memory.csv").write_text("t,rss,hwm,allocated,heap_size,cpu\n" + "".join(
        f"{x.t:.1f},{x.rss},{x.hwm},{x.allocated},{x.heap_size},{x.cpu:.2f}\n" for x in samples))
    log(f"summary written to {LAST_RUN.relative_to(REPO)}; details in {WORK.relative_to(REPO)}/ "
        f"({time.time() - started:.0f} s in all)")
    return 1 if failed else 0


# --------------------------------------------------------------------------- the report


def explain_valid_failure(group: tuple, first_last: list[int], schedule: Schedule, fetches: list[Fetch],
                          load_start: float) -> str:
    """Rejected valid requests (one group: same token key, status and body), placed against the
    rotation and the JWKS fetches (as of the first of them)."""
    kind, label, status, body = group
    n, sent, last_sent = first_last
    m = re.match(r"k(\d+)-", label)
    key = int(m.group(1)) if m else -1
    added = schedule.added(key)
    first_ok = next((f.at for f in fetches if f.outcome == "ok" and key in f.keys), None)
    before = [f for f in fetches if f.at <= sent + 1]
    last = before[-1] if before else None
    since_add = [f.outcome for f in fetches if added <= f.at <= sent + 1]
    parts = [f"{n}x {status} {body!r} for {label}, sent t={sent - load_start:.0f}..{last_sent - load_start:.0f} s "
             f"(first one {sent - added:.0f} s after the key was published, "
             f"{(sent - schedule.t0) % schedule.rotate:.0f} s after the last rotation)"]
    if first_ok is None:
        parts.append("no successful fetch had delivered this key yet")
    else:
        parts.append(f"first successful fetch holding the key at t={first_ok - load_start:.1f} s "
                     f"(the first rejected request came {sent - first_ok:+.0f} s after it)")
    if last is not None:
        parts.append(f"last fetch before: t={last.at - load_start:.1f} s {last.outcome}")
    parts.append(f"fetches since the key was published: {', '.join(since_add) or 'none'}")
    return "; ".join(parts)


def report(s: Settings, schedule: Schedule, load_start: float, load_end: float, results: dict[str, WrkResult],
           samples: list[Sample], warm: Sample | None, final: Sample | None, up_stats: dict[str, int],
           front_stats: dict[str, int], fetches: list[Fetch], jwks_requests: int, front_log: str,
           died: str | None) -> tuple[list[str], bool]:
    out: list[str] = []
    problems: list[str] = []
    elapsed = load_end - load_start
    total = sum(r.requests for r in results.values())
    out.append(f"jwt-policy-filter soak test, {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')} "
               f"({platform.node()}, {os.cpu_count()} CPUs)")
    out.append(f"wasm: {provenance()}")
    out.append(f"settings: SOAK_SECONDS={s.seconds} (load ran {elapsed:.0f} s), warm-up {s.warmup} s, "
               f"Envoy 1.40 --concurrency 2, wrk {s.connections} connection(s) per class "
               f"(valid {s.valid_connections}), pause before each request: valid {s.delay_ms} ms, others "
               f"{s.invalid_delay_ms} ms; seed {s.seed}")
    out.append(f"provider: remote JWKS, cacheDuration {s.cache_duration}, timeout {s.timeout}, claimsToHeaders on; "
               f"JWKS: new key every {s.rotate} s, old keys kept {s.keep} s, {s.fail_rate:.0%} of fetches 5xx, "
               f"{s.stall_rate:.0%} stalled {s.stall_s:g} s; valid tokens from {s.valid_after} s after their key "
               f"is published until 5 s before it is removed")
    out.append("")
    out.append(f"requests: {total} in {elapsed:.0f} s ({total / max(elapsed, 1):.0f} req/s)")

    describe = {"valid": "signed by a served key, published > %d s before" % s.valid_after,
                "expired": "exp in the past, signed by a served key",
                "forged": "bad signature, unknown/unpublished key, alg confusion",
                "malformed": "garbage, bad base64url/JSON, alg none/missing/unknown, oversized"}
    for cls in CLASSES:
        r = results.get(cls)
        if r is None:
            problems.append(f"{cls}: wrk never ran")
            continue
        ok = sum(n for (kind, status, body), n in r.tally.items() if status == 200 and kind != "idle")
        non200 = sum(n for (kind, status, body), n in r.tally.items() if status != 200 and kind != "idle")
        fivexx = sum(n for (kind, status, body), n in r.tally.items() if status >= 500)
        idle = sum(n for (kind, status, body), n in r.tally.items() if kind == "idle")
        upstream_saw = up_stats.get(f"http.up_{cls}.downstream_rq_total", -1)
        forwarded = front_stats.get(f"cluster.up_{cls}.upstream_rq_total", -1)
        out.append("")
        out.append(f"[{cls}] ({describe[cls]}): {r.requests} requests, accepted (200) {ok}, rejected {non200}"
                   + (f", {idle} idle (no token eligible)" if idle else "")
                   + f"; upstream saw {upstream_saw} (front forwarded {forwarded}); p99 {r.p99_us / 1000:.1f} ms, "
                   f"max {r.max_us / 1000:.0f} ms")
        for (status, body), n in sorted(r.by_status.items(), key=lambda kv: -kv[1]):
            out.append(f"    {status} {body!r}: {n}")
        if cls != "valid":
            kinds: dict[str, Counter] = defaultdict(Counter)
            for (kind, status, body), n in r.tally.items():
                kinds[kind][status] += n
            out.append("    by kind: " + "; ".join(
                f"{kind} " + "/".join(f"{st}x{n}" for st, n in sorted(c.items())) for kind, c in sorted(kinds.items())))
        else:
            algs: Counter = Counter()
            for (kind, status, body), n in r.tally.items():
                algs[kind] += n
            out.append("    by algorithm: " + ", ".join(f"{k} {n}" for k, n in sorted(algs.items())))
        errs = {k: v for k, v in r.errors.items() if v}
        if errs:
            out.append(f"    wrk socket errors/timeouts: {errs}")
            problems.append(f"{cls}: requests without an answer (wrk {errs})")
        if r.returncode != 0 or not r.requests:
            problems.append(f"{cls}: wrk failed (exit {r.returncode}): {r.raw[-500:]!r}")
        if fivexx:
            problems.append(f"{cls}: {fivexx} answers were 5xx")
        if cls == "valid":
            if non200:
                problems.append(f"valid: {non200} valid-token requests were not answered 200")
            if upstream_saw >= 0 and upstream_saw < ok:
                problems.append(f"valid: upstream saw {upstream_saw} < {ok} accepted")
        else:
            if ok:
                problems.append(f"{cls}: {ok} requests accepted (200)")
            if upstream_saw != 0:
                problems.append(f"{cls}: the upstream saw {upstream_saw} requests of this class")
            if forwarded > 0:
                problems.append(f"{cls}: the front Envoy forwarded {forwarded} requests of this class")
            idle_ok = sum(n for (kind, status, body), n in r.tally.items() if kind == "idle" and status == 200)
            if idle_ok:
                problems.append(f"{cls}: {idle_ok} requests without a token accepted")
        if r.failures:
            groups = sorted(r.failures.items(), key=lambda kv: kv[1][1])
            out.append(f"    failures: {r.failure_count} in {len(groups)} group(s) (token key/kind, status, body)"
                       + (", the first 25:" if len(groups) > 25 else ":"))
            for group, first_last in groups[:25]:
                if cls == "valid":
                    out.append("      " + explain_valid_failure(group, first_last, schedule, fetches, load_start))
                else:
                    kind, label, status, body = group
                    n, first, last = first_last
                    out.append(f"      {n}x {kind} {label}: {status} {body!r}, sent t={first - load_start:.0f}.."
                               f"{last - load_start:.0f} s")

    # JWKS
    out.append("")
    by = Counter(f.outcome for f in fetches)
    in_run = [i for i in range(schedule.keys) if schedule.added(i) < load_end]
    removed = [i for i in in_run if schedule.removed(i) < load_end]
    c_final = (final or (samples[-1] if samples else None))
    counters = c_final.counters if c_final else {}
    out.append(f"JWKS fetches: {len(fetches)} (ok {by['ok']}, 5xx {by['5xx']}, stalled {by['stalled']}); "
               f"filter counters: jwks_fetch_success {counters.get('jwks_fetch_success', 0)}, "
               f"jwks_fetch_failure {counters.get('jwks_fetch_failure', 0)}, "
               f"requests_paused {counters.get('requests_paused', 0)}")
    bad_fetches = [f for f in fetches if f.outcome != "ok"]
    if bad_fetches:
        out.append("    failed fetches at: " + ", ".join(
            f"t={f.at - load_start:.1f} s {f.status if f.outcome == '5xx' else 'stalled'}" for f in bad_fetches))
    gaps = [b.at - a.at for a, b in zip(fetches, fetches[1:])]
    if gaps:
        out.append(f"    between fetches: min {min(gaps):.1f} s, median {sorted(gaps)[len(gaps) // 2]:.1f} s, "
                   f"max {max(gaps):.1f} s")
    out.append(f"keys: {len(in_run)} published during the run "
               f"({', '.join(mat_alg(schedule, i) for i in in_run)}), {len(removed)} removed")
    out.append("filter counters: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())
                                                 if not k.startswith(("wasm.", "wasm_vm."))))

    # memory
    out.append("")
    if warm is not None and final is not None:
        g_rss = (final.rss - warm.rss) / warm.rss
        g_alloc = (final.allocated - warm.allocated) / max(warm.allocated, 1)
        out.append(f"memory (front Envoy): warm-up t={warm.t:.0f} s: RSS {mib(warm.rss)}, allocated "
                   f"{mib(warm.allocated)}; end t={final.t:.0f} s: RSS {mib(final.rss)}, allocated "
                   f"{mib(final.allocated)}; growth RSS {g_rss:+.1%}, allocated {g_alloc:+.1%} "
                   f"(limit +{s.memory_limit:.0%}); peak RSS {mib(final.hwm)}")
        after = [x for x in samples if x.t >= warm.t]
        out.append(f"    after warm-up: RSS {mib(min(x.rss for x in after))} .. {mib(max(x.rss for x in after))}, "
                   f"allocated {mib(min(x.allocated for x in after))} .. {mib(max(x.allocated for x in after))}; "
                   f"CPU {final.cpu - samples[0].cpu:.0f} s over the run")
        if g_rss > s.memory_limit:
            problems.append(f"memory: RSS grew {g_rss:+.1%} between warm-up and end")
        if g_alloc > s.memory_limit:
            problems.append(f"memory: allocated grew {g_alloc:+.1%} between warm-up and end")
    else:
        out.append("memory: no warm-up/end samples")
        problems.append("memory: not measured (run shorter than the warm-up, or Envoy died)")

    # VM and log
    bad_lines, warnings = scan_log(front_log)
    wasm_stats = {k: v for k, v in front_stats.items() if k.startswith(("wasm.", "wasm_vm."))}
    out.append("wasm stats at the end: " + (", ".join(f"{k} {v}" for k, v in sorted(wasm_stats.items())) or "none"))
    for k, v in sorted(wasm_stats.items()):
        before = warm.counters.get(k) if warm is not None else None
        if re.search(r"(reload|restart|crash|fail)", k) and v:
            problems.append(f"wasm stat {k} = {v}")
        elif k.endswith(".created") and before is not None and v != before:
            problems.append(f"wasm stat {k} went {before} -> {v} after warm-up (a VM was created again)")
        elif k.endswith((".active", "wasm_vm_count")) and before is not None and v < before:
            problems.append(f"wasm stat {k} went {before} -> {v} after warm-up (a VM went away)")
    out.append(f"front Envoy log: {len(bad_lines)} failure line(s); warnings: "
               + ("; ".join(f"{n}x {msg}" for msg, n in warnings.most_common(6)) or "none"))
    for reason, line in bad_lines[:20]:
        out.append(f"    {reason}: {line[:300]}")
    if bad_lines:
        problems.append(f"log: {len(bad_lines)} line(s) with a panic, critical, error or VM failure")
    unexpected = [msg for msg in warnings if not EXPECTED_WARNINGS.search(msg)]
    if unexpected:
        out.append("    unexpected warnings: " + "; ".join(unexpected[:5]))
    if died:
        problems.append(died)

    out.append("")
    if problems:
        out.append("verdict: FAIL")
        out.extend(f"  - {p}" for p in problems)
    else:
        out.append("verdict: PASS (no invalid token accepted, no valid token rejected, no 5xx, memory within "
                   f"+{s.memory_limit:.0%} after warm-up, no VM failure)")
    return out, bool(problems)


def provenance() -> str:
    """The tested .wasm (the copy in .work/) and the checkout it was built from."""
    wasm = WORK / "jwt_policy_filter.wasm"
    digest = hashlib.sha256(wasm.read_bytes()).hexdigest()[:16] if wasm.exists() else "?"
    built = dt.datetime.fromtimestamp(wasm.stat().st_mtime).strftime("%Y-%m-%d %H:%M") if wasm.exists() else "?"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", ""
    return (f"sha256 {digest}…, built {built}; checkout {head or '?'}"
            + (" with uncommitted changes in src/ or Cargo.*" if dirty else ""))


def mat_alg(schedule: Schedule, i: int) -> str:
    return material.ALGORITHMS[i % len(material.ALGORITHMS)]


if __name__ == "__main__":
    sys.exit(main())
