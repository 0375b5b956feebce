-- wrk script: POST /v1/features:batchGet with KEYS (100) random user keys per request.
-- env: VIEW, USERS, WINDOWS, AT (as get.lua), KEYS (100).
local view = os.getenv("VIEW") or "user_listening"
local users = tonumber(os.getenv("USERS") or "200000")
local windows = os.getenv("WINDOWS") or "5m,1h,6h,1d"
local nkeys = tonumber(os.getenv("KEYS") or "100")
local at = os.getenv("AT")  -- optional: RFC 3339 or epoch ms; default: the server's now
local counter = 0
local bodies = {}
local next_body = 1

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919 + os.time())
end

function init(args)
  math.randomseed(seed or os.time())
  local w = {}
  for part in string.gmatch(windows, "[^,]+") do w[#w + 1] = '"' .. part .. '"' end
  for b = 1, 64 do
    local keys = {}
    for i = 1, nkeys do keys[i] = string.format('"user%07d"', math.random(0, users - 1)) end
    bodies[b] = string.format('{"view":"%s","keys":[%s],"windows":[%s]%s}', view,
                              table.concat(keys, ","), table.concat(w, ","),
                              at and string.format(',"at":"%s"', at) or "")
  end
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/features:batchGet", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"rps":%.0f,"keys_per_s":%.0f,"errors":%d,"non2xx":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, s, summary.requests / s, summary.requests * nkeys / s,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
