-- post.lua: the wrk script of the benches. Every request is the same: by
-- default a POST of a small customer (no Idempotency-Key, so each one is a
-- new job); at the end one machine-readable line is printed:
--   BENCH requests=N seconds=S rps=R p50_ms=X p99_ms=Y non2xx=N socket_errors=N
-- Environment: BENCH_KEY (the bearer secret; none: no Authorization header),
-- BENCH_BODY (the JSON body), BENCH_METHOD ("GET": no body).
wrk.method = os.getenv("BENCH_METHOD") or "POST"
if wrk.method ~= "GET" then
  wrk.body = os.getenv("BENCH_BODY") or '{"email":"bench@example.com","name":"Bench"}'
  wrk.headers["Content-Type"] = "application/json"
end
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
