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
-- pfr failed rounds, pdue due time, pm its member in `due`, pn details kept.

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

-- track: max_keys (0 = unbounded), max_details, the default settings (SETTINGS order,
-- used when a record is new), R, then R requests of 4 arguments: now, category, id,
-- detail ('' = none). Each request is decided in turn, atomically with the others.
-- Reply: per request {outcome (0 immediate, 1 deferred, 2 ignored), total, deferred,
-- scheduled_at (-1 none), first_seen, last_seen}.
if op == 'track' then
  local max_keys, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
  local defaults = settings_args(4)
  local d_kind, d_L, d_W, d_B = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
  local d_lim, d_def = ARGV[5], ARGV[13]
  local reply = {}
  local function track(now_s, category, id, detail)
    now = tonumber(now_s)
    local rec = rec_of(category, id)
    local rk = P .. 'r:' .. rec
    local v = call('HMGET', rk, 'tot', 'fs', 'pc', 'pdue', 'k', 'L', 'W', 'B', 'sk', 'adm',
      'lim', 'def', 'inf', 'pn', 'pdrop')
    local tot, fs = tonumber(v[1]), v[2]
    if not tot then
      if max_keys > 0 and tonumber(call('GET', P .. 'n') or 0) >= max_keys then
        return 2, 1, 0, -1, now, now
      end
      call('INCR', P .. 'n')
      call(hset, rk, 'fs', now_s, 'inf', 0, spread(defaults))
      tot, fs = 0, now_s
      v = {nil, nil, nil, nil, d_kind, d_L, d_W, d_B, nil, '0', d_lim, d_def, '0'}
    end
    tot = tot + 1
    local sets = {'tot', tot, 'ls', now_s}
    local pc, kind = tonumber(v[3]), v[5]
    local waiting = pc ~= nil
    local gk = P .. 'g:' .. rec
    local adm = tonumber(v[10] or 0)
    if v[9] ~= kind then
      -- A new record, or its strategy changed: start the gate's state fresh.
      call('DEL', gk)
      sets[#sets + 1], sets[#sets + 2] = 'sk', kind
      adm = 0
    end
    local ok, wait = false, -1
    if kind == 'c' then
      if not waiting and adm < tonumber(v[11]) then
        ok = true
        adm = adm + 1
      end
      sets[#sets + 1], sets[#sets + 2] = 'adm', adm
    else
      cost, grace_ms = 1, 0
      local d1, d4, value, x
      if kind == 'b' then
        d1, x, x, d4, x, x, value = token_bucket(gk, tonumber(v[6]), tonumber(v[7]),
          tonumber(v[8]))
      else
        d1, x, x, d4, x, x, value = sliding_window(gk, tonumber(v[6]), tonumber(v[7]))
        d4 = -1
      end
      if d1 == 1 then
        call('SET', gk, value)
        ok = true
      else
        wait = d4
      end
    end
    if ok then
      -- Idle candidates for the purge: nothing waiting, nothing in flight.
      if not waiting and tonumber(v[13] or 0) == 0 then
        call('ZADD', P .. 'seen', now_s, rec)
      end
      call(hset, rk, spread(sets))
      return 0, tot, pc or 0, tonumber(v[4] or -1), tonumber(fs), now
    end
    local dk = P .. 'd:' .. rec
    local due, pn = tonumber(v[4]), tonumber(v[14] or 0)
    if waiting then
      pc = pc + 1
      sets[#sets + 1], sets[#sets + 2] = 'pc', pc
      sets[#sets + 1], sets[#sets + 2] = 'pls', now_s
    else
      if wait < 0 then wait = tonumber(v[12]) end
      due = now + wait
      local member = new_member(rec)
      pc, pn, v[15] = 1, 0, '0'
      local more = {'pc', 1, 'pfs', now_s, 'pls', now_s, 'pdrop', 0, 'pfr', 0,
        'pdue', num(due), 'pm', member}
      for _, x in ipairs(more) do sets[#sets + 1] = x end
      call('DEL', dk)
      call('ZADD', P .. 'due', num(due), member)
      call('ZREM', P .. 'seen', rec)
    end
    if detail ~= '' then
      if pn < cap then
        call('RPUSH', dk, detail)
        sets[#sets + 1], sets[#sets + 2] = 'pn', pn + 1
      else
        sets[#sets + 1], sets[#sets + 2] = 'pdrop', tonumber(v[15] or 0) + 1
      end
    end
    call(hset, rk, spread(sets))
    return 1, tot, pc, due, tonumber(fs), now
  end
  local a = 15
  for r = 1, tonumber(ARGV[14]) do
    local b = 6 * (r - 1)
    reply[b + 1], reply[b + 2], reply[b + 3], reply[b + 4], reply[b + 5], reply[b + 6] =
      track(ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
    a = a + 4
  end
  return reply
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
    call('HDEL', rk, 'pc', 'pfs', 'pls', 'pdrop', 'pfr', 'pdue', 'pm', 'pn')
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
        'pfr', r.fr + 1, 'pdue', num(due), 'pm', member, 'pn', #details)
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
