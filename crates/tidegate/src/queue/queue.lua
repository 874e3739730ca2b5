
-- tidegate: the work queue. This file follows algorithms.lua (joined at compile time),
-- whose `gcra` and `store_string` it uses (a start costs 1 of the rate).
--
-- Every state change of a queue is one call of this script, so it is atomic.
-- KEYS[1]  the queue's meta key `tidegate:queue:{NAME}:meta` (routes the call: every key
--          of a queue shares the hash tag `{NAME}`, so one Cluster slot holds it all)
-- ARGV[1]  the operation; ARGV[2] the key prefix `tidegate:queue:{NAME}:`; then the
--          operation's arguments (see each function).
--
-- Keys under the prefix P:
--   meta             hash: created_ms, seq (last job id), pushed, completed, failures,
--                    stalled, retried, started, deadline_ms, deadline_total
--   job:<id>         hash: payload, priority, group, attempts, max_attempts, created_ms,
--                    token, started_ms, error, failed_ms, history (JSON array)
--   wait:<group>     zset of waiting jobs: score -priority, member the id zero-padded
--                    (equal scores sort by member: FIFO within a priority)
--   groups           list of the groups that have waiting jobs, in round-robin order
--   delayed          zset: member id, score the ms it becomes due
--   active           zset: member id, score the ms its lease ends
--   failed           zset: member id, score the ms it failed
--   completed        list of the last N completed jobs (JSON), newest first
--   rate, rate:<g>   GCRA states (algorithms.lua) of the global and per-group rates
--   workers          zset: worker id, score its last heartbeat (ms)
--   worker_info      hash: worker id -> JSON (slots, busy)
-- Times are the server's (TIME): every worker of every host agrees on them.

local P = ARGV[2]
local meta = KEYS[1]
local t = call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = idiv(now, 1000)

local function member(id) return format('%015.0f', id) end
local function job_key(id) return P .. 'job:' .. id end

local function add_waiting(id, group, priority)
  local wait = P .. 'wait:' .. group
  if call('ZCARD', wait) == 0 then call('RPUSH', P .. 'groups', group) end
  call('ZADD', wait, -priority, member(id))
end

local function append_history(id, entry)
  local key = job_key(id)
  local h = call('HGET', key, 'history')
  local e = cjson.encode(entry)
  if not h or h == '' or h == '[]' then
    h = '[' .. e .. ']'
  else
    h = sub(h, 1, -2) .. ',' .. e .. ']'
  end
  call('HSET', key, 'history', h)
end

local function to_failed(id, err)
  call('HSET', job_key(id), 'error', err, 'failed_ms', now_ms, 'token', '')
  call('ZADD', P .. 'failed', now_ms, id)
  call('HINCRBY', meta, 'failures', 1)
end

-- Jobs whose lease ended (their worker died or stopped renewing) go back to waiting,
-- or to failed when they used their last attempt. Returns how many were moved.
local function reclaim(limit)
  local ids = call('ZRANGEBYSCORE', P .. 'active', '-inf', now_ms, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    call('ZREM', P .. 'active', id)
    local key = job_key(id)
    local j = call('HMGET', key, 'attempts', 'max_attempts', 'group', 'priority', 'started_ms', 'token')
    local attempts, max_attempts = tonumber(j[1]) or 0, tonumber(j[2]) or 1
    local err = 'stalled: the lease ended before the job finished (worker died or stopped renewing)'
    append_history(id, {attempt = attempts, started_ms = tonumber(j[5]), ended_ms = now_ms,
      error = err, worker = j[6], stalled = true})
    call('HINCRBY', meta, 'stalled', 1)
    call('HINCRBY', key, 'stalled', 1)
    if attempts >= max_attempts then
      to_failed(id, err)
    else
      call('HSET', key, 'token', '')
      add_waiting(id, j[3], tonumber(j[4]))
    end
  end
  return #ids
end

-- Delayed jobs that are due join their group's waiting set.
local function promote(limit)
  local ids = call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now_ms, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    call('ZREM', P .. 'delayed', id)
    local j = call('HMGET', job_key(id), 'group', 'priority')
    add_waiting(id, j[1], tonumber(j[2]))
  end
  return #ids
end

-- push: ARGV[3] count, then per job: payload, priority, group, delay_ms.
-- Reply: the ids, in order.
local function push()
  local n = tonumber(ARGV[3])
  if call('EXISTS', meta) == 0 then call('HSET', meta, 'created_ms', now_ms) end
  local ids = {}
  for i = 0, n - 1 do
    local a = 4 + 4 * i
    local payload, priority, group, delay = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 3])
    local id = call('HINCRBY', meta, 'seq', 1)
    call('HSET', job_key(id), 'payload', payload, 'priority', priority, 'group', group,
      'attempts', 0, 'created_ms', now_ms, 'history', '[]')
    if delay > 0 then
      call('ZADD', P .. 'delayed', now_ms + delay, id)
    else
      add_waiting(id, group, priority)
    end
    ids[#ids + 1] = id
  end
  call('HINCRBY', meta, 'pushed', n)
  return ids
end

-- claim: (arguments from ARGV[o], o = 3 for `claim`)
--        ARGV[3] worker id, [4] lease ms, [5] max_attempts, [6..8] global rate L, W µs,
-- burst (L = 0: none), [9..11] per-group rate (L = 0: none), [12] reserve µs.
-- Reply: {1, id, token, attempt, payload, group, priority, created_ms, start_in µs}: a
--        job, now active, to start after start_in; {2, wait µs}: the rate says come back
--        after that long; {0, ms until the next delayed job is due, or -1}: nothing to do.
--
-- Reservation: when the global rate's next start slot is at most `reserve` µs away, the
-- job is claimed now and the worker starts it exactly at the slot (start_in). The state
-- then advances by one interval from the slot, not from the (later) moment a sleeping
-- worker would have come back, so starts do not drift below the rate. At most one slot
-- beyond the burst is ever reserved (GCRA with burst + 1).
local function claim(o)
  local worker, lease, max_attempts = ARGV[o], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2])
  local L, W, B = tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5])
  local gL, gW, gB = tonumber(ARGV[o + 6]), tonumber(ARGV[o + 7]), tonumber(ARGV[o + 8])
  local reserve = tonumber(ARGV[o + 9])
  reclaim(100)
  promote(1000)
  local groups = call('LRANGE', P .. 'groups', 0, 63)
  if #groups == 0 then
    local next_due = call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
    if #next_due == 0 then return {0, -1} end
    return {0, max(tonumber(next_due[2]) - now_ms, 0)}
  end
  local global_state, global_expiry, start_in = nil, nil, 0
  if L > 0 then
    local d = gcra(P .. 'rate', now, 1, L, W, B, false)
    if d.allowed == 0 then
      local retry = d.retry_after
      if retry > reserve then return {2, retry - reserve} end
      d = gcra(P .. 'rate', now, 1, L, W, B + 1, false)
      if d.allowed == 0 then return {2, retry} end
      start_in = retry
    end
    global_state, global_expiry = d.value, d.expires_at
  end
  -- Round robin: the first group (in list order) whose own rate admits a start.
  local chosen, group_state, group_expiry, wait = nil, nil, nil, nil
  for _, g in ipairs(groups) do
    if gL > 0 then
      local d = gcra(P .. 'rate:' .. g, now, 1, gL, gW, gB, false)
      if d.allowed == 1 then
        chosen, group_state, group_expiry = g, d.value, d.expires_at
        break
      end
      if not wait or d.retry_after < wait then wait = d.retry_after end
    else
      chosen = g
      break
    end
  end
  if not chosen then return {2, wait} end
  local wait_key = P .. 'wait:' .. chosen
  local popped = call('ZPOPMIN', wait_key)
  call('LREM', P .. 'groups', 1, chosen)
  if call('ZCARD', wait_key) > 0 then call('RPUSH', P .. 'groups', chosen) end
  if #popped == 0 then return {0, 0} end
  local id = tostring(tonumber(popped[1]))
  if global_state then store_string(P .. 'rate', global_state, global_expiry, now, 0) end
  if group_state then
    store_string(P .. 'rate:' .. chosen, group_state, group_expiry, now, 0)
  end
  local key = job_key(id)
  local attempt = call('HINCRBY', key, 'attempts', 1)
  local token = worker .. ':' .. attempt
  call('HSET', key, 'token', token, 'started_ms', now_ms, 'max_attempts', max_attempts)
  call('ZADD', P .. 'active', now_ms + lease, id)
  call('HINCRBY', meta, 'started', 1)
  local j = call('HMGET', key, 'payload', 'group', 'priority', 'created_ms')
  return {1, tonumber(id), token, attempt, j[1], j[2], tonumber(j[3]), tonumber(j[4]), start_in}
end

local function holds(id, token)
  return call('ZSCORE', P .. 'active', id) and call('HGET', job_key(id), 'token') == token
end

-- renew: ARGV[3] id, [4] token, [5] lease ms. Reply 1, or 0 if the lease was lost.
local function renew()
  local id, token, lease = ARGV[3], ARGV[4], tonumber(ARGV[5])
  if not holds(id, token) then return 0 end
  call('ZADD', P .. 'active', now_ms + lease, id)
  return 1
end

-- complete: ARGV[3] id, [4] token, [5] how many completed jobs to keep.
-- Reply 1, or 0 if the lease was lost (another worker may have the job now).
local function complete()
  local id, token, keep = ARGV[3], ARGV[4], tonumber(ARGV[5])
  if not holds(id, token) then return 0 end
  local key = job_key(id)
  call('ZREM', P .. 'active', id)
  local j = call('HMGET', key, 'payload', 'group', 'priority', 'attempts', 'created_ms', 'started_ms')
  call('HINCRBY', meta, 'completed', 1)
  if keep > 0 then
    local summary = '{"id":' .. id .. ',"payload":' .. j[1] .. ',"group":' .. cjson.encode(j[2]) ..
      ',"priority":' .. j[3] .. ',"attempts":' .. j[4] .. ',"created_ms":' .. j[5] ..
      ',"started_ms":' .. j[6] .. ',"finished_ms":' .. num(now_ms) .. '}'
    call('LPUSH', P .. 'completed', summary)
    call('LTRIM', P .. 'completed', 0, keep - 1)
  end
  call('DEL', key)
  return 1
end

-- fail: ARGV[3] id, [4] token, [5] error, [6] "1" if retryable, [7] backoff ms,
-- [8] max_attempts. Reply 1: retry scheduled; 2: failed; 0: the lease was lost.
local function fail()
  local id, token, err = ARGV[3], ARGV[4], ARGV[5]
  local retryable, backoff, max_attempts = ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
  if not holds(id, token) then return 0 end
  local key = job_key(id)
  call('ZREM', P .. 'active', id)
  local j = call('HMGET', key, 'attempts', 'started_ms', 'group', 'priority')
  local attempts = tonumber(j[1])
  local entry = {attempt = attempts, started_ms = tonumber(j[2]), ended_ms = now_ms, error = err,
    worker = token}
  if retryable and attempts < max_attempts then
    entry.retry_in_ms = backoff
    append_history(id, entry)
    call('HSET', key, 'token', '', 'error', err)
    call('HINCRBY', meta, 'retried', 1)
    if backoff > 0 then
      call('ZADD', P .. 'delayed', now_ms + backoff, id)
    else
      add_waiting(id, j[3], tonumber(j[4]))
    end
    return 1
  end
  if not retryable then entry.retryable = false end
  append_history(id, entry)
  to_failed(id, err)
  return 2
end

-- stats: ARGV[3] seconds a worker heartbeat stays live. Reply: nil if the queue does not
-- exist, else {waiting, delayed, active, failed, completed, stalled, pushed, retried,
-- started, created_ms, deadline_ms, deadline_total, live workers, slots, busy, now_ms}.
local function stats()
  if call('EXISTS', meta) == 0 then return {-1} end
  local waiting = 0
  for _, g in ipairs(call('LRANGE', P .. 'groups', 0, -1)) do
    waiting = waiting + call('ZCARD', P .. 'wait:' .. g)
  end
  local m = call('HMGET', meta, 'completed', 'stalled', 'pushed', 'retried', 'started',
    'created_ms', 'deadline_ms', 'deadline_total')
  local live_after = now_ms - tonumber(ARGV[3]) * 1000
  for _, w in ipairs(call('ZRANGEBYSCORE', P .. 'workers', '-inf', '(' .. num(live_after))) do
    call('ZREM', P .. 'workers', w)
    call('HDEL', P .. 'worker_info', w)
  end
  local workers = call('ZRANGE', P .. 'workers', 0, -1)
  local slots, busy = 0, 0
  for _, w in ipairs(workers) do
    local info = call('HGET', P .. 'worker_info', w)
    if info then
      local i = cjson.decode(info)
      slots = slots + (i.slots or 0)
      busy = busy + (i.busy or 0)
    end
  end
  return {waiting, call('ZCARD', P .. 'delayed'), call('ZCARD', P .. 'active'),
    call('ZCARD', P .. 'failed'), tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 0,
    tonumber(m[4]) or 0, tonumber(m[5]) or 0, tonumber(m[6]) or 0, tonumber(m[7]) or -1,
    tonumber(m[8]) or -1, #workers, slots, busy, now_ms}
end

-- heartbeat: ARGV[3] worker id, [4] JSON info, [5] "1" to record a deadline,
-- [6] deadline ms, [7] jobs at the start of the run. Reply: 1.
local function heartbeat()
  if call('EXISTS', meta) == 0 then call('HSET', meta, 'created_ms', now_ms) end
  call('ZADD', P .. 'workers', now_ms, ARGV[3])
  call('HSET', P .. 'worker_info', ARGV[3], ARGV[4])
  if ARGV[5] == '1' then
    call('HSET', meta, 'deadline_ms', ARGV[6], 'deadline_total', ARGV[7])
  end
  return 1
end

-- leave: ARGV[3] worker id: the worker stopped. Reply: 1.
local function leave()
  call('ZREM', P .. 'workers', ARGV[3])
  call('HDEL', P .. 'worker_info', ARGV[3])
  return 1
end

-- retry_failed: ARGV[3] most jobs to move. Failed jobs go back to waiting with their
-- attempts reset (their history is kept). Reply: how many.
local function retry_failed()
  local ids = call('ZRANGE', P .. 'failed', 0, tonumber(ARGV[3]) - 1)
  for _, id in ipairs(ids) do
    call('ZREM', P .. 'failed', id)
    local key = job_key(id)
    call('HSET', key, 'attempts', 0, 'token', '')
    call('HDEL', key, 'error', 'failed_ms')
    local j = call('HMGET', key, 'group', 'priority')
    add_waiting(id, j[1], tonumber(j[2]))
  end
  return #ids
end

-- failed: ARGV[3] offset, [4] count. Reply: per job {id, payload, group, priority,
-- attempts, error, failed_ms, history}, oldest failure first.
local function failed()
  local ids = call('ZRANGE', P .. 'failed', tonumber(ARGV[3]), tonumber(ARGV[3]) + tonumber(ARGV[4]) - 1)
  local out = {}
  for _, id in ipairs(ids) do
    local j = call('HMGET', job_key(id), 'payload', 'group', 'priority', 'attempts', 'error', 'failed_ms', 'history')
    out[#out + 1] = {tonumber(id), j[1], j[2], tonumber(j[3]), tonumber(j[4]), j[5], tonumber(j[6]), j[7]}
  end
  return out
end

-- job: ARGV[3] id. Reply: {state, payload, group, priority, attempts, error, history,
-- stalled} or {} when the job is gone (completed jobs are deleted).
local function job()
  local id = ARGV[3]
  local key = job_key(id)
  if call('EXISTS', key) == 0 then return {} end
  local j = call('HMGET', key, 'payload', 'group', 'priority', 'attempts', 'error', 'history', 'stalled')
  local state = 'waiting'
  if call('ZSCORE', P .. 'active', id) then state = 'active'
  elseif call('ZSCORE', P .. 'delayed', id) then state = 'delayed'
  elseif call('ZSCORE', P .. 'failed', id) then state = 'failed' end
  return {state, j[1], j[2], tonumber(j[3]), tonumber(j[4]), j[5] or '', j[6] or '[]', tonumber(j[7]) or 0}
end

-- clear: ARGV[3] most jobs to remove in this call. Removes up to that many jobs (waiting
-- in every group, delayed, active, failed; each job's hash UNLINKed, so the memory is
-- freed off Redis's main thread) and, once no job is left, the queue's other keys and
-- its counters (the queue stays known). Called repeatedly so that Redis is never blocked
-- for long. Reply: {jobs removed by this call, 1 when the clear is complete else 0}.
local function clear()
  local budget = tonumber(ARGV[3])
  local removed = 0
  local function drop(zset)
    local room = budget - removed
    if room <= 0 then return end
    local ids = call('ZRANGE', zset, 0, room - 1)
    if #ids == 0 then return end
    for _, m in ipairs(ids) do call('UNLINK', job_key(tostring(tonumber(m)))) end
    call('ZREMRANGEBYRANK', zset, 0, #ids - 1)
    removed = removed + #ids
  end
  local groups = call('LRANGE', P .. 'groups', 0, -1)
  for _, g in ipairs(groups) do drop(P .. 'wait:' .. g) end
  drop(P .. 'delayed')
  drop(P .. 'active')
  drop(P .. 'failed')
  if removed >= budget then return {removed, 0} end
  for _, g in ipairs(groups) do
    call('UNLINK', P .. 'wait:' .. g, P .. 'rate:' .. g)
  end
  call('UNLINK', P .. 'groups', P .. 'completed', P .. 'rate')
  local seq = call('HGET', meta, 'seq')
  call('DEL', meta)
  call('HSET', meta, 'created_ms', now_ms, 'seq', seq or 0)
  return {removed, 1}
end

-- complete_claim: `complete`'s ARGV[3..5], then `claim`'s from ARGV[6]: a worker's
-- finished job and its next claim in one round trip. Reply: {complete's, claim's}.
local function complete_claim()
  local done = complete()
  return {done, claim(6)}
end

local op = ARGV[1]
if op == 'claim' then return claim(3)
elseif op == 'complete_claim' then return complete_claim()
elseif op == 'push' then return push()
elseif op == 'complete' then return complete()
elseif op == 'fail' then return fail()
elseif op == 'renew' then return renew()
elseif op == 'stats' then return stats()
elseif op == 'heartbeat' then return heartbeat()
elseif op == 'leave' then return leave()
elseif op == 'retry_failed' then return retry_failed()
elseif op == 'failed' then return failed()
elseif op == 'job' then return job()
elseif op == 'clear' then return clear()
end
return redis.error_reply('tidegate queue: unknown operation ' .. tostring(op))
