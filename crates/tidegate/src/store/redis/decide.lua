-- tidegate: rate-limit decisions, each atomic, for a batch of R requests (R >= 1);
-- each request is one key guarded by N policies.
--
-- The script is algorithms.lua (the arithmetic, mirroring crates/tidegate-core/src/algorithm)
-- followed by this file.
--
-- ARGV[1]  the requests, packed: for each, 6 little-endian doubles (every value an
--          integer below 2^53, or -1): its policy set (1..P), now in µs (or -1 to read
--          the server's TIME), cost, its mode, extra TTL milliseconds (for explicit,
--          virtual clocks), and the mode's argument:
--            0 only look; 1 consume the cost when every policy admits;
--            2 take a lease slice (one policy: fixed_window or the GCRA family): the
--              argument units if they fit now, else as many as fit but at least the
--              cost; the reply's delay field is the number of units granted;
--            3 return the cost's unspent units of a slice taken at the argument (the
--              server's µs time of the take); the reply's remaining field is the
--              number of units given back.
-- ARGV[2]  P, the number of policy sets; then each policy set: N, then per policy:
--          algorithm, limit, window µs, burst, and the GCRA constants period, parts,
--          tol_us, tol_frac (for fixed_window "1" then 0s when its windows align to the
--          epoch; 0s for others).
-- KEYS     for each request, the state key of each of its N policies (all keys of a
--          batch in one hash slot: "<ns>:{=<key>}:<i>:<algorithm>")
--
-- Reply: one string of little-endian doubles, for each request { all_allowed, now,
--        then per policy: allowed, limit, remaining, retry_after, reset_after, delay }
--        with -1 for "none".
--
-- Requests of a batch that follow each other on one key read it once and write it once
-- (the state cache of algorithms.lua).

local rep, concat = string.rep, table.concat
cache_states()

-- Tables are built with room for one request of one policy (a request's reply is never
-- shorter than 8 values): the script, and these with it, is created anew on every call,
-- and a table that grows is rebuilt at every power of two. `reply` holds the request
-- being decided; `out` the packed replies of those before.
local reply, r = {false, false, false, false, false, false, false, false}, 0
local out, nout = {false}, 0
local values, expiries = {false}, {false}

-- The policy sets, parsed once per call: sets[p] = {n, then per policy its 8 values:
-- alg, L, W, B and the GCRA constants period, parts, tol_us, tol_frac (read only for
-- the GCRA family; the other algorithms get 0s and never look at them)}.
local sets = {false}
local a = 3
for p = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[a])
  -- Room for one policy from the start (the usual case): filling it never grows it.
  local set = {n, false, false, false, false, false, false, false, false}
  for i = 0, n - 1 do
    local base, s = a + 1 + 8 * i, 2 + 8 * i
    local alg = ARGV[base]
    set[s], set[s + 1], set[s + 2], set[s + 3] =
      alg, tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
    if alg == 'gcra' or alg == 'leaky_bucket' or alg == 'token_bucket' then
      set[s + 4], set[s + 5], set[s + 6], set[s + 7] = tonumber(ARGV[base + 4]),
        tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6]), tonumber(ARGV[base + 7])
    elseif alg == 'fixed_window' then
      set[s + 4] = ARGV[base + 4] == '1'
    end
  end
  sets[p] = set
  a = a + 1 + 8 * n
end

-- The server's time, read once per call and only if a request asks for it.
local server_now = nil

-- Runs policy `b` of `set` on `key` (see algorithms.lua); nil for an unknown algorithm.
local function run(set, b, key, now, cost)
  local alg, L, W, B = set[b], set[b + 1], set[b + 2], set[b + 3]
  if alg == 'gcra' or alg == 'leaky_bucket' or alg == 'token_bucket' then
    return gcra(key, now, cost, L, W, B, alg == 'leaky_bucket', set[b + 4], set[b + 5],
      set[b + 6], set[b + 7])
  elseif alg == 'fixed_window' then
    return fixed_window(key, now, cost, L, W, set[b + 4])
  elseif alg == 'sliding_window' then
    return sliding_window(key, now, cost, L, W)
  elseif alg == 'sliding_log' then
    return sliding_log(key, now, cost, L, W)
  elseif alg == 'throttle' then
    return throttle(key, now, W)
  end
  return nil
end

-- Returns `units` unspent units of a lease slice taken at `taken_at`; answers the units
-- given back. A fixed window takes them back only into the window they were taken
-- from, while it is open: its count is then what it would be had they never been
-- taken. A GCRA schedule moves back by units × T, but never behind now: the taker
-- returns only a slice the schedule still covers (crates/tidegate-core/src/lease.rs).
local function give_back(set, b, key, now, units, taken_at)
  local alg, L, W = set[b], set[b + 1], set[b + 2]
  local v = call('GET', key)
  if not v then return 0 end
  if alg == 'fixed_window' then
    local start, count = unpack('<dd', v)
    if count <= 0 or taken_at < start or taken_at >= start + W or now >= start + W then
      return 0
    end
    local back = min(units, count)
    count = count - back
    if count == 0 then
      call('DEL', key)
    else
      call('SET', key, pack('<dd', start, count), 'KEEPTTL')
    end
    return back
  elseif alg == 'gcra' or alg == 'token_bucket' then
    local period, parts = set[b + 4], set[b + 5]
    local tat, rem = unpack('<dd', v)
    if rem >= parts then
      local carry = idiv(rem, parts)
      tat, rem = tat + carry, rem - carry * parts
    end
    if tat <= now then return 0 end
    local s_us, s_frac = muldiv(units, period, 0, parts)
    local t_us, t_frac = tat - s_us, rem - s_frac
    if t_frac < 0 then t_us, t_frac = t_us - 1, t_frac + parts end
    if t_us < now then t_us, t_frac = now, 0 end
    local m_us, m_frac = span_sub(tat, rem, t_us, t_frac, parts)
    local back = (muldiv(m_us, parts, m_frac, period))
    if t_us == now and t_frac == 0 then
      call('DEL', key)
    else
      local expires_at = t_us
      if t_frac > 0 then expires_at = t_us + 1 end
      store_string(key, pack('<dd', t_us, t_frac), expires_at, now, 0)
    end
    return back
  end
  return 0
end

-- Decides a request (its keys start at KEYS[k]); appends its reply; returns its number
-- of policies.
local function decide(k, set, now, cost, mode, grace_ms, extra)
  if now < 0 then
    if not server_now then
      local t = call('TIME')
      server_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = server_now
  end
  local n = set[1]
  reply[1], reply[2] = 1, now
  r = 2
  if mode == 3 then
    -- Given back in Redis itself, around the cache: what this call wrote is written
    -- before, and what it gives back is written before the next request reads it.
    flush_states()
    local taken_at = extra
    for i = 1, n do
      local b = 8 * i - 6
      local back = give_back(set, b, KEYS[k + i - 1], now, cost, taken_at)
      reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4], reply[r + 5], reply[r + 6] =
        1, set[b + 1], back, -1, 0, -1
      r = r + 6
    end
    flush_states()
    return n
  end
  local want = 0
  if mode == 2 then want = extra end
  for i = 1, n do
    local b = 8 * i - 6
    local key = KEYS[k + i - 1]
    local d, grant = nil, -1
    if want > 0 then
      d = run(set, b, key, now, want)
      grant = want
      if d and d.allowed == 0 then
        -- As many as fit now (then admitted), or the minimum (then denied, with its wait).
        grant = max(d.remaining, cost)
        d = run(set, b, key, now, grant)
      end
    else
      d = run(set, b, key, now, cost)
    end
    if not d then return nil, 'tidegate: unknown algorithm ' .. tostring(set[b]) end
    local delay = d.delay
    if want > 0 then
      delay = -1
      if d.allowed == 1 then delay = grant end
    end
    if d.allowed == 0 then reply[1] = 0 end
    reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4], reply[r + 5], reply[r + 6] =
      d.allowed, d.limit, d.remaining, d.retry_after, d.reset_after, delay
    r = r + 6
    values[i], expiries[i] = d.value, d.expires_at
  end
  if mode ~= 0 and reply[1] == 1 then
    for i = 1, n do
      local value = values[i]
      if type(value) == 'function' then
        value(grace_ms)
      else
        store_string(KEYS[k + i - 1], value, expiries[i], now, grace_ms)
      end
    end
  end
  return n
end

local input, at, k = ARGV[1], 1, 1
for _ = 1, #input / 48 do
  local p, now, cost, mode, grace_ms, extra
  p, now, cost, mode, grace_ms, extra, at = unpack('<dddddd', input, at)
  local n, err = decide(k, sets[p], now, cost, mode, grace_ms, extra)
  if not n then
    flush_states()
    return redis.error_reply(err)
  end
  k = k + n
  nout = nout + 1
  if n == 1 then
    out[nout] = pack('<dddddddd', reply[1], reply[2], reply[3], reply[4], reply[5],
      reply[6], reply[7], reply[8])
  else
    out[nout] = pack('<' .. rep('d', r), spread(reply, 1, r))
  end
end
flush_states()
if nout == 0 then return '' end
if nout == 1 then return out[1] end
return concat(out)
