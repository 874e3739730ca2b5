-- tidegate: the rate-limit algorithms in Lua, shared by every script that decides
-- (decide.lua for the limiter, the tracker's and the queue's scripts). A script is this
-- file followed by its own body, joined at compile time.
--
-- This file mirrors crates/tidegate/src/algorithm/*.rs line for line; a differential
-- test proves both give identical decisions. Every number stays an integer below 2^53,
-- where Lua's doubles are exact; divisions go through idiv/cdiv, which correct the
-- rounding of the floating-point quotient.
--
-- Before calling an algorithm, set `now` (µs), `cost` and `grace_ms` (extra TTL ms).
-- Each algorithm returns its decision as six values (allowed, limit, remaining,
-- retry_after, reset_after, delay; -1 for "none"), then the new state to store if the
-- request is admitted: a string and the time it expires (or, for the sliding log, a
-- function that writes it), or nothing when denied. `store_string` writes a state.

local server_now = nil
local now, cost, grace_ms
-- Globals are looked up through Redis's protected environment: bind them once.
local tonumber, tostring, type = tonumber, tostring, type
local floor, max, min = math.floor, math.max, math.min
local format, find, sub = string.format, string.find, string.sub
local call = redis.call
-- `unpack` is struct.unpack below; Lua's own (table) unpack is `spread`.
local spread = unpack
local pack, unpack = struct.pack, struct.unpack

local function idiv(a, b)
  local q = floor(a / b)
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

local function num(x) return format('%.0f', x) end

-- "a:b[:c]" -> a, b, c as numbers.
local function fields(v)
  local i = find(v, ':', 1, true)
  if not i then return tonumber(v) end
  local j = find(v, ':', i + 1, true)
  if not j then return tonumber(sub(v, 1, i - 1)), tonumber(sub(v, i + 1)) end
  return tonumber(sub(v, 1, i - 1)), tonumber(sub(v, i + 1, j - 1)), tonumber(sub(v, j + 1))
end

local function store_string(key, value, expires_at)
  local ttl = expires_at - now
  if ttl <= 0 then
    call('DEL', key)
  else
    call('SET', key, value, 'PX', cdiv(ttl, 1000) + grace_ms)
  end
end

local function fixed_window(key, L, W)
  local v = call('GET', key)
  local start, count = 0, 0
  if v then start, count = unpack('<dd', v) end
  if count > 0 and now >= start + W then count = 0 end
  if count + cost <= L then
    if count == 0 then start = now end
    count = count + cost
    return 1, L, L - count, -1, start + W - now, -1, pack('<dd', start, count), start + W
  end
  local wait = start + W - now
  return 0, L, L - count, wait, wait, -1
end

local function sliding_window(key, L, W)
  local v = call('GET', key)
  local start, prev, cur = 0, 0, 0
  if v then start, prev, cur = unpack('<ddd', v) end
  if now >= start + W then
    local passed = idiv(now - start, W)
    if passed == 1 then prev = cur else prev = 0 end
    cur = 0
    start = start + passed * W
  end
  if prev == 0 and cur == 0 then start = now end
  local elapsed = max(now - start, 0)
  local function carried(p, e) return idiv(p * (W - e), W) end
  local function first_fitting(p, room) return max(W - idiv((room + 1) * W - 1, p), 0) end
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
    return 1, L, L - estimate - cost, -1, wait(cur, L), -1,
      pack('<ddd', start, prev, cur), start + 2 * W
  end
  return 0, L, max(L - estimate, 0), wait(cur, cost), wait(cur, L), -1
end

-- The log: a sorted set scored by time, members "time:cumulative:cost" (one per instant).
local function sliding_log(key, L, W)
  local live = call('ZRANGEBYSCORE', key, '(' .. num(now - W), '+inf')
  local n = #live
  local dropped, total, last_t, last_cum, last_cost = 0, 0, nil, 0, 0
  if n > 0 then
    local first_t, first_cum, first_cost = fields(live[1])
    last_t, last_cum, last_cost = fields(live[n])
    dropped = first_cum - first_cost
    total = last_cum - dropped
  end
  if total + cost <= L then
    local function write()
      call('ZREMRANGEBYSCORE', key, '-inf', num(now - W))
      local cum, own = last_cum + cost, cost
      if last_t == now then
        call('ZREM', key, live[n])
        own = last_cost + cost
      end
      call('ZADD', key, num(now), num(now) .. ':' .. num(cum) .. ':' .. num(own))
      call('PEXPIRE', key, cdiv(W, 1000) + grace_ms)
    end
    return 1, L, max(L - total - cost, 0), -1, W, -1, write, 0
  end
  local must_leave = dropped + (total + cost - L)
  local retry = 0
  for i = 1, n do
    local t, cum = fields(live[i])
    if cum >= must_leave then
      retry = max(t + W - now, 0)
      break
    end
  end
  local reset = 0
  if last_t then reset = max(last_t + W - now, 0) end
  return 0, L, max(L - total, 0), retry, reset, -1
end

local function token_bucket(key, L, W, B)
  local full = B * W
  local v = call('GET', key)
  local level, last = full, 0
  if v then level, last = unpack('<dd', v) end
  if now > last then
    level = min(full, level + (now - last) * L)
    last = now
  end
  local needed = cost * W
  if level >= needed then
    level = level - needed
    local reset = cdiv(full - level, L)
    return 1, L, idiv(level, W), -1, reset, -1, pack('<dd', level, last), last + reset
  end
  return 0, L, idiv(level, W), cdiv(needed - level, L), cdiv(full - level, L), -1
end

local function gcra(key, L, W, B, leaky)
  local tolerance = B * W
  local v = call('GET', key)
  local tat, rem = 0, 0
  if v then tat, rem = unpack('<dd', v) end
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
    return 1, L, idiv(tolerance - needed, W), -1, cdiv(needed, L), delay,
      pack('<dd', new_tat, new_rem), expires_at
  end
  return 0, L, idiv(max(tolerance - excess, 0), W), cdiv(needed - tolerance, L), cdiv(excess, L), -1
end

local function throttle(key, W)
  local v = call('GET', key)
  local last = v and unpack('<d', v)
  if last and now < last + W then
    local wait = last + W - now
    return 0, 1, 0, wait, wait, -1
  end
  return 1, 1, 0, -1, W, -1, pack('<d', now), now + W
end

