-- wrk script: replays pre-generated signed webhooks, each once per cycle of the file.
-- Usage: wrk -t1 -c64 -d10s -s benchmarks/replay.lua http://127.0.0.1:PORT/webhook -- FILE THREADS
-- FILE: records separated by NUL, each "token\nbody" (benchmarks/traffic.py writes it).
-- Thread k of THREADS sends records k, k+THREADS, ... so no record is sent twice per cycle.
-- done() prints one line "BENCH {json}" with totals and latency percentiles in microseconds.

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local path, threads = args[1], tonumber(args[2] or "1")
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  requests, index = {}, 0
  local pos, n = 1, 0
  while pos <= #data do
    local stop = data:find("\0", pos, true) or (#data + 1)
    if n % threads == tid then
      local record = data:sub(pos, stop - 1)
      local nl = record:find("\n", 1, true)
      local headers = {
        ["Authorization"] = record:sub(1, nl - 1),
        ["Content-Type"] = "application/webhook+json",
      }
      requests[#requests + 1] = wrk.format("POST", nil, headers, record:sub(nl + 1))
    end
    n = n + 1
    pos = stop + 1
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %.0f, "duration_us": %.0f, "p50_us": %.0f, "p99_us": %.0f, ' ..
    '"max_us": %.0f, "connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, ' ..
    '"timeout": %.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
