-- Shared by the wrk scripts of bench/server.mjs: per-thread ids and a JSON summary line.
-- wrk runs one Lua state per thread; setup() runs in the main state once per thread.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Printed once at the end: `WRK {...}` with what bench/server.mjs needs.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"threads":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), #threads))
end
