#!/usr/bin/env python3
"""`make bench`: the wasm jwt-policy-filter against Envoy's native jwt_authn, one Envoy binary.

Run by bench/bench.sh (after it installed wrk and built the wasm and the .venv).  Steps:

 1. keys and tokens (RS256, ES256/384/512, EdDSA, ten-year expiry; distinct tokens of each; the
    guide's token; a Zipf draw over many users with 1% forged; distinct forged tokens) -> bench/.work/
 2. the upstream: an Envoy answering direct_response "ok" on /, and the JWKS on /jwks
 3. per profile (the default arms; the guide's arms; the Zipf arms): one Envoy per arm
    (--concurrency 1), all routing / to that upstream, started before the profile's first
    workload and stopped after its last
 4. enforcement check of every arm (no token -> 401, valid tokens -> 200, tampered -> 401);
    abort, exit 2, on failure
 5. per workload (WORKLOADS below): a warm-up per arm, then REPS rounds of wrk with the
    arms interleaved (order rotated each round); the report shows medians
 6. memory of every arm after the distinct-token workload, enforcement checked again
 7. remote-JWKS cold start: fresh Envoys, a burst of concurrent requests once ready
 8. BENCHMARKS.md (report.py) and bench/.work/results.json (every raw number)

Never asserts on performance.  Knobs (environment): BENCH_DURATION (s per run, 5), BENCH_WARMUP
(s, 2), BENCH_REPS (5), BENCH_CONNECTIONS (16), BENCH_DISTINCT (20000: more than ours' default cache of 16384
tokens, so that cycling through them misses every time), BENCH_ZIPF_USERS (20000),
BENCH_ZIPF_REQUESTS (60000), BENCH_ZIPF_FORGED (0.01), BENCH_COLD_N (32),
BENCH_COLD_REPS (3), BENCH_DISTURBED (1.0 CPU), BENCH_MAKEUP (5 runs per workload), BENCH_PIN (1),
BENCH_UPSTREAM (separate | inprocess), BENCH_OUT
(BENCHMARKS.md), BENCH_COMMAND (the command written in the report), BENCH_STARTED (epoch seconds
the whole `make bench` started, for the reported duration).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import jwtmint  # noqa: E402  (the e2e suite's key and token helpers: `cryptography` only)
import report  # noqa: E402
from configs import (GUIDE_HEADER, ISSUER, Arm, arm_bootstrap, arms, cold_arms, guide_arms,  # noqa: E402
                     upstream_bootstrap, zipf_arms)
from envoy_proc import BenchError, Envoy, free_port, get, pinned  # noqa: E402

ENVOY_BIN = os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")
WASM_SRC = Path(os.environ.get("WASM") or REPO / "target" / "wasm32-wasip1" / "release" / "jwt_policy_filter.wasm")
WRK_LUA = BENCH / "wrk.lua"

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
REPS = int(os.environ.get("BENCH_REPS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
# Distinct tokens per workload, cycled in order: with more of them than ours' default cache holds
# (16384, evicted oldest first) every request misses it, as a token not seen before does.
DISTINCT = int(os.environ.get("BENCH_DISTINCT", "20000"))
ZIPF_USERS = int(os.environ.get("BENCH_ZIPF_USERS", "20000"))
ZIPF_REQUESTS = int(os.environ.get("BENCH_ZIPF_REQUESTS", "60000"))
ZIPF_FORGED = float(os.environ.get("BENCH_ZIPF_FORGED", "0.01"))
COLD_N = int(os.environ.get("BENCH_COLD_N", "32"))
COLD_REPS = int(os.environ.get("BENCH_COLD_REPS", "3"))
PIN = os.environ.get("BENCH_PIN", "1") != "0"
# A run during which other jobs kept more than DISTURBED CPUs busy is "disturbed": it is kept in
# results.json and shown, but left out of the medians while at least two calm runs remain; arms
# with fewer than WANT_CALM calm runs get make-up runs, at most MAKEUP per workload.
DISTURBED = float(os.environ.get("BENCH_DISTURBED", "1.0"))
WANT_CALM = 3
# Quick experiments (not for BENCHMARKS.md): only these arms / workloads (comma lists).
ONLY_ARMS = [a for a in os.environ.get("BENCH_ARMS", "").split(",") if a]
ONLY_WORKLOADS = [w for w in os.environ.get("BENCH_WORKLOADS", "").split(",") if w]
MAKEUP = int(os.environ.get("BENCH_MAKEUP", "5"))
OUT = Path(os.environ.get("BENCH_OUT") or REPO / "BENCHMARKS.md")
COMMAND = os.environ.get("BENCH_COMMAND", "make bench")
TEN_YEARS = 10 * 365 * 24 * 3600

# CPUs.  The Envoy under test gets the last CPU; wrk the first; the upstream its own CPU when
# there are 3 or more, else it shares wrk's.
CPUS = sorted(os.sched_getaffinity(0))
PINNING = PIN and len(CPUS) >= 2
ENVOY_CPUS = {CPUS[-1]} if PINNING else set(CPUS)
WRK_CPUS = {CPUS[0]} if PINNING else set(CPUS)
UPSTREAM_CPUS = ({CPUS[-2]} if len(CPUS) >= 3 else {CPUS[0]}) if PINNING else set(CPUS)

# Where the fast upstream runs.  "separate" (default): its own Envoy process (--concurrency 1),
# so the Envoy under test does only the arm's work on a CPU of its own.  wrk -t1 (~10% of a core
# here) and the direct_response upstream (~25%) together stay well below one core, so sharing a
# CPU on a 2-CPU machine does not make them the bottleneck.  "inprocess": a second listener of
# each arm's Envoy on the same worker, which then also pays the upstream's work per request (the
# same for every arm, so it dilutes the differences between arms).
UPSTREAM_MODE = os.environ.get("BENCH_UPSTREAM") or "separate"
if UPSTREAM_MODE not in ("separate", "inprocess"):
    raise SystemExit(f"BENCH_UPSTREAM must be separate or inprocess, not {UPSTREAM_MODE!r}")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {Path('/proc/loadavg').read_text().split()[0]}] {msg}",
          flush=True)


# --------------------------------------------------------------------------- keys and tokens

@dataclass
class Material:
    jwks: str
    rs_token: str
    es_token: str
    guide_token: str
    distinct: list[str]
    distinct_file: Path
    tampered: dict[str, str]
    files: dict[str, Path]          # token files by workload name (one token a line)
    firsts: dict[str, str]          # a valid token of each distinct workload, for the checks


# Distinct-token workloads beside RS256 ("distinct"): (workload, alg, label).
DISTINCT_EC = (("distinct_es256", "ES256", "ES256"), ("distinct_es384", "ES384", "ES384"),
               ("distinct_es512", "ES512", "ES512"), ("distinct_eddsa", "EdDSA", "EdDSA"))


def zipf_draw(n_users: int, n_requests: int, seed: int = 1) -> list[int]:
    """``n_requests`` user indices drawn from Zipf(1.0) over ``n_users`` (rank k has weight 1/k)."""
    import itertools
    import random

    cum = list(itertools.accumulate(1 / k for k in range(1, n_users + 1)))
    return random.Random(seed).choices(range(n_users), cum_weights=cum, k=n_requests)


def make_material() -> Material:
    log(f"keys and tokens: RS256 (2048-bit), ES256/384/512, EdDSA; {DISTINCT} distinct tokens of each; "
        f"{ZIPF_USERS} Zipf users")
    rs = jwtmint.generate("RS256", kid="bench-rs256")
    es = jwtmint.generate("ES256", kid="bench-es256")
    others = {alg: jwtmint.generate(alg, kid=f"bench-{alg.lower()}") for _, alg, _ in DISTINCT_EC if alg != "ES256"}
    keys = {"RS256": rs, "ES256": es, **others}
    now = jwtmint.now()

    def payload(sub: str, **extra: object) -> dict:
        return {"iss": ISSUER, "sub": sub, "iat": now, "exp": now + TEN_YEARS, "org": "bench-org",
                "email": f"{sub}@bench.example.com", **extra}

    def write(name: str, tokens: list[str]) -> Path:
        path = WORK / f"{name}.tokens"
        path.write_text("\n".join(tokens) + "\n")
        return path

    # Many users: ZIPF_USERS valid RS256 tokens (also the first of the distinct RS256 ones).
    users = [jwtmint.mint(rs, payload(f"user-{i:05d}")) for i in range(ZIPF_USERS)]
    distinct = users[:DISTINCT] + [jwtmint.mint(rs, payload(f"user-{i:05d}")) for i in range(len(users), DISTINCT)]
    files = {"distinct": write("distinct-rs256", distinct)}
    firsts = {}
    for wname, alg, _ in DISTINCT_EC:
        tokens = [jwtmint.mint(keys[alg], payload(f"{alg.lower()}-{i:05d}")) for i in range(DISTINCT)]
        files[wname] = write(wname, tokens)
        firsts[f"first distinct {alg} token"] = tokens[0]
    # Forged: well-formed, known kid, right issuer, wrong signature; every one distinct.
    for wname, key in (("forged_rs256", rs), ("forged_es256", es)):
        files[wname] = write(wname, [jwtmint.tamper_signature(jwtmint.mint(key, payload(f"mallory-{i:05d}")))
                                     for i in range(DISTINCT)])
    # Many users: the users' tokens drawn with Zipf(1.0), ZIPF_FORGED of the requests forged.
    draw = zipf_draw(ZIPF_USERS, ZIPF_REQUESTS)
    forge_every = round(1 / ZIPF_FORGED) if ZIPF_FORGED > 0 else 0
    zipf = [jwtmint.tamper_signature(users[u]) if forge_every and i % forge_every == forge_every - 1 else users[u]
            for i, u in enumerate(draw)]
    files["zipf"] = write("zipf", zipf)
    firsts["a Zipf user's token"] = users[0]

    m = Material(jwks=jwtmint.jwks(*keys.values()), rs_token=jwtmint.mint(rs, payload("rs-user")),
                 es_token=jwtmint.mint(es, payload("es-user")),
                 guide_token=jwtmint.mint(rs, payload("dev1", org="solo.io")),
                 distinct=distinct, distinct_file=files["distinct"], tampered={}, files=files, firsts=firsts)
    m.tampered = {"tampered RS256 token": jwtmint.tamper_signature(m.rs_token),
                  "tampered ES256 token": jwtmint.tamper_signature(m.es_token)}
    (WORK / "jwks.json").write_text(m.jwks)
    (WORK / "rs256.token").write_text(m.rs_token + "\n")
    (WORK / "es256.token").write_text(m.es_token + "\n")
    return m


@dataclass
class Workload:
    name: str
    label: str
    profile: str                     # which arm set: "default", "guide", "zipf"
    how: dict                        # run_wrk's token / token_file / header
    expect: str = "ok"               # "ok": every response 2xx; "mixed": some 401; "denied": every one 401


def workloads(m: Material) -> list[Workload]:
    ws = [Workload("guide", "the guide's policy (repeated RS256, X-Auth, 2 claim headers)", "guide",
                   {"token": m.guide_token, "header": GUIDE_HEADER}),
          Workload("rs256", "repeated RS256", "default", {"token": m.rs_token}),
          Workload("es256", "repeated ES256", "default", {"token": m.es_token}),
          Workload("distinct", f"{DISTINCT} distinct RS256", "default", {"token_file": m.files["distinct"]})]
    ws += [Workload(w, f"{DISTINCT} distinct {label}", "default", {"token_file": m.files[w]})
           for w, _, label in DISTINCT_EC]
    ws += [Workload("zipf", f"{ZIPF_USERS} users, Zipf(1.0), {ZIPF_FORGED:.0%} forged", "zipf",
                    {"token_file": m.files["zipf"]}, expect="mixed"),
           # A request without a token, refused by every enforcing arm: what a 401 costs without
           # any signature check (a refused request never reaches the upstream, so the forged
           # tokens' cost is read against this, not against the no-auth arm that proxies).
           Workload("no_token", "no token (401)", "default", {}, expect="denied"),
           Workload("forged_rs256", f"{DISTINCT} distinct forged RS256", "default",
                    {"token_file": m.files["forged_rs256"]}, expect="denied"),
           Workload("forged_es256", f"{DISTINCT} distinct forged ES256", "default",
                    {"token_file": m.files["forged_es256"]}, expect="denied")]
    return [w for w in ws if not ONLY_WORKLOADS or w.name in ONLY_WORKLOADS]


# --------------------------------------------------------------------------- arms

def start_arm(arm: Arm, jwks: str, upstream: Envoy | None, tag: str = "") -> Envoy:
    """The arm's Envoy, routing to the separate upstream, or (inprocess) serving its own upstream
    listener on a free port (retried if another process takes the port first)."""
    for attempt in range(3):
        config = (arm_bootstrap(arm.filters, upstream.port) if upstream is not None
                  else arm_bootstrap(arm.filters, free_port(), inprocess_jwks=jwks))
        try:
            return Envoy(ENVOY_BIN, arm.name + tag, config, ENVOY_CPUS, WORK / "envoy").start()
        except BenchError:
            if upstream is not None or attempt == 2:
                raise
    raise AssertionError("unreachable")


def check_enforcement(arm: Arm, envoy: Envoy, valid: dict[str, str], invalid: dict[str, str]) -> list[str]:
    """What is wrong (empty: the arm enforces).  The no-auth arm must let everything through."""
    problems = []
    expected = 401 if arm.enforces else 200
    status, body = get(envoy.port)
    if status != expected:
        problems.append(f"no token -> {status} {body.strip()!r}, expected {expected}")
    for what, token in valid.items():
        status, body = get(envoy.port, token, arm.token_header)
        if status != 200:
            problems.append(f"{what} -> {status} {body.strip()!r}, expected 200")
    for what, token in (invalid if arm.enforces else {}).items():
        status, body = get(envoy.port, token, arm.token_header)
        if status != 401:
            problems.append(f"{what} -> {status} {body.strip()!r}, expected 401")
    return problems


# --------------------------------------------------------------------------- wrk

def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def busy_cpu_seconds() -> float:
    """CPU seconds every CPU of the machine spent not idle, so far."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# Where each (Envoy, token file) cycle stands: the next run goes on from there (wrk.lua's
# BENCH_TOKEN_START), so a distinct-token workload never restarts at tokens the arm's cache holds.
_cycle_at: dict[tuple[int, str], int] = {}


def run_wrk(envoy: Envoy, seconds: int, upstream: Envoy | None, token: str | None = None,
            token_file: Path | None = None, header: str = "Authorization") -> dict:
    """One wrk run against the arm's listener, with the CPU each party used during it."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(WRK_LUA)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("BENCH_TOKEN_FILE", "BENCH_TOKEN_HEADER", "BENCH_TOKEN_START")}
    if token is not None:
        cmd += ["-H", f"{header}: Bearer {token}"]
    cycle = (envoy.port, str(token_file))
    if token_file is not None:
        env["BENCH_TOKEN_FILE"] = str(token_file)
        env["BENCH_TOKEN_HEADER"] = header
        env["BENCH_TOKEN_START"] = str(_cycle_at.get(cycle, 0))
    cmd.append(f"http://127.0.0.1:{envoy.port}/")

    load = loadavg()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, cpu0 = busy_cpu_seconds(), envoy.cpu_seconds()
    up0 = upstream.cpu_seconds() if upstream else 0.0
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=pinned(WRK_CPUS),
                          timeout=seconds + 60)
    wall = time.perf_counter() - t0
    cpu = envoy.cpu_seconds() - cpu0
    up = (upstream.cpu_seconds() - up0) if upstream else 0.0
    busy = busy_cpu_seconds() - busy0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)

    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    data = json.loads(line[len("BENCH_JSON "):])
    if token_file is not None:
        # + CONNECTIONS: the requests still in flight when wrk stopped were sent (and cached) too.
        _cycle_at[cycle] = _cycle_at.get(cycle, 0) + data["requests"] + CONNECTIONS
    lat = data["latency_us"]
    return {"rps": data["requests"] / (data["duration_us"] / 1e6), "requests": data["requests"],
            "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000, "p99_ms": lat["p99"] / 1000,
            "max_ms": lat["max"] / 1000, "errors": data["errors"],
            "envoy_cpu_pct": 100 * cpu / wall, "envoy_cpu_us_per_req": 1e6 * cpu / max(1, data["requests"]),
            "upstream_cpu_pct": 100 * up / wall, "wrk_cpu_pct": 100 * wrk_cpu / wall,
            "others_cpu": max(0.0, busy - cpu - up - wrk_cpu) / wall,  # CPUs kept busy by other jobs
            "loadavg_before": load}


# --------------------------------------------------------------------------- cold start

async def burst(port: int, n: int, token: str) -> list[tuple[int, float]]:
    """``n`` connections opened first, then one request written on each at once.
    Returns (status, seconds from the first write to that response's status line) per request."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    request = (f"GET / HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
               "Connection: close\r\n\r\n").encode()
    t0 = time.perf_counter()
    for _, writer in conns:
        writer.write(request)

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, float]:
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        elapsed = time.perf_counter() - t0
        writer.close()
        parts = line.split()
        return (int(parts[1]) if len(parts) > 1 else 0), elapsed

    return list(await asyncio.gather(*(one(r, w) for r, w in conns)))


def cold_start(arm: Arm, jwks: str, upstream: Envoy | None, token: str, rep: int) -> dict:
    """A fresh Envoy: the first burst right after ready (keys not fetched yet, unless the arm
    fetches at start), then a second burst (warm)."""
    envoy = start_arm(arm, jwks, upstream, f"-cold{rep}")
    try:
        cold = asyncio.run(burst(envoy.port, COLD_N, token))
        warm = asyncio.run(burst(envoy.port, COLD_N, token))
        problems = check_enforcement(arm, envoy, {"RS256 token": token}, {})
    finally:
        envoy.stop()
    ok = sorted(t * 1000 for s, t in cold if s == 200)
    warm_ok = sorted(t * 1000 for s, t in warm if s == 200)
    if len(ok) != COLD_N or len(warm_ok) != COLD_N:
        problems.append(f"statuses of the bursts: {sorted(s for s, _ in cold)} then {sorted(s for s, _ in warm)}")
    return {"ready_s": envoy.ready_s, "ok": len(ok),
            "first_200_ms": ok[0] if ok else None, "p50_ms": statistics.median(ok) if ok else None,
            "last_ms": ok[-1] if ok else None,
            "warm_p50_ms": statistics.median(warm_ok) if warm_ok else None,
            "warm_last_ms": warm_ok[-1] if warm_ok else None, "problems": problems}


# --------------------------------------------------------------------------- results

def calm(run: dict) -> bool:
    return run["others_cpu"] <= DISTURBED


def summarize(runs: list[dict]) -> dict:
    """Medians over the calm runs when there are at least two, else over every run."""
    used = [r for r in runs if calm(r)]
    used = used if len(used) >= 2 else runs
    keys = ("rps", "p50_ms", "p99_ms", "envoy_cpu_pct", "envoy_cpu_us_per_req", "upstream_cpu_pct",
            "wrk_cpu_pct", "others_cpu")
    return {k: statistics.median(r[k] for r in used) for k in keys} | {
        "runs_used": len(used), "runs": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "rps_min": min(r["rps"] for r in used), "rps_max": max(r["rps"] for r in used),
        "non2xx": sum(r["errors"]["status"] for r in runs),
        "socket_errors": sum(r["errors"][k] for r in runs for k in ("connect", "read", "write", "timeout"))}


def machine() -> dict:
    cpu = next((x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                if x.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal:"))
    envoy = subprocess.run([ENVOY_BIN, "--version"], capture_output=True, text=True).stdout
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": mem_kib / 1048576, "kernel": platform.release(),
            "envoy": envoy.split("version:", 1)[-1].strip(),
            "wrk": (wrk[0].split("Copyright")[0].strip() if wrk else "wrk")}


# --------------------------------------------------------------------------- main

def profile_arms(profile: str, mat: Material, wasm: Path) -> list[Arm]:
    make = {"default": arms, "guide": guide_arms, "zipf": zipf_arms}[profile]
    return [a for a in make(mat.jwks, wasm) if not ONLY_ARMS or a.name in ONLY_ARMS]


def profile_tokens(profile: str, mat: Material) -> tuple[dict[str, str], dict[str, str]]:
    """The enforcement check's (valid, invalid) tokens for a profile's arms."""
    if profile == "guide":
        return {"the guide's token": mat.guide_token}, {"tampered guide token": tamper(mat.guide_token)}
    valid = {"RS256 token": mat.rs_token, "ES256 token": mat.es_token,
             "first distinct token": mat.distinct[0], "last distinct token": mat.distinct[-1]}
    if profile == "default":
        valid |= {k: v for k, v in mat.firsts.items() if "Zipf" not in k}
        return valid, mat.tampered | {f"tampered {k}": tamper(v) for k, v in mat.firsts.items() if "Zipf" not in k}
    return valid | {k: v for k, v in mat.firsts.items() if "Zipf" in k}, mat.tampered


def tamper(token: str) -> str:
    return jwtmint.tamper_signature(token)


def start_profile(profile: str, mat: Material, wasm: Path, upstream: Envoy | None, envoys: list[Envoy],
                  res: dict) -> dict[str, Envoy]:
    by_name: dict[str, Envoy] = {}
    valid, invalid = profile_tokens(profile, mat)
    for arm in profile_arms(profile, mat, wasm):
        envoy = start_arm(arm, mat.jwks, upstream, "" if profile == "default" else f"-{profile}")
        envoys.append(envoy)
        by_name[arm.name] = envoy
        problems = check_enforcement(arm, envoy, valid, invalid)
        if problems:
            raise BenchError(f"arm {arm.name} ({profile}) fails its enforcement check: " + "; ".join(problems)
                             + f"\n{envoy.log_tail()}")
        if profile == "default":
            res["memory"]["boot"][arm.name] = envoy.memory()
        log(f"arm {arm.name:13s} ({profile}) on :{envoy.port} (CPU {sorted(ENVOY_CPUS)}): enforces as expected")
    return by_name


def stop_profile(profile: str, mat: Material, wasm: Path, by_name: dict[str, Envoy], res: dict) -> None:
    valid, invalid = profile_tokens(profile, mat)
    for arm in profile_arms(profile, mat, wasm):
        envoy = by_name[arm.name]
        if profile == "default":
            res["memory"]["after"][arm.name] = envoy.memory()
        else:
            res["memory"].setdefault(profile, {})[arm.name] = envoy.memory()
        if profile == "zipf" and arm.name.startswith("ours"):
            # the verified-token cache over the whole workload (warm-up and every run)
            hit, miss = cache_counts(envoy)
            res.setdefault("cache_stats", {})[arm.name] = {"hit": hit, "miss": miss}
        problems = check_enforcement(arm, envoy, valid, invalid)
        if problems:
            raise BenchError(f"arm {arm.name} ({profile}) stopped enforcing after the runs: " + "; ".join(problems))
        envoy.stop()


def measure(res: dict, mat: Material, wasm: Path, envoys: list[Envoy]) -> None:
    upstream: Envoy | None = None
    if UPSTREAM_MODE == "separate":
        upstream = Envoy(ENVOY_BIN, "upstream", upstream_bootstrap(mat.jwks), UPSTREAM_CPUS, WORK / "envoy").start()
        envoys.append(upstream)
        log(f"upstream Envoy on :{upstream.port} (CPU {sorted(UPSTREAM_CPUS)})")

    todo = workloads(mat)
    running: dict[str, dict[str, Envoy]] = {}
    for i, w in enumerate(todo):
        if w.profile not in running:
            running[w.profile] = start_profile(w.profile, mat, wasm, upstream, envoys, res)
        by_name = running[w.profile]
        w_arms = [a for a in profile_arms(w.profile, mat, wasm) if a.workloads is None or w.name in a.workloads]
        measure_workload(res, w, w_arms, by_name, upstream)
        if all(x.profile != w.profile for x in todo[i + 1:]):
            stop_profile(w.profile, mat, wasm, running.pop(w.profile), res)

    c_arms = cold_arms(wasm)
    res["cold_arms"] = [{"name": a.name, "label": a.label} for a in c_arms]
    for rep in range(COLD_REPS):
        for arm in c_arms:
            r = cold_start(arm, mat.jwks, upstream, mat.rs_token, rep)
            res["cold"].setdefault(arm.name, []).append(r)
            log(f"cold     round {rep + 1}/{COLD_REPS} {arm.name:13s} first 200 {report.fmt(r['first_200_ms'])} ms  "
                f"p50 {report.fmt(r['p50_ms'])} ms  last {report.fmt(r['last_ms'])} ms  "
                f"{r['ok']}/{COLD_N} ok  ready after {r['ready_s']:.2f} s")
            if r["problems"]:
                raise BenchError(f"cold-start arm {arm.name}: " + "; ".join(r["problems"]))


def measure_workload(res: dict, w: Workload, w_arms: list[Arm], by_name: dict[str, Envoy],
                     upstream: Envoy | None) -> None:
    wname, how = w.name, w.how
    runs: dict[str, list[dict]] = {a.name: [] for a in w_arms}
    for arm in w_arms:
        run_wrk(by_name[arm.name], WARMUP, upstream, **how)
    # Ours' verified-token cache over the timed runs (after the warm-up): the distinct-token
    # workloads must miss on every request, the repeated ones hit.
    cache_before = {a.name: cache_counts(by_name[a.name]) for a in w_arms if a.name.startswith("ours")}

    def measure_once(arm: Arm, tag: str) -> None:
        r = run_wrk(by_name[arm.name], DURATION, upstream, **how)
        r["round"] = tag
        runs[arm.name].append(r)
        log(f"{wname:14s} {tag:10s} {arm.name:13s} {r['rps']:8.0f} req/s  "
            f"p50 {r['p50_ms']:6.3f} ms  p99 {r['p99_ms']:7.3f} ms  Envoy {r['envoy_cpu_pct']:3.0f}% "
            f"{r['envoy_cpu_us_per_req']:4.0f} us/req  others {r['others_cpu']:.2f} CPUs"
            + (f"  non-2xx {r['errors']['status']}" if r["errors"]["status"] else "")
            + ("" if calm(r) else "  (disturbed)"))

    for rep in range(REPS):
        shift = rep % len(w_arms)
        for arm in w_arms[shift:] + w_arms[:shift]:
            measure_once(arm, f"round {rep + 1}/{REPS}")
    # Make-up runs: an arm with fewer than WANT_CALM calm runs (other jobs used more than
    # DISTURBED CPUs during the others) gets more, interleaved, within a budget of MAKEUP runs.
    budget = MAKEUP
    while budget > 0:
        needy = sorted((a for a in w_arms if sum(map(calm, runs[a.name])) < min(WANT_CALM, REPS)),
                       key=lambda a: sum(map(calm, runs[a.name])))  # the fewest calm runs first
        if not needy:
            break
        for arm in needy[:budget]:
            measure_once(arm, "make-up")
            budget -= 1
    res["runs"][wname] = runs
    res["summary"][wname] = {a: summarize(rs) for a, rs in runs.items()}
    for name, (hit0, miss0) in cache_before.items():
        hit, miss = cache_counts(by_name[name])
        res.setdefault("workload_cache", {}).setdefault(wname, {})[name] = {"hit": hit - hit0, "miss": miss - miss0}


def cache_counts(envoy: Envoy) -> tuple[int, int]:
    """Ours' verified-token cache counters (hits, misses) in this Envoy so far."""
    stats = envoy.stats("wasmcustom.jwt_policy.token_cache_")
    return (stats.get("wasmcustom.jwt_policy.token_cache_hit", 0),
            stats.get("wasmcustom.jwt_policy.token_cache_miss", 0))


def main() -> int:
    started = float(os.environ.get("BENCH_STARTED") or time.time())
    for what, path in (("Envoy", ENVOY_BIN), ("the wasm filter", str(WASM_SRC))):
        if not Path(path).exists():
            raise BenchError(f"missing {what}: {path} (`make bench` builds it)")
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found (`make bench` installs it)")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    # A private copy: another job rebuilding target/ during the run cannot change what is measured.
    wasm = WORK / "jwt_policy_filter.wasm"
    shutil.copyfile(WASM_SRC, wasm)

    mat = make_material()
    all_arms: list[Arm] = []
    for profile in ("guide", "default", "zipf"):
        all_arms += [a for a in profile_arms(profile, mat, wasm) if a.name not in {x.name for x in all_arms}]
    res: dict = {
        "command": COMMAND, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "config": {"duration": DURATION, "warmup": WARMUP, "reps": REPS, "connections": CONNECTIONS,
                   "distinct": DISTINCT, "zipf_users": ZIPF_USERS, "zipf_requests": ZIPF_REQUESTS,
                   "zipf_forged": ZIPF_FORGED, "cold_n": COLD_N, "disturbed": DISTURBED, "makeup": MAKEUP, "cold_reps": COLD_REPS, "upstream": UPSTREAM_MODE,
                   "envoy_cpus": sorted(ENVOY_CPUS), "wrk_cpus": sorted(WRK_CPUS),
                   "upstream_cpus": sorted(UPSTREAM_CPUS), "pinned": PINNING},
        "arms": [{"name": a.name, "label": a.label} for a in all_arms],
        "workloads": [{"name": w.name, "label": w.label, "profile": w.profile, "expect": w.expect}
                      for w in workloads(mat)],
        "runs": {}, "summary": {}, "memory": {"boot": {}, "after": {}}, "cold_arms": [], "cold": {},
        "wasm_bytes": wasm.stat().st_size,
        "wasm_path": str(WASM_SRC.relative_to(REPO)) if WASM_SRC.is_relative_to(REPO) else str(WASM_SRC),
        "token_bytes": {"rs256": len(mat.rs_token), "es256": len(mat.es_token)},
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    envoys: list[Envoy] = []
    try:
        measure(res, mat, wasm, envoys)
    finally:
        for envoy in envoys:
            envoy.stop()
    res["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    res["elapsed_s"] = time.time() - started
    (WORK / "results.json").write_text(json.dumps(res, indent=1))
    report.write(res, OUT)
    log(f"wrote {OUT} (raw numbers: {WORK / 'results.json'}); {res['elapsed_s'] / 60:.1f} min in all")
    wrong = verdict_problems(res)
    if wrong:
        log("FAILED: " + "; ".join(wrong))
        return 1
    return 0


def verdict_problems(res: dict) -> list[str]:
    """Workloads whose answers were not what their tokens call for: a valid-token workload with any
    non-2xx, a forged-token one with any 2xx (for an enforcing arm), a mixed one far from its share."""
    problems = []
    expects = {w["name"]: w["expect"] for w in res["workloads"]}
    enforcing = {a["name"] for a in res["arms"] if a["name"] not in ("none", "wasm_floor")}
    for wname, row in res["summary"].items():
        for arm, s in row.items():
            share = s["non2xx"] / max(1, s["requests"])
            expect = expects.get(wname, "ok") if arm in enforcing else "ok"
            if expect == "ok" and s["non2xx"]:
                problems.append(f"{wname}/{arm}: {s['non2xx']} non-2xx responses to valid tokens")
            elif expect == "denied" and share < 0.999:
                problems.append(f"{wname}/{arm}: only {share:.1%} of forged tokens denied")
            elif expect == "mixed" and not 0.5 * ZIPF_FORGED <= share <= 2 * ZIPF_FORGED:
                problems.append(f"{wname}/{arm}: {share:.2%} denied, expected about {ZIPF_FORGED:.0%}")
    return problems


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"FAILED: {exc}")
        sys.exit(2)
