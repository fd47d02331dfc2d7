-- wrk script: POST /webhook with a distinct update_id on every request.
--
-- Usage: wrk ... -s bench/webhook.lua URL -- BODIES_FILE FIRST_ID TRACK
--   BODIES_FILE  Lua file written by bench/wrk_load.py; returns
--                {secret = ..., placeholder = ..., templates = {...}}: the update
--                JSON of one user each, built by botapi_emulator.updates, with
--                `placeholder` where the update_id goes.
--   FIRST_ID     first update_id of this run; thread i uses FIRST_ID + i * STRIDE
--                onwards, so threads (and runs given different FIRST_IDs) never
--                share an id.
--   TRACK        1: expect the full server's reply ("Welcome, Name #<update_id>!")
--                and remember which ids got no 2xx answer, so the benchmark can
--                compare the database with the answers exactly; 0: count only.
--
-- done() prints one line "BENCH_RESULT {json}" that bench/wrk_load.py parses.

local STRIDE = 100000000
-- The reply to a /start greets the sender by first name, "Bench0417 #<update_id>".
local ECHO = "Bench%d+ #(%d+)!"

-- Main state: every thread, to collect their counters in done().
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread runs its own copy of this script).
local templates, placeholder
local track = false
first_id, next_id = 0, 0
ok, other, unmatched = 0, 0, 0
pending = {}  -- update_id -> true until a 2xx answer names it

function init(args)
  local spec = dofile(args[1])
  templates, placeholder = spec.templates, spec.placeholder
  track = args[3] == "1"
  first_id = tonumber(args[2]) + thread_index * STRIDE
  next_id = first_id
  wrk.method = "POST"
  wrk.path = "/webhook"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = spec.secret
end

function request()
  local id = next_id
  next_id = id + 1
  if track then pending[id] = true end
  local template = templates[(id % #templates) + 1]
  local body = string.gsub(template, placeholder, tostring(id))
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    other = other + 1
    return
  end
  ok = ok + 1
  if track then
    local id = tonumber(string.match(body, ECHO))
    if id and pending[id] then pending[id] = nil else unmatched = unmatched + 1 end
  end
end

local function json_list(values)
  return "[" .. table.concat(values, ",") .. "]"
end

function done(summary, latency, requests)
  local ok_total, other_total, unmatched_total, sent_total = 0, 0, 0, 0
  local unanswered = {}
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    other_total = other_total + thread:get("other")
    unmatched_total = unmatched_total + thread:get("unmatched")
    sent_total = sent_total + (thread:get("next_id") - thread:get("first_id"))
    for id in pairs(thread:get("pending")) do
      table.insert(unanswered, string.format("%d", id))
    end
  end
  local percentiles = {}
  for _, p in ipairs({50, 90, 99, 99.9}) do
    table.insert(percentiles, string.format('"%s": %d', p, latency:percentile(p)))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "ok": %d, "other": %d, "unmatched": %d, '
      .. '"sent": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {%s}, "latency_max_us": %d, "unanswered_ids": %s}\n',
    summary.duration, summary.requests, ok_total, other_total, unmatched_total, sent_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(percentiles, ", "), latency.max, json_list(unanswered)))
end
