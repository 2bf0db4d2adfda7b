-- wrk script for `make bench` (bench/bench.py).
--
-- * BENCH_TOKEN_FILE set: every request carries the next token of that file (one JWT a line) as
--   `<BENCH_TOKEN_HEADER or Authorization>: Bearer <token>`, cycling, so consecutive requests never repeat a token
--   until the file is exhausted.  The requests are formatted once, in init, so the per-request
--   Lua cost is an array lookup.  BENCH_TOKEN_START: where in the file to begin (bench.py passes
--   where the arm's previous run on this file ended, so the cycle goes on across runs and a cache
--   smaller than the file never sees a token again before all the others).
-- * Unset: wrk's static request is used (the token comes from wrk's -H option).
-- * Always: at the end one line `BENCH_JSON {...}` with exact numbers (latencies in microseconds)
--   for bench.py to read; wrk's own human-readable report is printed too.

local token_file = os.getenv("BENCH_TOKEN_FILE")
local token_header = os.getenv("BENCH_TOKEN_HEADER")
if not token_header or token_header == "" then token_header = "Authorization" end

if token_file and token_file ~= "" then
  local requests = {}
  local n = 0
  local i = 0

  init = function(args)
    for line in io.lines(token_file) do
      if line ~= "" then
        n = n + 1
        requests[n] = wrk.format(nil, nil, {[token_header] = "Bearer " .. line})
      end
    end
    if n == 0 then error("no tokens in " .. token_file) end
    i = (tonumber(os.getenv("BENCH_TOKEN_START") or "0") or 0) % n
  end

  request = function()
    i = i % n + 1
    return requests[i]
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
