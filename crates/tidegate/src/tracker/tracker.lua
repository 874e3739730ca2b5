-- tidegate: the event tracker's records in Redis. The script is algorithms.lua (the
-- limiter's arithmetic, for the token bucket and sliding window strategies) followed by
-- this file; ARGV[1] names the operation. The record functions below (gate_admit,
-- track_record, add_detail, claim_record, settle_record, defer_record, is_idle,
-- reconfigure_record, reset_record, snapshot) mirror the tracker's pure core, crates/tidegate/src/tracker/core/,
-- one function each: they take the record and their inputs as arguments and return a
-- table with named fields; the operations at the end do the reading and writing of keys.
-- tests/tracker_core_lua.rs drives both with the same random operations and compares
-- the outcome and the state after every step; tests/tracker_redis.rs compares whole
-- trackers on both stores.
--
-- KEYS[1]  the tracker's prefix key "tidegate:tracker:{<name>}:" (every key below starts
--          with it, so one hash slot holds the whole tracker, also on Redis Cluster)
--
-- Keys, with rec = "<#category>:<category><id>" (unambiguous for any strings):
--   r:<rec>   string: the record, 21 packed doubles (see FIELDS)
--   g:<rec>   string: the token bucket or sliding window state of the record's gate
--   d:<rec>   list: the details of the waiting batch (JSON strings), up to the cap
--   due       sorted set: waiting batches by due time; member "<16 hex seq><rec>" so ties
--             go in deferral order, like the memory store's (due, seq) index
--   seen      sorted set: every idle record (nothing waiting or in flight), scored at or
--             before its last event: an event of an idle record leaves the score as it
--             was (one ZADD fewer per event), and `purge` moves a stale one on
--   n         the number of records (for max_keys)
--   seq, cseq sequence numbers of deferrals and of claims
--   leases    sorted set: claimed batches by lease expiry
--   c:<id>    list: a claimed batch, as returned to the claimer (see `claim`)
--   stalled   claims taken over after their lease expired
--
-- A record is one string of packed doubles, read with one GET and written with one SET.
-- Fields: 1 tot total events, 2 fs first event, 3 ls last event, 4 inf batches in flight,
-- 5 adm events the counter admitted, 6 sk the kind the gate state belongs to (0 none),
-- 7 kind of the gate (1 counter, 2 bucket, 3 window), 8 L, 9 W, 10 B its algorithm
-- parameters, 11 lim limit, 12 def deferral µs, 13 rr refill rate (tokens/s), and of the
-- waiting batch: 14 pc count (-1 when none waits), 15 pfs, 16 pls first and last event,
-- 17 pdrop details dropped, 18 pfr failed rounds, 19 pdue due time, 20 pseq its sequence
-- number in `due`, 21 pn details kept.
local RFMT = '<' .. string.rep('d', 21)
local TOT, FS, LS, INF, ADM, SK, KIND, L_, W_, B_, LIM, DEF, RR = 1, 2, 3, 4, 5, 6, 7, 8, 9,
  10, 11, 12, 13
local PC, PFS, PLS, PDROP, PFR, PDUE, PSEQ, PN = 14, 15, 16, 17, 18, 19, 20, 21
local KINDS = {c = 1, b = 2, w = 3}
local KIND_NAMES = {'c', 'b', 'w'}
local STRATEGY_NAMES = {'simple', 'token_bucket', 'sliding_window'}

local P = KEYS[1]
-- A detail over max_detail_bytes, sent as this byte instead (tracker/redis.rs).
local OVERSIZED = '\1'

local op = ARGV[1]
-- The operation's time (µs), set by each operation from its arguments.
local now

local function rec_of(category, id) return #category .. ':' .. category .. id end

-- The category and id of a record key (rec_of's inverse).
local function key_of(rec)
  local colon = find(rec, ':', 1, true)
  local clen = tonumber(sub(rec, 1, colon - 1))
  return sub(rec, colon + 1, colon + clen), sub(rec, colon + clen + 1)
end

local function load(rk)
  local v = call('GET', rk)
  if not v then return nil end
  return {unpack(RFMT, v)}
end

local function save(rk, r)
  call('SET', rk, pack(RFMT, spread(r, 1, 21)))
end

local function clear_pending(r)
  r[PC], r[PFS], r[PLS], r[PDROP], r[PFR], r[PDUE], r[PSEQ], r[PN] = -1, 0, 0, 0, 0, 0, 0, 0
end

local function member_of(seq, rec) return format('%016x', seq) .. rec end

-- The view of a record: total, deferred, scheduled_at (-1 none), first_seen, last_seen.
-- Five values, not a table: `track` returns them for every event.
local function view(r)
  if r[PC] < 0 then return r[TOT], 0, -1, r[FS], r[LS] end
  return r[TOT], r[PC], r[PDUE], r[FS], r[LS]
end

-- Keeps `seen` (the purge's candidates) to records with nothing waiting or in flight.
local function settle_seen(r, rec)
  if r[PC] < 0 and r[INF] == 0 then
    call('ZADD', P .. 'seen', num(r[LS]), rec)
  else
    call('ZREM', P .. 'seen', rec)
  end
end

-- SETTINGS order: strategy name, limit, bucket size, refill rate, window µs, kind, L, W,
-- B, deferral µs. Copies ARGV[a..a+9] into the record's settings fields.
local function apply_settings(r, a)
  r[LIM], r[RR], r[KIND] = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3]), KINDS[ARGV[a + 5]]
  r[L_], r[W_], r[B_], r[DEF] = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]),
    tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9])
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

-- The record functions (core/*.rs). `r` is a record's fields (FIELDS above).

-- The settings at ARGV[a..a+9] as record fields, parsed once per script call.
local parsed_settings = {}
local function settings_at(a)
  local st = parsed_settings[a]
  if not st then
    st = {}
    apply_settings(st, a)
    parsed_settings[a] = st
  end
  return st
end

-- Record::new (core/record.rs): a record created by an event at `now`, with the settings
-- at ARGV[a..a+9]; its gate state is started fresh by its first event. One table
-- constructor (FIELDS order; the waiting batch's fields as clear_pending leaves them).
local function new_record(now, a)
  local st = settings_at(a)
  return {0, now, now, 0, 0, 0, st[KIND], st[L_], st[W_], st[B_], st[LIM], st[DEF], st[RR],
    -1, 0, 0, 0, 0, 0, 0, 0}
end

-- Gate::admit (core/gate.rs): whether the event at `now` is immediate. The gate state is
-- at key gk = ghead .. id (read by the algorithm); a state of another kind (a changed
-- strategy) starts fresh. Returns allowed, wait (µs, -1 for "after the deferral"), state
-- (the gate state to write when allowed, nil for the counter, kept in r[ADM]). Multiple
-- values, not a table: this runs for every event.
local function gate_admit(r, ghead, id, now, waiting)
  local kind = r[KIND]
  if r[SK] ~= kind then
    -- A new record's (0) has no state to drop: a removed record's went with it.
    if r[SK] ~= 0 then call('DEL', ghead .. id) end
    r[SK], r[ADM] = kind, 0
  end
  if kind == 1 then
    if not waiting and r[ADM] < r[LIM] then
      r[ADM] = r[ADM] + 1
      return true, -1
    end
    return false, -1
  end
  local gk, d = ghead .. id, nil
  if kind == 2 then
    d = token_bucket(gk, now, 1, r[L_], r[W_], r[B_])
  else
    d = sliding_window(gk, now, 1, r[L_], r[W_])
  end
  if d.allowed == 1 then return true, -1, d.value end
  -- The bucket's next token; a window defers by the defer interval.
  if kind == 2 then return false, d.retry_after end
  return false, -1
end

-- Record::track (core/track.rs): counts the event at `now`, asks the gate (state key
-- ghead .. id), and when it denies adds the event to the waiting batch, opening one due
-- at the gate's wait or the deferral. Returns deferred, opened, state (gate state to
-- write); the caller writes the keys and offers the detail (add_detail).
local function track_record(r, ghead, id, now)
  r[TOT], r[LS] = r[TOT] + 1, now
  local waiting = r[PC] >= 0
  local allowed, wait, state = gate_admit(r, ghead, id, now, waiting)
  if allowed then return false, false, state end
  if waiting then
    r[PC], r[PLS] = r[PC] + 1, now
    return true, false
  end
  if wait < 0 then wait = r[DEF] end
  r[PC], r[PFS], r[PLS], r[PDROP], r[PFR], r[PDUE], r[PSEQ], r[PN] =
    1, now, now, 0, 0, now + wait, 0, 0
  return true, true
end

-- Batch::add_detail (core/batch.rs): a detail offered to the waiting batch, kept while
-- fewer than `cap` are; '' is no detail, OVERSIZED one over max_detail_bytes (dropped).
-- Returns the fate: 'none', 'kept' or 'dropped'.
local function add_detail(r, detail, cap)
  if detail == '' then return 'none' end
  if detail == OVERSIZED or r[PN] >= cap then
    r[PDROP] = r[PDROP] + 1
    return 'dropped'
  end
  r[PN] = r[PN] + 1
  return 'kept'
end

-- Record::claim (core/claim.rs): takes the waiting batch out (the caller found it due),
-- counting it in flight. Returns the batch {count, fs, ls, dropped, fr}.
local function claim_record(r)
  local b = {count = r[PC], fs = r[PFS], ls = r[PLS], dropped = r[PDROP], fr = r[PFR]}
  clear_pending(r)
  r[INF] = r[INF] + 1
  return b
end

-- Record::processed / Record::dead_lettered (core/settle.rs): a claimed batch settled;
-- `processed` also restarts the simple counter. Returns {in_flight}.
local function settle_record(r, processed)
  r[INF] = r[INF] - 1
  if processed then r[ADM] = 0 end
  return {in_flight = r[INF]}
end

-- Record::defer_again (core/settle.rs): the round of the claimed batch c failed; it
-- waits again with one more failed round, due the deferral after `now`, merged before
-- the newer batch (with details `newer`) if one opened meanwhile, at the earlier due
-- time. Returns {details (kept, oldest first), kept_place (the newer batch's place in
-- `due` stays)}.
local function defer_record(r, c, now, newer, cap)
  r[INF] = r[INF] - 1
  local due, kept_place = now + r[DEF], false
  local count, ls, dropped, seq = c.count, c.ls, c.dropped, 0
  if r[PC] >= 0 then
    count = count + r[PC]
    ls = r[PLS]
    dropped = dropped + r[PDROP]
    if r[PDUE] <= due then due, seq, kept_place = r[PDUE], r[PSEQ], true end
  end
  local details = {}
  for _, d in ipairs(c.details) do details[#details + 1] = d end
  for _, d in ipairs(newer) do
    if #details < cap then details[#details + 1] = d else dropped = dropped + 1 end
  end
  r[PC], r[PFS], r[PLS], r[PDROP], r[PFR], r[PDUE], r[PSEQ], r[PN] =
    count, c.fs, ls, dropped, c.fr + 1, due, seq, #details
  return {details = details, kept_place = kept_place}
end

-- Record::is_idle (core/purge.rs): nothing waiting, nothing in flight, and no event
-- after the cutoff (now - expire, µs).
local function is_idle(r, cutoff)
  return r[PC] < 0 and r[INF] == 0 and r[LS] <= cutoff
end

-- Record::reconfigure (core/reconfigure.rs): sets the settings at ARGV[n..n+9] if the
-- record's are still those at ARGV[e..e+9]. Returns {changed (false: they changed
-- meanwhile, nothing set)}.
local function reconfigure_record(r, e, n)
  local expected = {}
  apply_settings(expected, e)
  for f = KIND, RR do
    if expected[f] ~= r[f] then return {changed = false} end
  end
  apply_settings(r, n)
  return {changed = true}
end

-- Record::reset (core/reset.rs): forgets the record's events at `now`: the gate starts
-- fresh (its state key gk deleted), the counts from zero; the waiting batch, if any, is
-- claimed (counted in flight). Returns {claimed (a batch was waiting), remove (nothing in
-- flight: the caller deletes the record)}; the caller takes the batch out first
-- (take_batch) when one waits.
local function reset_record(r, gk, now)
  local claimed = r[PC] >= 0
  if claimed then
    clear_pending(r)
    r[INF] = r[INF] + 1
  end
  call('DEL', gk)
  r[SK], r[ADM] = r[KIND], 0
  r[TOT], r[FS], r[LS] = 0, now, now
  return {claimed = claimed, remove = r[INF] == 0}
end

-- Record::snapshot (core/record.rs): the view, then in flight, the waiting batch's
-- failed rounds, details kept and details dropped.
local function snapshot(r)
  local v = {view(r)}
  if r[PC] < 0 then
    v[6], v[7], v[8], v[9] = r[INF], 0, 0, 0
  else
    v[6], v[7], v[8], v[9] = r[INF], r[PFR], r[PN], r[PDROP]
  end
  return v
end

-- Appends the waiting batch of record r (key rec) to a claim's items, as `claim` returns
-- them: category, id, count, first_seen, last_seen, dropped, failed_rounds, #details,
-- details...; deletes its details list. The batch fields are read before the record
-- function that takes it out (claim_record, reset_record) clears them.
local function take_batch(items, category, id, rec, r)
  local dk = P .. 'd:' .. rec
  local details = call('LRANGE', dk, 0, -1)
  local n = #items
  items[n + 1], items[n + 2], items[n + 3], items[n + 4] = category, id, num(r[PC]),
    num(r[PFS])
  items[n + 5], items[n + 6], items[n + 7], items[n + 8] = num(r[PLS]), num(r[PDROP]),
    num(r[PFR]), #details
  for j = 1, #details do items[n + 8 + j] = details[j] end
  call('DEL', dk)
end

-- A new claim holding `items`, leased until lease_until. Returns its id.
local function new_claim(items, lease_until)
  local cid = tostring(call('INCR', P .. 'cseq'))
  rpush_all(P .. 'c:' .. cid, items)
  call('ZADD', P .. 'leases', lease_until, cid)
  return cid
end

-- track: max_keys (0 = unbounded), max_details, the default settings (SETTINGS order,
-- used when a record is new), R, then R requests of 4 arguments: now, category, id,
-- detail ('' = none). Each request is decided in turn, atomically with the others.
-- Reply: per request outcome (0 immediate, 1 deferred, 2 ignored), total, deferred,
-- scheduled_at (-1 none), first_seen, last_seen, packed as little-endian doubles into one
-- string (whole numbers below 2^53, exact; tracker/redis.rs reads them with track_reply).
if op == 'track' then
  local max_keys, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
  local reply = {}
  -- Per category: the record name's head "<#category>:<category>" and the heads of its
  -- r:, g: and d: keys, so that a key is one concatenation with the id.
  local heads = {}
  local function track(now_s, category, id, detail)
    now = tonumber(now_s)
    local h = heads[category]
    if not h then
      local head = #category .. ':' .. category
      h = {head, P .. 'r:' .. head, P .. 'g:' .. head, P .. 'd:' .. head}
      heads[category] = h
    end
    local rk = h[2] .. id
    local r = load(rk)
    local new = not r
    if new then
      if max_keys > 0 and tonumber(call('GET', P .. 'n') or 0) >= max_keys then
        return 2, 1, 0, -1, now, now
      end
      call('INCR', P .. 'n')
      r = new_record(now, 4)
    end
    local deferred, opened, state = track_record(r, h[3], id, now)
    if not deferred then
      if state then call('SET', h[3] .. id, state) end
      -- An idle record is in `seen` already, under an earlier time (see `purge`).
      if new then call('ZADD', P .. 'seen', now_s, h[1] .. id) end
      save(rk, r)
      return 0, view(r)
    end
    local dk = h[4] .. id
    if opened then
      local rec = h[1] .. id
      r[PSEQ] = call('INCR', P .. 'seq')
      call('DEL', dk)
      call('ZADD', P .. 'due', num(r[PDUE]), member_of(r[PSEQ], rec))
      call('ZREM', P .. 'seen', rec)
    end
    if add_detail(r, detail, cap) == 'kept' then call('RPUSH', dk, detail) end
    save(rk, r)
    return 1, r[TOT], r[PC], r[PDUE], r[FS], now
  end
  local a = 15
  for i = 1, tonumber(ARGV[14]) do
    local b = 6 * (i - 1)
    reply[b + 1], reply[b + 2], reply[b + 3], reply[b + 4], reply[b + 5], reply[b + 6] =
      track(ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
    a = a + 4
  end
  return pack('<' .. string.rep('d', #reply), spread(reply, 1, #reply))
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
  local items = {}
  for _, member in ipairs(due) do
    local rec = sub(member, 17)
    local rk = P .. 'r:' .. rec
    local category, id = key_of(rec)
    local r = load(rk)
    take_batch(items, category, id, rec, r)
    claim_record(r)
    save(rk, r)
  end
  call('ZREM', P .. 'due', spread(due))
  local cid = new_claim(items, lease_until)
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
  for _, c in ipairs(read_claim(ck)) do
    local rk = P .. 'r:' .. c.rec
    local r = load(rk)
    if r then
      settle_record(r, op == 'processed')
      save(rk, r)
      settle_seen(r, c.rec)
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
  for _, c in ipairs(read_claim(ck)) do
    local rec = c.rec
    local rk, dk = P .. 'r:' .. rec, P .. 'd:' .. rec
    local r = load(rk)
    if r then
      local newer = {}
      if r[PC] >= 0 then
        newer = call('LRANGE', dk, 0, -1)
        call('ZREM', P .. 'due', member_of(r[PSEQ], rec))
      end
      local seq = call('INCR', P .. 'seq')
      local q = defer_record(r, c, now, newer, cap)
      if not q.kept_place then r[PSEQ] = seq end
      call('DEL', dk)
      if #q.details > 0 then rpush_all(dk, q.details) end
      save(rk, r)
      call('ZADD', P .. 'due', num(r[PDUE]), member_of(r[PSEQ], rec))
      call('ZREM', P .. 'seen', rec)
    end
  end
  call('DEL', ck)
  call('ZREM', P .. 'leases', ARGV[3])
  return 1
end

-- settings: category, id. The record's settings (SETTINGS order), or {} when missing.
if op == 'settings' then
  local r = load(P .. 'r:' .. rec_of(ARGV[2], ARGV[3]))
  if not r then return {} end
  local kind = r[KIND]
  local size, window = 0, 0
  if kind == 2 then size = r[B_] elseif kind == 3 then window = r[W_] end
  return {STRATEGY_NAMES[kind], num(r[LIM]), num(size), format('%.17g', r[RR]), num(window),
    KIND_NAMES[kind], num(r[L_]), num(r[W_]), num(r[B_]), num(r[DEF])}
end

-- configure: category, id, the expected settings, the new settings (SETTINGS order
-- each): a compare and set. Reply: the view; {} when missing; {-1} when the settings
-- are not the expected ones any more (a concurrent update: read them again).
if op == 'configure' then
  local rk = P .. 'r:' .. rec_of(ARGV[2], ARGV[3])
  local r = load(rk)
  if not r then return {} end
  if not reconfigure_record(r, 4, 14).changed then return {-1} end
  save(rk, r)
  return {view(r)}
end

-- record: category, id. The record read without changing it (snapshot), or {}.
if op == 'record' then
  local r = load(P .. 'r:' .. rec_of(ARGV[2], ARGV[3]))
  if not r then return {} end
  return snapshot(r)
end

-- waiting: due_by µs, limit. The records whose waiting batch is due at or before due_by,
-- earliest first, at most limit, read without changing them. Reply: per record
-- category, id, then its snapshot (9 values).
if op == 'waiting' then
  local due = call('ZRANGEBYSCORE', P .. 'due', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
  local reply = {}
  for _, member in ipairs(due) do
    local rec = sub(member, 17)
    local r = load(P .. 'r:' .. rec)
    if r then
      local category, id = key_of(rec)
      reply[#reply + 1], reply[#reply + 2] = category, id
      for _, v in ipairs(snapshot(r)) do reply[#reply + 1] = v end
    end
  end
  return reply
end

-- reset: now, lease_until, category, id. Forgets the record's events (reset_record); its
-- waiting batch becomes a claim of the caller, leased until lease_until, for it to
-- deliver; a record with nothing in flight is deleted. Reply: {} when missing, else
-- {removed (0/1)} followed, when a batch was waiting, by the claim as `claim` answers it.
if op == 'reset' then
  now = tonumber(ARGV[2])
  local rec = rec_of(ARGV[4], ARGV[5])
  local rk, gk = P .. 'r:' .. rec, P .. 'g:' .. rec
  local r = load(rk)
  if not r then return {} end
  local items = {}
  if r[PC] >= 0 then
    take_batch(items, ARGV[4], ARGV[5], rec, r)
    call('ZREM', P .. 'due', member_of(r[PSEQ], rec))
  end
  local t = reset_record(r, gk, now)
  local reply = {0}
  if t.remove then
    call('DEL', rk)
    call('ZREM', P .. 'seen', rec)
    call('DECR', P .. 'n')
    reply[1] = 1
  else
    save(rk, r)
    settle_seen(r, rec)
  end
  if t.claimed then
    reply[2], reply[3] = new_claim(items, ARGV[3]), 0
    for i = 1, #items do reply[i + 3] = items[i] end
  end
  return reply
end

-- purge: cutoff µs, budget. Looks at up to budget records of `seen` scored at or before
-- the cutoff: removes those idle since then (never one with a waiting or in-flight
-- batch), scores those with later events at their last event. Reply: how many removed.
if op == 'purge' then
  local cutoff = tonumber(ARGV[2])
  local idle = call('ZRANGEBYSCORE', P .. 'seen', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
  local removed = 0
  for _, rec in ipairs(idle) do
    local rk = P .. 'r:' .. rec
    local r = load(rk)
    if r and is_idle(r, cutoff) then
      if call('DEL', rk) == 1 then removed = removed + 1 end
      call('DEL', P .. 'g:' .. rec, P .. 'd:' .. rec)
      call('ZREM', P .. 'seen', rec)
    elseif r and r[PC] < 0 and r[INF] == 0 then
      -- Idle, with events since its score: it stays, under its last event.
      call('ZADD', P .. 'seen', num(r[LS]), rec)
    else
      call('ZREM', P .. 'seen', rec)
    end
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
