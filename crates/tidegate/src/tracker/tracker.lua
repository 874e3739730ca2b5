-- tidegate: the event tracker's records in Redis. The script is algorithms.lua (the
-- limiter's arithmetic, for the token bucket and sliding window strategies) followed by
-- this file; ARGV[1] names the operation. It mirrors crates/tidegate/src/tracker/memory.rs
-- and a test replays the same input through both and compares every line.
--
-- KEYS[1]  the tracker's prefix key "tidegate:tracker:{<name>}:" (every key below starts
--          with it, so one hash slot holds the whole tracker, also on Redis Cluster)
--
-- Keys, with rec = "<#category>:<category><id>" (unambiguous for any strings):
--   r:<rec>   hash: the record (settings, totals, gate counter, waiting batch, in-flight)
--   g:<rec>   string: the token bucket or sliding window state of the record's gate
--   d:<rec>   list: the details of the waiting batch (JSON strings), up to the cap
--   due       sorted set: waiting batches by due time; member "<16 hex seq><rec>" so ties
--             go in deferral order, like the memory store's (due, seq) index
--   seen      sorted set: idle candidates (nothing waiting or in flight) by last event
--   n         the number of records (for max_keys)
--   seq, cseq sequence numbers of deferrals and of claims
--   leases    sorted set: claimed batches by lease expiry
--   c:<id>    list: a claimed batch, as returned to the claimer (see `claim`)
--   stalled   claims taken over after their lease expired
--
-- Record fields: st strategy name, lim limit, sz bucket size, rr refill rate, ws window µs,
-- k gate kind (c counter, b bucket, w window), L W B the gate's algorithm parameters,
-- def deferral µs, tot total, fs ls first and last event, adm events the counter
-- admitted, sk the kind the gate state belongs to, inf batches in flight, and while a
-- batch waits: pc count, pfs pls its first and last event, pdrop details dropped,
-- pfr failed rounds, pdue due time, pm its member in `due`.

local P = KEYS[1]
local op = ARGV[1]
local hget, hset, hincr = 'HGET', 'HSET', 'HINCRBY'

local function rec_of(category, id) return #category .. ':' .. category .. id end

-- The view of a record: total, deferred, scheduled_at (-1 none), first_seen, last_seen.
local function view(rk)
  local v = call('HMGET', rk, 'tot', 'pc', 'pdue', 'fs', 'ls')
  return {tonumber(v[1]), tonumber(v[2] or 0), tonumber(v[3] or -1), tonumber(v[4]),
    tonumber(v[5])}
end

local function settle_seen(rk, rec)
  local v = call('HMGET', rk, 'pc', 'inf', 'ls')
  if not v[1] and tonumber(v[2] or 0) == 0 then
    call('ZADD', P .. 'seen', v[3], rec)
  else
    call('ZREM', P .. 'seen', rec)
  end
end

local function new_member(rec)
  return format('%016x', call('INCR', P .. 'seq')) .. rec
end

-- Appends `detail` to the waiting batch's list under the cap, else counts it dropped;
-- the empty string is "no details" and is not kept.
local function push_detail(rk, dk, detail, cap)
  if detail == '' then return end
  if call('LLEN', dk) < cap then
    call('RPUSH', dk, detail)
  else
    call(hincr, rk, 'pdrop', 1)
  end
end

-- Whether the record's gate admits an event at `now`; otherwise the strategy's own due
-- wait (µs) or -1 for "after the deferral".
local function admit(rk, gk, deferred)
  local s = call('HMGET', rk, 'k', 'L', 'W', 'B', 'sk', 'adm', 'lim')
  local kind, L, W, B = s[1], tonumber(s[2]), tonumber(s[3]), tonumber(s[4])
  if s[5] ~= kind then
    -- The strategy of the record changed: start its state fresh.
    call('DEL', gk)
    call(hset, rk, 'sk', kind, 'adm', 0)
    s[6] = '0'
  end
  if kind == 'c' then
    if not deferred and tonumber(s[6] or 0) < tonumber(s[7]) then
      call(hincr, rk, 'adm', 1)
      return true
    end
    return false, -1
  end
  cost, grace_ms = 1, 0
  local d1, d4, value, x
  if kind == 'b' then
    d1, x, x, d4, x, x, value = token_bucket(gk, L, W, B)
  else
    d1, x, x, d4, x, x, value = sliding_window(gk, L, W)
    d4 = -1
  end
  if d1 == 1 then
    call('SET', gk, value)
    return true
  end
  return false, d4
end

local SETTINGS = {'st', 'lim', 'sz', 'rr', 'ws', 'k', 'L', 'W', 'B', 'def'}

-- ARGV[a..a+9] in the order of SETTINGS, as HSET arguments.
local function settings_args(a)
  local args = {}
  for i, f in ipairs(SETTINGS) do
    args[2 * i - 1], args[2 * i] = f, ARGV[a + i - 1]
  end
  return args
end

-- Reads a claimed batch list into records: {rec, category, id, count, fs, ls, dropped,
-- failed_rounds, details...}.
local function read_claim(ck)
  local items = call('LRANGE', ck, 0, -1)
  local out, i = {}, 1
  while i <= #items do
    local r = {category = items[i], id = items[i + 1], count = tonumber(items[i + 2]),
      fs = tonumber(items[i + 3]), ls = tonumber(items[i + 4]),
      dropped = tonumber(items[i + 5]), fr = tonumber(items[i + 6]), details = {}}
    local nd = tonumber(items[i + 7])
    for j = 1, nd do r.details[j] = items[i + 7 + j] end
    r.rec = rec_of(r.category, r.id)
    out[#out + 1] = r
    i = i + 8 + nd
  end
  return out
end

local function rpush_all(key, items)
  for i = 1, #items, 1000 do
    call('RPUSH', key, spread(items, i, min(i + 999, #items)))
  end
end

-- track: now, category, id, detail ('' = none), max_keys (0 = unbounded), max_details,
-- then the default settings (SETTINGS order) used if the record is new.
-- Reply: {outcome (0 immediate, 1 deferred, 2 ignored), view...}.
if op == 'track' then
  now = tonumber(ARGV[2])
  local category, id, detail = ARGV[3], ARGV[4], ARGV[5]
  local max_keys, cap = tonumber(ARGV[6]), tonumber(ARGV[7])
  local rec = rec_of(category, id)
  local rk, gk, dk = P .. 'r:' .. rec, P .. 'g:' .. rec, P .. 'd:' .. rec
  if call('EXISTS', rk) == 0 then
    if max_keys > 0 and tonumber(call('GET', P .. 'n') or 0) >= max_keys then
      return {2, 1, 0, -1, now, now}
    end
    call('INCR', P .. 'n')
    local args = settings_args(8)
    call(hset, rk, 'tot', 0, 'fs', ARGV[2], 'ls', ARGV[2], 'inf', 0, 'adm', 0, spread(args))
  end
  call(hincr, rk, 'tot', 1)
  call(hset, rk, 'ls', ARGV[2])
  local waiting = call('HEXISTS', rk, 'pc') == 1
  local ok, wait = admit(rk, gk, waiting)
  if ok then
    settle_seen(rk, rec)
    local v = view(rk)
    return {0, v[1], v[2], v[3], v[4], v[5]}
  end
  if waiting then
    call(hincr, rk, 'pc', 1)
    call(hset, rk, 'pls', ARGV[2])
  else
    if wait < 0 then wait = tonumber(call(hget, rk, 'def')) end
    local due, member = now + wait, new_member(rec)
    call(hset, rk, 'pc', 1, 'pfs', ARGV[2], 'pls', ARGV[2], 'pdrop', 0, 'pfr', 0,
      'pdue', num(due), 'pm', member)
    call('DEL', dk)
    call('ZADD', P .. 'due', num(due), member)
  end
  push_detail(rk, dk, detail, cap)
  call('ZREM', P .. 'seen', rec)
  local v = view(rk)
  return {1, v[1], v[2], v[3], v[4], v[5]}
end

-- claim: now, lease_until, max records. Takes over one claim whose lease expired, or
-- claims up to max due batches (earliest first) as a new claim. Reply: {} when nothing,
-- else {claim id, taken over (0/1), then per record: category, id, count, first_seen,
-- last_seen, details_dropped, failed_rounds, #details, details...}.
if op == 'claim' then
  now = tonumber(ARGV[2])
  local lease_until, max_records = ARGV[3], tonumber(ARGV[4])
  local expired = call('ZRANGEBYSCORE', P .. 'leases', '-inf', ARGV[2], 'LIMIT', 0, 1)
  if #expired > 0 then
    local cid = expired[1]
    call('ZADD', P .. 'leases', lease_until, cid)
    call('INCR', P .. 'stalled')
    local reply = {cid, 1}
    local items = call('LRANGE', P .. 'c:' .. cid, 0, -1)
    for i = 1, #items do reply[i + 2] = items[i] end
    return reply
  end
  local due = call('ZRANGEBYSCORE', P .. 'due', '-inf', ARGV[2], 'LIMIT', 0, max_records)
  if #due == 0 then return {} end
  local cid = tostring(call('INCR', P .. 'cseq'))
  local items = {}
  for _, member in ipairs(due) do
    local rec = sub(member, 17)
    local rk, dk = P .. 'r:' .. rec, P .. 'd:' .. rec
    local colon = find(rec, ':', 1, true)
    local clen = tonumber(sub(rec, 1, colon - 1))
    local category = sub(rec, colon + 1, colon + clen)
    local id = sub(rec, colon + clen + 1)
    local v = call('HMGET', rk, 'pc', 'pfs', 'pls', 'pdrop', 'pfr')
    local details = call('LRANGE', dk, 0, -1)
    local n = #items
    items[n + 1], items[n + 2], items[n + 3], items[n + 4] = category, id, v[1], v[2]
    items[n + 5], items[n + 6], items[n + 7], items[n + 8] = v[3], v[4], v[5], #details
    for j = 1, #details do items[n + 8 + j] = details[j] end
    call('HDEL', rk, 'pc', 'pfs', 'pls', 'pdrop', 'pfr', 'pdue', 'pm')
    call('DEL', dk)
    call(hincr, rk, 'inf', 1)
  end
  call('ZREM', P .. 'due', spread(due))
  rpush_all(P .. 'c:' .. cid, items)
  call('ZADD', P .. 'leases', lease_until, cid)
  local reply = {cid, 0}
  for i = 1, #items do reply[i + 2] = items[i] end
  return reply
end

-- renew: lease_until, claim ids... Extends the leases this instance still holds.
if op == 'renew' then
  for i = 3, #ARGV do
    call('ZADD', P .. 'leases', 'XX', ARGV[2], ARGV[i])
  end
  return 0
end

-- processed | dead: claim id. Settles a claimed batch: the processor (or the dead-letter
-- sink) took it; `processed` also restarts the simple counter. 0 when the claim is gone.
if op == 'processed' or op == 'dead' then
  local ck = P .. 'c:' .. ARGV[2]
  if call('EXISTS', ck) == 0 then return 0 end
  for _, r in ipairs(read_claim(ck)) do
    local rk = P .. 'r:' .. r.rec
    if call('EXISTS', rk) == 1 then
      call(hincr, rk, 'inf', -1)
      if op == 'processed' then call(hset, rk, 'adm', 0) end
      settle_seen(rk, r.rec)
    end
  end
  call('DEL', ck)
  call('ZREM', P .. 'leases', ARGV[2])
  return 1
end

-- defer: now, claim id, max_details. A round failed: each record of the batch waits
-- again, due after its deferral, merged before any batch that started meanwhile.
if op == 'defer' then
  now = tonumber(ARGV[2])
  local ck, cap = P .. 'c:' .. ARGV[3], tonumber(ARGV[4])
  if call('EXISTS', ck) == 0 then return 0 end
  for _, r in ipairs(read_claim(ck)) do
    local rec = r.rec
    local rk, dk = P .. 'r:' .. rec, P .. 'd:' .. rec
    if call('EXISTS', rk) == 1 then
      call(hincr, rk, 'inf', -1)
      local due, member = now + tonumber(call(hget, rk, 'def')), new_member(rec)
      local count, ls, dropped = r.count, r.ls, r.dropped
      local newer = {}
      local p = call('HMGET', rk, 'pc', 'pls', 'pdrop', 'pdue', 'pm')
      if p[1] then
        count = count + tonumber(p[1])
        ls = tonumber(p[2])
        dropped = dropped + tonumber(p[3])
        newer = call('LRANGE', dk, 0, -1)
        call('ZREM', P .. 'due', p[5])
        if tonumber(p[4]) <= due then due, member = tonumber(p[4]), p[5] end
      end
      local details = {}
      for _, d in ipairs(r.details) do details[#details + 1] = d end
      for _, d in ipairs(newer) do
        if #details < cap then details[#details + 1] = d else dropped = dropped + 1 end
      end
      call('DEL', dk)
      if #details > 0 then rpush_all(dk, details) end
      call(hset, rk, 'pc', count, 'pfs', num(r.fs), 'pls', num(ls), 'pdrop', dropped,
        'pfr', r.fr + 1, 'pdue', num(due), 'pm', member)
      call('ZADD', P .. 'due', num(due), member)
      call('ZREM', P .. 'seen', rec)
    end
  end
  call('DEL', ck)
  call('ZREM', P .. 'leases', ARGV[3])
  return 1
end

-- settings: category, id. The record's settings (SETTINGS order), or {} when missing.
if op == 'settings' then
  local rk = P .. 'r:' .. rec_of(ARGV[2], ARGV[3])
  if call('EXISTS', rk) == 0 then return {} end
  return call('HMGET', rk, spread(SETTINGS))
end

-- configure: category, id, settings (SETTINGS order). Reply: the view, or {} when missing.
if op == 'configure' then
  local rk = P .. 'r:' .. rec_of(ARGV[2], ARGV[3])
  if call('EXISTS', rk) == 0 then return {} end
  call(hset, rk, spread(settings_args(4)))
  return view(rk)
end

-- purge: cutoff µs, budget. Removes up to budget idle records last seen at or before the
-- cutoff (never one with a waiting or in-flight batch). Reply: how many.
if op == 'purge' then
  local idle = call('ZRANGEBYSCORE', P .. 'seen', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
  local removed = 0
  for _, rec in ipairs(idle) do
    local rk = P .. 'r:' .. rec
    local v = call('HMGET', rk, 'pc', 'inf')
    if not v[1] and tonumber(v[2] or 0) == 0 then
      if call('DEL', rk) == 1 then removed = removed + 1 end
      call('DEL', P .. 'g:' .. rec, P .. 'd:' .. rec)
    end
    call('ZREM', P .. 'seen', rec)
  end
  if removed > 0 then call('DECRBY', P .. 'n', removed) end
  return removed
end

-- gauges: {records, waiting batches, claims held, earliest due (-1), earliest lease
-- expiry (-1), claims taken over after their lease expired}.
if op == 'gauges' then
  local first = call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')
  local lease = call('ZRANGE', P .. 'leases', 0, 0, 'WITHSCORES')
  return {tonumber(call('GET', P .. 'n') or 0), call('ZCARD', P .. 'due'),
    call('ZCARD', P .. 'leases'), tonumber(first[2] or -1), tonumber(lease[2] or -1),
    tonumber(call('GET', P .. 'stalled') or 0)}
end

return redis.error_reply('tidegate: unknown tracker operation ' .. tostring(op))
