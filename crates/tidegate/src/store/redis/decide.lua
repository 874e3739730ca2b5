-- tidegate: rate-limit decisions, each atomic, for a batch of R requests (R >= 1);
-- each request is one key guarded by N policies.
--
-- This script mirrors crates/tidegate/src/algorithm/*.rs line for line; a differential
-- test proves both give identical decisions. Every number stays an integer below 2^53,
-- where Lua's doubles are exact; divisions go through idiv/cdiv, which correct the
-- rounding of the floating-point quotient.
--
-- ARGV[1]  R, the number of requests; then for each request:
--            now in µs (or -1 to read the server's TIME), cost, "1" to consume when
--            every policy admits ("0" to only look), extra TTL milliseconds (for
--            explicit, virtual clocks), N, then per policy: algorithm, limit, window µs, burst
-- KEYS     for each request, the state key of each of its N policies (all keys of a
--          batch in one hash slot: "<ns>:{<key>}:<i>:<algorithm>")
--
-- Reply: for each request { all_allowed, now, then per policy: allowed, limit,
--        remaining, retry_after, reset_after, delay } with -1 for "none".

local server_now = nil
local now, cost, commit, grace_ms

local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function cdiv(a, b)
  local q = idiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end

local function num(x) return string.format('%.0f', x) end

local function split(v)
  local out = {}
  for part in string.gmatch(v, '[^:]+') do out[#out + 1] = tonumber(part) end
  return out
end

-- Each algorithm: (key, L, W, B) -> decision {allowed, limit, remaining, retry, reset, delay},
-- and a writer to call on commit, which stores the new state and its expiry.

local function store_string(key, value, expires_at)
  local ttl = expires_at - now
  if ttl <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', cdiv(ttl, 1000) + grace_ms)
  end
end

local function fixed_window(key, L, W)
  local v = redis.call('GET', key)
  local s = v and split(v) or {0, 0}
  local start, count = s[1], s[2]
  if count > 0 and now >= start + W then count = 0 end
  if count + cost <= L then
    if count == 0 then start = now end
    count = count + cost
    return {1, L, L - count, -1, start + W - now, -1}, function()
      store_string(key, num(start) .. ':' .. num(count), start + W)
    end
  end
  local wait = start + W - now
  return {0, L, L - count, wait, wait, -1}
end

local function sliding_window(key, L, W)
  local v = redis.call('GET', key)
  local s = v and split(v) or {0, 0, 0}
  local start, prev, cur = s[1], s[2], s[3]
  if now >= start + W then
    local passed = idiv(now - start, W)
    if passed == 1 then prev = cur else prev = 0 end
    cur = 0
    start = start + passed * W
  end
  if prev == 0 and cur == 0 then start = now end
  local elapsed = math.max(now - start, 0)
  local function carried(p, e) return idiv(p * (W - e), W) end
  local function first_fitting(p, room) return math.max(W - idiv((room + 1) * W - 1, p), 0) end
  local function wait(c, need)
    local estimate = c + carried(prev, elapsed)
    if estimate + need <= L then return 0 end
    if c + need <= L then
      local e = first_fitting(prev, L - c - need)
      if e < W then return e - elapsed end
    end
    local to_next = W - elapsed
    if c == 0 then return to_next end
    return to_next + first_fitting(c, L - need)
  end
  local estimate = cur + carried(prev, elapsed)
  if estimate + cost <= L then
    cur = cur + cost
    local expires_at = start + 2 * W
    return {1, L, L - estimate - cost, -1, wait(cur, L), -1}, function()
      store_string(key, num(start) .. ':' .. num(prev) .. ':' .. num(cur), expires_at)
    end
  end
  return {0, L, math.max(L - estimate, 0), wait(cur, cost), wait(cur, L), -1}
end

-- The log: a sorted set scored by time, members "time:cumulative:cost" (one per instant).
local function sliding_log(key, L, W)
  local live = redis.call('ZRANGEBYSCORE', key, '(' .. num(now - W), '+inf')
  local entries = {}
  for i, m in ipairs(live) do entries[i] = split(m) end
  local first, last = entries[1], entries[#entries]
  local dropped = first and (first[2] - first[3]) or 0
  local total = last and (last[2] - dropped) or 0
  if total + cost <= L then
    local reset = W
    return {1, L, math.max(L - total - cost, 0), -1, reset, -1}, function()
      redis.call('ZREMRANGEBYSCORE', key, '-inf', num(now - W))
      local cum, own = (last and last[2] or 0) + cost, cost
      if last and last[1] == now then
        redis.call('ZREM', key, live[#live])
        own = last[3] + cost
      end
      redis.call('ZADD', key, num(now), num(now) .. ':' .. num(cum) .. ':' .. num(own))
      redis.call('PEXPIRE', key, cdiv(W, 1000) + grace_ms)
    end
  end
  local must_leave = dropped + (total + cost - L)
  local retry = 0
  for _, e in ipairs(entries) do
    if e[2] >= must_leave then
      retry = math.max(e[1] + W - now, 0)
      break
    end
  end
  local reset = last and math.max(last[1] + W - now, 0) or 0
  return {0, L, math.max(L - total, 0), retry, reset, -1}
end

local function token_bucket(key, L, W, B)
  local full = B * W
  local v = redis.call('GET', key)
  local s = v and split(v) or {full, 0}
  local level, last = s[1], s[2]
  if now > last then
    level = math.min(full, level + (now - last) * L)
    last = now
  end
  local needed = cost * W
  if level >= needed then
    level = level - needed
    local reset = cdiv(full - level, L)
    return {1, L, idiv(level, W), -1, reset, -1}, function()
      store_string(key, num(level) .. ':' .. num(last), last + reset)
    end
  end
  return {0, L, idiv(level, W), cdiv(needed - level, L), cdiv(full - level, L), -1}
end

local function gcra(key, L, W, B, leaky)
  local tolerance = B * W
  local v = redis.call('GET', key)
  local s = v and split(v) or {0, 0}
  local tat, rem = s[1], s[2]
  local excess = 0
  if tat >= now then excess = (tat - now) * L + rem end
  local needed = excess + cost * W
  if needed <= tolerance then
    local q = idiv(needed, L)
    local new_tat, new_rem = now + q, needed - q * L
    local delay = -1
    if leaky then delay = cdiv(excess, L) end
    local expires_at = new_tat
    if new_rem > 0 then expires_at = new_tat + 1 end
    return {1, L, idiv(tolerance - needed, W), -1, cdiv(needed, L), delay}, function()
      store_string(key, num(new_tat) .. ':' .. num(new_rem), expires_at)
    end
  end
  return {0, L, idiv(math.max(tolerance - excess, 0), W), cdiv(needed - tolerance, L), cdiv(excess, L), -1}
end

local function throttle(key, W)
  local v = redis.call('GET', key)
  local last = v and tonumber(v) or nil
  if last and now < last + W then
    local wait = last + W - now
    return {0, 1, 0, wait, wait, -1}
  end
  return {1, 1, 0, -1, W, -1}, function()
    store_string(key, num(now), now + W)
  end
end

local function decide(k, a)
  now = tonumber(ARGV[a])
  if now < 0 then
    if not server_now then
      local t = redis.call('TIME')
      server_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = server_now
  end
  cost = tonumber(ARGV[a + 1])
  commit = ARGV[a + 2] == '1'
  grace_ms = tonumber(ARGV[a + 3])
  local n = tonumber(ARGV[a + 4])
  local decisions, writers, all = {}, {}, 1
  for i = 1, n do
    local base = a + 5 + (i - 1) * 4
    local alg = ARGV[base]
    local L, W, B = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
    local key = KEYS[k + i - 1]
    local d, w
    if alg == 'fixed_window' then
      d, w = fixed_window(key, L, W)
    elseif alg == 'sliding_window' then
      d, w = sliding_window(key, L, W)
    elseif alg == 'sliding_log' then
      d, w = sliding_log(key, L, W)
    elseif alg == 'token_bucket' then
      d, w = token_bucket(key, L, W, B)
    elseif alg == 'leaky_bucket' then
      d, w = gcra(key, L, W, B, true)
    elseif alg == 'gcra' then
      d, w = gcra(key, L, W, B, false)
    elseif alg == 'throttle' then
      d, w = throttle(key, W)
    else
      return nil, 'tidegate: unknown algorithm ' .. tostring(alg)
    end
    if d[1] == 0 then all = 0 end
    decisions[i], writers[i] = d, w
  end
  if commit and all == 1 then
    for i = 1, n do writers[i]() end
  end
  local reply = {all, now}
  for i = 1, n do
    for j = 1, 6 do reply[#reply + 1] = decisions[i][j] end
  end
  return reply, n
end

local reply = {}
local k, a = 1, 2
for _ = 1, tonumber(ARGV[1]) do
  local r, n = decide(k, a)
  if not r then return redis.error_reply(n) end
  for _, v in ipairs(r) do reply[#reply + 1] = v end
  k = k + n
  a = a + 5 + 4 * n
end
return reply
