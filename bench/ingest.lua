-- wrk script: POST /v1/batch with 100 unique track events of about 300 bytes each.
-- Every request gets fresh messageIds (thread id, request counter, item) so nothing is a
-- duplicate. The write key comes from the environment (LODESTAR_KEY).
local key = os.getenv("LODESTAR_KEY")
local batch_size = tonumber(os.getenv("LODESTAR_BATCH") or "100")
local counter = 0
local thread_id = 0
local next_id = 0

setup = function(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end

local function b64(data)
  local chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

init = function(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Basic " .. b64(key .. ":")
end

request = function()
  counter = counter + 1
  local items = {}
  for i = 1, batch_size do
    local user = (counter * 7 + i * 13) % 50000
    items[i] = string.format(
      '{"type":"track","messageId":"w%d-%d-%d","userId":"user-%d","event":"Product Viewed",' ..
      '"timestamp":"2026-11-20T08:%02d:%02d.000Z","properties":{"product_id":"sku-%d","category":"shoes",' ..
      '"price":%d.5,"currency":"CNY"},"context":{"library":{"name":"analytics-python","version":"2.4.0"},' ..
      '"ip":"10.0.0.1"}}',
      thread_id, counter, i, user, counter % 60, i % 60, (counter + i) % 997, i)
  end
  local body = '{"batch":[' .. table.concat(items, ",") .. '],"sentAt":"2026-11-20T08:00:00.000Z"}'
  return wrk.format(nil, "/v1/batch", nil, body)
end

done = function(summary, latency, requests)
  local ok = summary.requests - (summary.errors.status or 0)
  io.write(string.format("RESULT requests=%d non2xx=%d seconds=%.2f events_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.status or 0, summary.duration / 1e6,
    ok * batch_size / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
