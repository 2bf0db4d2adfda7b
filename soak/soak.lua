-- wrk script of `make soak` (soak/soak.py runs one wrk per token class with -t N -c N).
--
-- Environment:
--   SOAK_CLASS     valid | expired | forged | malformed: the path prefix (/<class>/...) and how
--                  an answer is judged
--   SOAK_TOKENS    the class's token file, one token a line, tab-separated:
--                  start  end  kind  label  h|q  token
--                  (start/end: epoch seconds, inclusive, when the token may be sent;
--                   h: `Authorization: Bearer <token>`, q: `?access_token=<token>`)
--   SOAK_DELAY_MS  optional pause before each request of a connection
--
-- Every thread has exactly one connection (-t N -c N), so its requests and responses strictly
-- alternate and each answer can be matched with the token it was for.  Each second the thread
-- rebuilds the list of tokens whose window holds os.time(), then sends one of them at random.
-- When none is eligible it sends /<class>/idle without a token (tallied as kind "idle").
--
-- Per thread: `tally["kind\tstatus\tbody"] = count`, and failures grouped by
-- "kind\tlabel\tstatus\tbody" with their count and the first and last second (epoch) a request
-- of the group was sent.  A failure is, for valid, any answer but 200; for the others, a 200 or
-- a 5xx; for idle (any class), a 200 or a 5xx.  done() prints SOAK_TALLY / SOAK_FAIL /
-- SOAK_SUMMARY lines for soak.py.

local class = os.getenv("SOAK_CLASS") or error("SOAK_CLASS is not set")
local token_file = os.getenv("SOAK_TOKENS") or error("SOAK_TOKENS is not set")
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0") or 0

-- main state ---------------------------------------------------------------------------------
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

-- thread state -------------------------------------------------------------------------------
tally = {}
fail_count = {}
fail_first = {}
fail_last = {}
failure_count = 0

local tokens = {}       -- { start, stop, kind, label, req }
local eligible = {}
local n_eligible = 0
local last_sec = -1
local current = nil     -- the token of the request in flight (nil: idle)
local sent_at = 0
local idle_req

local function split_tabs(line)
  local out = {}
  for part in string.gmatch(line, "([^\t]*)\t?") do
    out[#out + 1] = part
    if #out == 6 then break end
  end
  return out
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
  for line in io.lines(token_file) do
    if line ~= "" then
      local f = split_tabs(line)
      local path = "/" .. class .. "/" .. f[4]
      local headers = {["x-soak-sub"] = "spoofed"}
      if f[5] == "q" then
        path = path .. "?access_token=" .. f[6]
      else
        headers["Authorization"] = "Bearer " .. f[6]
      end
      tokens[#tokens + 1] = {start = tonumber(f[1]), stop = tonumber(f[2]), kind = f[3], label = f[4],
                             req = wrk.format("GET", path, headers)}
    end
  end
  if #tokens == 0 then error("no tokens in " .. token_file) end
  idle_req = wrk.format("GET", "/" .. class .. "/idle", {["x-soak-sub"] = "spoofed"})
end

local function rebuild(now)
  eligible = {}
  n_eligible = 0
  for i, t in ipairs(tokens) do
    if t.start <= now and now <= t.stop then
      n_eligible = n_eligible + 1
      eligible[n_eligible] = i
    end
  end
  last_sec = now
end

function request()
  local now = os.time()
  if now ~= last_sec then rebuild(now) end
  sent_at = now
  if n_eligible == 0 then
    current = nil
    return idle_req
  end
  current = tokens[eligible[math.random(n_eligible)]]
  return current.req
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

local function short(body)
  if body == nil then return "" end
  local s = string.sub(body, 1, 100)
  s = string.gsub(s, "[%c]", " ")
  return (string.gsub(s, "%s+$", ""))
end

function response(status, headers, body)
  local kind = current and current.kind or "idle"
  local text = short(body)
  local key = kind .. "\t" .. status .. "\t" .. text
  tally[key] = (tally[key] or 0) + 1
  local bad
  if class == "valid" and current ~= nil then
    bad = status ~= 200
  else
    bad = status == 200 or status >= 500
  end
  if bad then
    failure_count = failure_count + 1
    local group = table.concat({kind, current and current.label or "-", status, text}, "\t")
    if fail_count[group] == nil then
      fail_count[group] = 0
      fail_first[group] = sent_at
    end
    fail_count[group] = fail_count[group] + 1
    fail_last[group] = sent_at
  end
  current = nil
end

-- main state, at the end ---------------------------------------------------------------------
function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do
    for key, count in pairs(t:get("tally")) do
      io.write("SOAK_TALLY\t", key, "\t", count, "\n")
    end
    local firsts, lasts = t:get("fail_first"), t:get("fail_last")
    for group, count in pairs(t:get("fail_count")) do
      io.write("SOAK_FAIL\t", group, "\t", count, "\t", firsts[group], "\t", lasts[group], "\n")
    end
    failed = failed + t:get("failure_count")
  end
  local e = summary.errors
  io.write(string.format("SOAK_SUMMARY\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, failed,
    latency:percentile(99), latency.max))
end
