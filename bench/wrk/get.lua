-- wrk script: GET /v1/features/{view}/{key}?windows=… for random user keys.
-- env: VIEW (user_listening), USERS (200000), WINDOWS (5m,1h,6h,1d), DIST (uniform | zipf),
-- AT (optional).
local view = os.getenv("VIEW") or "user_listening"
local users = tonumber(os.getenv("USERS") or "200000")
local windows = os.getenv("WINDOWS") or "5m,1h,6h,1d"
local zipf = (os.getenv("DIST") or "uniform") == "zipf"
local at = os.getenv("AT")  -- optional: RFC 3339 or epoch ms; default: the server's now
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919 + os.time())
end

function init(args)
  math.randomseed(seed or os.time())
end

-- Zipf-ish (s = 1) by inverse transform of a continuous approximation: k = n^u - 1.
local function pick()
  if zipf then
    return math.floor(users ^ math.random()) - 1
  end
  return math.random(0, users - 1)
end

function request()
  local target = string.format("/v1/features/%s/user%07d?windows=%s", view, pick(), windows)
  if at then target = target .. "&at=" .. at end
  return wrk.format("GET", target)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"rps":%.0f,"errors":%d,"non2xx":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, s, summary.requests / s,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
