-- tidegate: rate-limit decisions, each atomic, for a batch of R requests (R >= 1);
-- each request is one key guarded by N policies.
--
-- The script is algorithms.lua (the arithmetic, mirroring crates/tidegate-core/src/algorithm)
-- followed by this file.
--
-- ARGV[1]  R, the number of requests; ARGV[2]  P, the number of policy sets; then
--          each policy set: N, then per policy: algorithm, limit, window µs, burst,
--          and the GCRA constants period, parts, tol_us, tol_frac (for fixed_window
--          "1" then 0s when its windows align to the epoch; 0s for others);
--          then each request: its policy set (1..P), now in µs (or -1 to read the
--          server's TIME), cost, "1" to consume when every policy admits ("0" to only
--          look), extra TTL milliseconds (for explicit, virtual clocks)
-- KEYS     for each request, the state key of each of its N policies (all keys of a
--          batch in one hash slot: "<ns>:{=<key>}:<i>:<algorithm>")
--
-- Reply: for each request { all_allowed, now, then per policy: allowed, limit,
--        remaining, retry_after, reset_after, delay } with -1 for "none".

-- Tables are built with room for one request of one policy (a reply is never shorter
-- than 8 values): the script, and these with it, is created anew on every call, and a
-- table that grows is rebuilt at every power of two.
local reply, r = {false, false, false, false, false, false, false, false}, 0
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

-- The requests' policy set, cost and extra TTL, parsed once per distinct string: a
-- batch repeats the same few, and tonumber (strtod) is the dearest step of a request.
-- Built with the usual ones, so a typical batch never grows it.
local numbers = {['0'] = 0, ['1'] = 1, ['2'] = 2}
local function number(s)
  local x = numbers[s]
  if not x then
    x = tonumber(s)
    numbers[s] = x
  end
  return x
end

-- The server's time, read once per call and only if a request asks for it.
local server_now = nil

-- Decides the request whose keys start at KEYS[k] and arguments at ARGV[a]; appends its
-- reply; returns its number of policies.
local function decide(k, a)
  local set = sets[number(ARGV[a])]
  local now_arg = ARGV[a + 1]
  local now = -1
  if now_arg ~= '-1' then now = tonumber(now_arg) end
  if now < 0 then
    if not server_now then
      local t = call('TIME')
      server_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = server_now
  end
  local cost = number(ARGV[a + 2])
  local commit = ARGV[a + 3] == '1'
  local grace_ms = number(ARGV[a + 4])
  local n = set[1]
  local head = r + 1
  reply[head], reply[head + 1] = 1, now
  r = head + 1
  for i = 1, n do
    local b = 8 * i - 6
    local alg, L, W, B = set[b], set[b + 1], set[b + 2], set[b + 3]
    local key = KEYS[k + i - 1]
    local d
    if alg == 'gcra' or alg == 'leaky_bucket' or alg == 'token_bucket' then
      d = gcra(key, now, cost, L, W, B, alg == 'leaky_bucket', set[b + 4], set[b + 5],
        set[b + 6], set[b + 7])
    elseif alg == 'fixed_window' then
      d = fixed_window(key, now, cost, L, W, set[b + 4])
    elseif alg == 'sliding_window' then
      d = sliding_window(key, now, cost, L, W)
    elseif alg == 'sliding_log' then
      d = sliding_log(key, now, cost, L, W)
    elseif alg == 'throttle' then
      d = throttle(key, now, W)
    else
      return nil, 'tidegate: unknown algorithm ' .. tostring(alg)
    end
    if d.allowed == 0 then reply[head] = 0 end
    reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4], reply[r + 5], reply[r + 6] =
      d.allowed, d.limit, d.remaining, d.retry_after, d.reset_after, d.delay
    r = r + 6
    values[i], expiries[i] = d.value, d.expires_at
  end
  if commit and reply[head] == 1 then
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

local k = 1
for _ = 1, tonumber(ARGV[1]) do
  local n, err = decide(k, a)
  if not n then return redis.error_reply(err) end
  k = k + n
  a = a + 5
end
return reply
