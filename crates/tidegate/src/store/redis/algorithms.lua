-- tidegate: the rate-limit algorithms in Lua, shared by every script that decides
-- (decide.lua for the limiter, the tracker's and the queue's scripts). A script is this
-- file followed by its own body, joined at compile time.
--
-- This file mirrors crates/tidegate-core/src/algorithm/*.rs line for line; a differential
-- test proves both give identical decisions. Every number stays an integer below 2^53,
-- where Lua's doubles are exact; divisions go through idiv/cdiv, which correct the
-- rounding of the floating-point quotient, and a product that may reach 2^53 goes
-- through muldiv (algorithm/wide.rs in Rust), exact however large.
--
-- Each algorithm takes the state key, `now` (µs), the cost and its parameters, and
-- returns the decision `d`, one table reused by every call (no allocation per
-- decision: read it before the next call): d.allowed (1 or 0), d.limit, d.remaining,
-- d.retry_after, d.reset_after, d.delay (-1 for "none"), and when admitted d.value, the
-- new state (a string, or for the sliding log a function of `grace_ms` that writes it),
-- and d.expires_at (µs); both nil when denied. `store_string` writes a state.
-- Globals are looked up through Redis's protected environment: bind them once.
local tonumber, tostring, type = tonumber, tostring, type
local floor, max, min, fmod = math.floor, math.max, math.min, math.fmod
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

local TWO53 = 9007199254740992

-- (a * b + c) // m and (a * b + c) % m, exact for integers 0 <= a, b, c < 2^53 and
-- 0 < m < 2^53 whose quotient is below 2^53 (mirrors mul_add_div in wide.rs). When
-- a * b + c < 2^53 doubles compute it exactly (rounding is monotone, so a true value of
-- 2^53 or more never computes below 2^53). Otherwise shift and add over the bits of the
-- smaller factor, keeping x = a * 2^i and the sum as quotient and remainder modulo m:
-- every remainder stays below m and every quotient below the final one.
local function muldiv(a, b, c, m)
  local n = a * b + c
  if n < TWO53 then
    -- idiv(n, m), written out: this path runs on nearly every call.
    local q = floor(n / m)
    if q * m > n then q = q - 1 elseif (q + 1) * m <= n then q = q + 1 end
    return q, n - q * m
  end
  if a < b then a, b = b, a end
  local qx = idiv(a, m)
  local rx = a - qx * m
  local q = idiv(c, m)
  local r = c - q * m
  while b > 0 do
    local bit = b % 2
    if bit == 1 then
      q = q + qx
      if r >= m - rx then r, q = r - (m - rx), q + 1 else r = r + rx end
    end
    b = (b - bit) / 2
    if b > 0 then
      qx = qx + qx
      if rx >= m - rx then rx, qx = rx - (m - rx), qx + 1 else rx = rx + rx end
    end
  end
  return q, r
end

local function gcd(a, b)
  while b > 0 do a, b = b, fmod(a, b) end
  return a
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

-- Built with every field present, so filling it never grows the table (the script, and
-- with it this table, is created anew on every call).
local d = {allowed = 0, limit = 0, remaining = 0, retry_after = 0, reset_after = 0,
  delay = 0, value = false, expires_at = false}

local function decided(allowed, limit, remaining, retry_after, reset_after, delay, value,
                       expires_at)
  d.allowed, d.limit, d.remaining, d.retry_after, d.reset_after, d.delay =
    allowed, limit, remaining, retry_after, reset_after, delay
  d.value, d.expires_at = value, expires_at
  return d
end

-- The string state last read or written, when the script turns this on (decide.lua
-- does, with `cache_states`): requests of one call that follow each other on one key
-- read it from Redis once and write it once, when the next key comes or the script
-- ends (`flush_states`). Within one script nothing else runs, so every read sees what
-- Redis would answer, and what Redis holds at the end is the same. Off for every other
-- script. `last_px`: nil when nothing is to be written, false for a delete, else the
-- TTL in ms to write `last_value` with.
local caching, last_key, last_value, last_px = false, nil, nil, nil

local function cache_states()
  caching = true
end

-- Writes the state waiting to be written, and forgets it.
local function flush_states()
  if last_px then
    call('SET', last_key, last_value, 'PX', last_px)
  elseif last_px == false then
    call('DEL', last_key)
  end
  last_key, last_value, last_px = nil, nil, nil
end

-- The state string of `key` (false when it has none).
local function read_state(key)
  if not caching then return call('GET', key) end
  if key == last_key then return last_value end
  flush_states()
  local v = call('GET', key)
  last_key, last_value = key, v
  return v
end

-- Writes a state string at `now` with a TTL until `expires_at`, plus `grace_ms`.
local function store_string(key, value, expires_at, now, grace_ms)
  local ttl = expires_at - now
  local px = false
  if ttl > 0 then px = cdiv(ttl, 1000) + grace_ms end
  if caching then
    if key ~= last_key then
      flush_states()
      last_key = key
    end
    last_value, last_px = px and value, px
    return
  end
  if px then
    call('SET', key, value, 'PX', px)
  else
    call('DEL', key)
  end
end

-- `epoch`: windows start at multiples of W since the Unix epoch (align=epoch) instead of
-- at the key's first admitted hit.
local function fixed_window(key, now, cost, L, W, epoch)
  local v = read_state(key)
  local start, count = 0, 0
  if v then start, count = unpack('<dd', v) end
  if count > 0 and now >= start + W then count = 0 end
  if count + cost <= L then
    if count == 0 then
      if epoch then start = idiv(now, W) * W else start = now end
    end
    count = count + cost
    return decided(1, L, L - count, -1, start + W - now, -1, pack('<dd', start, count),
      start + W)
  end
  local wait = start + W - now
  return decided(0, L, L - count, wait, wait, -1)
end

local function sliding_window(key, now, cost, L, W)
  local v = read_state(key)
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
  local function carried(p, e) return (muldiv(p, W - e, 0, W)) end
  local function first_fitting(p, room)
    if room >= p then return 0 end
    local q, rest = muldiv(room + 1, W, 0, p)
    if rest == 0 then q = q - 1 end
    return W - q
  end
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
    return decided(1, L, L - estimate - cost, -1, wait(cur, L), -1,
      pack('<ddd', start, prev, cur), start + 2 * W)
  end
  return decided(0, L, max(L - estimate, 0), wait(cur, cost), wait(cur, L), -1)
end

local REBASE_AT = 4503599627370496 -- 2^52

-- The log: a sorted set scored by time, members "time:cumulative:cost" (one per instant).
local function sliding_log(key, now, cost, L, W)
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
    local function write(grace_ms)
      call('ZREMRANGEBYSCORE', key, '-inf', num(now - W))
      if last_cum + cost >= REBASE_AT then
        -- Only differences of cumulative costs matter: re-base them to 0 for good.
        for i = 1, n do
          local t, cum, own = fields(live[i])
          call('ZREM', key, live[i])
          live[i] = num(t) .. ':' .. num(cum - dropped) .. ':' .. num(own)
          call('ZADD', key, num(t), live[i])
        end
        last_cum = last_cum - dropped
      end
      local cum, own = last_cum + cost, cost
      if last_t == now then
        call('ZREM', key, live[n])
        own = last_cost + cost
      end
      call('ZADD', key, num(now), num(now) .. ':' .. num(cum) .. ':' .. num(own))
      call('PEXPIRE', key, cdiv(W, 1000) + grace_ms)
    end
    return decided(1, L, max(L - total - cost, 0), -1, W, -1, write, 0)
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
  return decided(0, L, max(L - total, 0), retry, reset, -1)
end

-- T = W / L in lowest terms, period / parts µs; spans are whole µs plus a fraction in
-- units of 1 / parts (gcra.rs). Returns us, frac of `a - b` for a >= b.
local function span_sub(a_us, a_frac, b_us, b_frac, parts)
  if a_frac >= b_frac then return a_us - b_us, a_frac - b_frac end
  return a_us - b_us - 1, a_frac + parts - b_frac
end

local function span_le(a_us, a_frac, b_us, b_frac)
  return a_us < b_us or (a_us == b_us and a_frac <= b_frac)
end

local function ceil_span(us, frac)
  if frac > 0 then return us + 1 end
  return us
end

-- The constants of a GCRA policy: T = W / L in lowest terms (period / parts µs) and the
-- tolerance B × T (tol_us + tol_frac / parts). The limiter's calls carry them (Gcra in
-- Rust computes them once per policy); other scripts let gcra derive them here.
local function gcra_params(L, W, B)
  local g = gcd(W, L)
  local period, parts = W / g, L / g
  local tol_us, tol_frac = muldiv(B, period, 0, parts)
  return period, parts, tol_us, tol_frac
end

local function gcra(key, now, cost, L, W, B, leaky, period, parts, tol_us, tol_frac)
  if not period then period, parts, tol_us, tol_frac = gcra_params(L, W, B) end
  local v = read_state(key)
  local tat, rem = 0, 0
  if v then tat, rem = unpack('<dd', v) end
  if parts == 1 then
    -- T is whole microseconds: every fraction is 0 (decide_whole in gcra.rs).
    local tol = tol_us
    local ahead = max(tat + rem - now, 0)
    local needed = ahead + cost * period
    if needed <= tol then
      local delay = -1
      if leaky then delay = ahead end
      return decided(1, L, idiv(tol - needed, period), -1, needed, delay,
        pack('<dd', now + needed, 0), now + needed)
    end
    return decided(0, L, idiv(max(tol - ahead, 0), period), needed - tol, ahead, -1)
  end
  if rem >= parts then
    local carry = idiv(rem, parts)
    tat, rem = tat + carry, rem - carry * parts
  end
  local a_us, a_frac = 0, 0
  if tat >= now then a_us, a_frac = tat - now, rem end
  local c_us, c_frac = muldiv(cost, period, 0, parts)
  local n_us, n_frac = a_us + c_us, a_frac + c_frac
  if n_frac >= parts then n_us, n_frac = n_us + 1, n_frac - parts end
  if span_le(n_us, n_frac, tol_us, tol_frac) then
    local d_us, d_frac = span_sub(tol_us, tol_frac, n_us, n_frac, parts)
    local delay = -1
    if leaky then delay = ceil_span(a_us, a_frac) end
    local new_tat = now + n_us
    return decided(1, L, (muldiv(d_us, parts, d_frac, period)), -1, ceil_span(n_us, n_frac),
      delay, pack('<dd', new_tat, n_frac), ceil_span(new_tat, n_frac))
  end
  local remaining = 0
  if span_le(a_us, a_frac, tol_us, tol_frac) then
    local d_us, d_frac = span_sub(tol_us, tol_frac, a_us, a_frac, parts)
    remaining = muldiv(d_us, parts, d_frac, period)
  end
  local r_us, r_frac = span_sub(n_us, n_frac, tol_us, tol_frac, parts)
  return decided(0, L, remaining, ceil_span(r_us, r_frac), ceil_span(a_us, a_frac), -1)
end

-- The token bucket is the GCRA schedule read as a level (token_bucket.rs).
local function token_bucket(key, now, cost, L, W, B, period, parts, tol_us, tol_frac)
  return gcra(key, now, cost, L, W, B, false, period, parts, tol_us, tol_frac)
end

local function throttle(key, now, W)
  local v = read_state(key)
  local last = v and unpack('<d', v)
  if last and now < last + W then
    local wait = last + W - now
    return decided(0, 1, 0, wait, wait, -1)
  end
  return decided(1, 1, 0, -1, W, -1, pack('<d', now), now + W)
end

