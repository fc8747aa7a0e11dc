-- wrk script: POST MCP tools/call (the `echo` tool) and check every response.
--
--   wrk -t1 -c16 -d6s --latency -s bench/wrk_tools_call.lua http://127.0.0.1:PORT/mcp \
--       -- HOST:PORT NEEDLE [SESSION_IDS_FILE]
--
-- Stateful servers get the session ids opened beforehand by `loadgen.py sessions` (one a line);
-- requests take them in turn, so with as many sessions as connections each session has about one
-- request in flight. Every request has its own JSON-RPC id. A response is good when its status is
-- 200 and its body (JSON or the SSE stream, de-chunked by wrk) carries NEEDLE, the echoed text.
-- `done` prints one line, `WRKJSON {...}`, that run.py parses (latencies in microseconds).

local sessions = {}
local needle = ""
local counter = 0
local turn = 0
bad = 0 -- global: `done` reads it from each thread with thread:get

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Host"] = args[1]
  needle = args[2]
  if args[3] ~= nil and args[3] ~= "" then
    for line in io.lines(args[3]) do
      if #line > 0 then
        table.insert(sessions, line)
      end
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
end

function request()
  counter = counter + 1
  if #sessions > 0 then
    turn = turn % #sessions + 1
    wrk.headers["Mcp-Session-Id"] = sessions[turn]
  end
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}',
    counter, needle)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or body == nil or not string.find(body, needle, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, thread in ipairs(threads) do
    total_bad = total_bad + (thread:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bad":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, total_bad, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
