'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const EventTracker = require('..')
const { SlidingWindowStrategy, TokenBucketStrategy } = require('..')
const { sleep, waitUntil } = require('./support/wait')

/** A tracker that hands due batches over quickly. */
function quick (options = {}) {
  return new EventTracker({ processingInterval: 20, deferInterval: 100, ...options })
}

test('a failing processor is retried with backoff, then process_failed, then the batch is delivered again', async () => {
  let calls = 0
  const boom = new Error('downstream unavailable')
  const delivered = []
  const tracker = quick({
    limit: 1,
    maxRetries: 2,
    retryDelay: 40,
    processor: async (events) => {
      calls++
      if (calls <= 3) throw boom
      delivered.push(...events)
    }
  })
  const retries = []
  const failures = []
  const processed = []
  tracker.on('retry', (r) => retries.push(r))
  tracker.on('process_failed', (f) => failures.push(f))
  tracker.on('processed', (r) => processed.push(r))
  await tracker.trackEvent('alerts', 'disk', { n: 0 })
  await tracker.trackEvent('alerts', 'disk', { n: 1 })
  await tracker.trackEvent('alerts', 'disk', { n: 2 })
  await waitUntil(() => delivered.length === 1 && processed.length === 1)
  assert.equal(calls, 4)
  assert.deepEqual(retries.map((r) => [r.attempt, r.maxRetries, r.delay, r.events[0].count]), [[1, 2, 40, 2], [2, 2, 80, 2]])
  assert.equal(failures.length, 1)
  assert.equal(failures[0].error, boom, 'process_failed carries the processor\'s own error')
  assert.equal(failures[0].attempts, 3)
  assert.equal(failures[0].events[0].count, 2)
  assert.equal(delivered[0].count, 2)
  assert.equal(delivered[0].failedRounds, 1)
  assert.deepEqual(delivered[0].details, [{ n: 1 }, { n: 2 }])
  assert.equal(processed[0].id, 'disk')
  await tracker.shutdown()
})

test('maxRetries 0 fails a round at the first error', async () => {
  let calls = 0
  const tracker = quick({ limit: 1, maxRetries: 0, processor: async () => { calls++; throw new Error('no') } })
  const failures = []
  tracker.on('process_failed', (f) => failures.push(f))
  tracker.on('retry', () => assert.fail('no retry with maxRetries 0'))
  await tracker.trackEvent('c', 'i')
  await tracker.trackEvent('c', 'i')
  await waitUntil(() => failures.length === 1)
  assert.equal(failures[0].attempts, 1)
  assert.equal(calls, 1)
  tracker.destroy()
})

test('an error listener hears a processor failure after the retries', async () => {
  const tracker = quick({ limit: 1, maxRetries: 0, processor: async () => { throw new Error('nope') } })
  const errors = []
  tracker.on('error', (e) => errors.push(e))
  await tracker.trackEvent('c', 'i')
  await tracker.trackEvent('c', 'i')
  await waitUntil(() => errors.length >= 1)
  assert.equal(errors[0].message, 'Processor callback failed after 1 attempts: nope')
  tracker.destroy()
})

test('maxKeys: an event that would create a record beyond it is ignored with key_limit_reached', async () => {
  const tracker = quick({ maxKeys: 2, processor: async () => {} })
  const ignored = []
  tracker.on('ignored', (e) => ignored.push(e))
  assert.equal((await tracker.trackEvent('c', 'a')).type, 'immediate')
  assert.equal((await tracker.trackEvent('c', 'b')).type, 'immediate')
  const r = await tracker.trackEvent('c', 'z', { x: 1 })
  assert.deepEqual(r, { type: 'ignored', reason: 'key_limit_reached', data: null })
  assert.deepEqual(ignored, [{ reason: 'key_limit_reached', category: 'c', id: 'z', details: { x: 1 } }])
  assert.equal((await tracker.trackEvent('c', 'a')).type, 'immediate', 'existing records still count')
  tracker.destroy()
})

test('events after the deferral join the batch: deferred, never ignored', async () => {
  const tracker = new EventTracker({ limit: 2, deferInterval: 60000, processor: async () => {} })
  const types = []
  for (let i = 0; i < 6; i++) types.push((await tracker.trackEvent('c', 'i')).type)
  assert.deepEqual(types, ['immediate', 'immediate', 'deferred', 'deferred', 'deferred', 'deferred'])
  const r = await tracker.getEvent('c', 'i')
  assert.equal(r.count, 6)
  assert.equal(r.deferredCount, 4)
  tracker.destroy()
})

test('getEvent reads the record from the tracker\'s store: counts, due time, state; undefined when unknown', async () => {
  const tracker = new EventTracker({ limit: 1, deferInterval: 60000, processor: async () => {} })
  assert.equal(await tracker.getEvent('c', 'i'), undefined)
  const before = Date.now()
  await tracker.trackEvent('c', 'i', { n: 1 })
  const idle = await tracker.getEvent('c', 'i')
  assert.equal(idle.state, 'idle')
  assert.equal(idle.count, 1)
  assert.equal(idle.deferred, false)
  assert.deepEqual(idle.details, { n: 1 })
  await tracker.trackEvent('c', 'i', { n: 2 })
  const r = await tracker.getEvent('c', 'i')
  assert.equal(r.state, 'deferred')
  assert.equal(r.category, 'c')
  assert.equal(r.id, 'i')
  assert.equal(r.count, 2)
  assert.equal(r.deferredCount, 1)
  assert.equal(r.inFlight, 0)
  assert.ok(r.scheduledSendAt >= before + 60000 && r.scheduledSendAt <= Date.now() + 60001, `${r.scheduledSendAt}`)
  assert.ok(r.firstEventTime >= before - 1 && r.lastEventTime >= r.firstEventTime)
  assert.deepEqual(r.details, { n: 2 })
  await assert.rejects(tracker.getEvent('c', 3), { name: 'TypeError' })
  tracker.destroy()
})

test('resetEvent forgets a record: its next event is immediate, and its waiting batch is still delivered', async () => {
  const delivered = []
  const tracker = new EventTracker({
    limit: 1,
    deferInterval: 60000,
    processingInterval: 20,
    processor: async (b) => { delivered.push(...b) }
  })
  assert.equal(await tracker.resetEvent('c', 'missing'), false)
  await tracker.trackEvent('c', 'idle')
  assert.equal(await tracker.resetEvent('c', 'idle'), true)
  assert.equal(await tracker.getEvent('c', 'idle'), undefined)
  assert.equal((await tracker.trackEvent('c', 'idle')).type, 'immediate')

  const types = []
  for (let i = 0; i < 3; i++) types.push((await tracker.trackEvent('c', 'i', { i })).type)
  assert.deepEqual(types, ['immediate', 'deferred', 'deferred'])
  assert.equal(await tracker.resetEvent('c', 'i'), true)
  const next = await tracker.trackEvent('c', 'i', { i: 3 })
  assert.equal(next.type, 'immediate')
  assert.equal(next.data.count, 1)
  // The batch waiting at the reset (60 s away) is handed over at the next round.
  await waitUntil(() => delivered.length === 1, 3000)
  assert.equal(delivered[0].id, 'i')
  assert.equal(delivered[0].count, 2)
  assert.deepEqual(delivered[0].details, [{ i: 1 }, { i: 2 }])
  const after = await tracker.getEvent('c', 'i')
  assert.equal(after.count, 1)
  assert.equal(after.deferred, false)
  await tracker.shutdown()
  assert.equal(delivered.length, 1, 'nothing else was waiting')
})

test('getDeferredEvents lists waiting batches earliest first within a limit; peekDueEvents only the due ones', async () => {
  // A long processing interval: a due batch waits for the round.
  const tracker = new EventTracker({ limit: 1, deferInterval: 60000, processingInterval: 60000, processor: async () => {} })
  assert.deepEqual(await tracker.getDeferredEvents(), [])
  for (const id of ['late', 'soon']) {
    await tracker.trackEvent('c', id)
    await tracker.trackEvent('c', id, { id })
  }
  await tracker.trackEvent('c', 'idle')
  const waiting = await tracker.getDeferredEvents()
  assert.deepEqual(waiting.map((r) => [r.id, r.state, r.deferredCount]), [['late', 'deferred', 1], ['soon', 'deferred', 1]])
  assert.deepEqual((await tracker.getDeferredEvents(1)).map((r) => r.id), ['late'])
  assert.deepEqual(await tracker.peekDueEvents(), [], 'both batches are due in a minute')
  await assert.rejects(tracker.getDeferredEvents(0), { name: 'RangeError', message: 'limit must be a whole number of at least 1.' })
  await assert.rejects(tracker.peekDueEvents(1.5), { name: 'RangeError' })
  tracker.destroy()
})

test('peekDueEvents shows a due batch without processing it', async () => {
  const delivered = []
  const tracker = new EventTracker({ limit: 1, deferInterval: 1, processingInterval: 60000, processor: async (b) => { delivered.push(...b) } })
  await tracker.trackEvent('c', 'i')
  await tracker.trackEvent('c', 'i', { late: true })
  await sleep(20)
  const due = await tracker.peekDueEvents()
  assert.deepEqual(due.map((r) => [r.category, r.id, r.deferredCount]), [['c', 'i', 1]])
  assert.deepEqual(await tracker.peekDueEvents(), due.map((r) => ({ ...r })), 'peeking twice sees the same')
  assert.equal(delivered.length, 0)
  await tracker.shutdown()
  assert.equal(delivered.length, 1)
})

test('a deferred record outlives an expireTime shorter than its deferral and is delivered', async () => {
  const delivered = []
  const tracker = quick({ limit: 1, expireTime: 20, deferInterval: 200, processor: async (b) => { delivered.push(...b) } })
  await tracker.trackEvent('c', 'i', { n: 1 })
  await tracker.trackEvent('c', 'i', { n: 2 })
  await waitUntil(() => delivered.length === 1)
  assert.equal(delivered[0].count, 1)
  assert.deepEqual(delivered[0].details, [{ n: 2 }])
  await tracker.shutdown()
})

test('a sliding-window key hammered without pause still gets its batch delivered', async () => {
  const delivered = []
  const tracker = quick({
    strategy: new SlidingWindowStrategy({ limit: 2, windowSize: 1000 }),
    deferInterval: 100,
    processor: async (b) => { delivered.push(...b) }
  })
  const until = Date.now() + 600
  while (Date.now() < until && delivered.length === 0) {
    await tracker.trackEvent('c', 'hammered')
    await sleep(5)
  }
  assert.ok(delivered.length >= 1, 'delivered while events kept coming')
  assert.ok(delivered[0].count >= 1)
  tracker.destroy()
})

test('the token bucket strategy admits again once a token is back', async () => {
  const tracker = new EventTracker({ strategy: new TokenBucketStrategy({ bucketSize: 1, refillRate: 20 }), processor: async () => {} })
  assert.equal((await tracker.trackEvent('c', 'i')).type, 'immediate')
  assert.equal((await tracker.trackEvent('c', 'i')).type, 'deferred')
  await sleep(60)
  assert.equal((await tracker.trackEvent('c', 'i')).type, 'immediate')
  tracker.destroy()
})

test('updateConfig changes one record, emits config_updated, and says false for an unknown record', async () => {
  const tracker = new EventTracker({ limit: 1, deferInterval: 60000, processor: async () => {} })
  const updates = []
  tracker.on('config_updated', (r) => updates.push(r))
  assert.equal(await tracker.updateConfig('c', 'missing', { limit: 5 }), false)
  await tracker.trackEvent('c', 'i')
  assert.equal(await tracker.updateConfig('c', 'i', { limit: 3 }), true)
  await waitUntil(() => updates.length === 1)
  assert.equal(updates[0].id, 'i')
  await assert.rejects(tracker.updateConfig('c', 'i', { limit: 0 }), { name: 'RangeError', message: 'invalid limit: must be at least 1' })
  await assert.rejects(tracker.updateConfig('c', 'i', { deferInterval: -1 }), { name: 'RangeError', message: 'deferInterval must be non-negative.' })
  await assert.rejects(tracker.updateConfig('c', 'i', null), { message: 'newConfig must be an object.' })
  tracker.destroy()
})

test('a tracker without a processor keeps batches until setProcessor, then delivers them', async () => {
  const tracker = quick({ limit: 1, maxRetries: 0 })
  await tracker.trackEvent('c', 'i')
  await tracker.trackEvent('c', 'i', { late: true })
  await sleep(250)
  const delivered = []
  tracker.setProcessor(async (b) => { delivered.push(...b) })
  await waitUntil(() => delivered.length === 1, 3000)
  assert.deepEqual(delivered[0].details, [{ late: true }])
  assert.throws(() => tracker.setProcessor('no'), { message: 'Processor must be a function.' })
  await tracker.shutdown()
})

test('shutdown delivers what is pending now, due or not, and reports what the processor refused', async () => {
  const delivered = []
  const tracker = new EventTracker({ limit: 1, deferInterval: 3600000, processor: async (b) => { delivered.push(...b) } })
  await tracker.trackEvent('c', 'a')
  await tracker.trackEvent('c', 'a')
  await tracker.trackEvent('c', 'a')
  const report = await tracker.shutdown()
  assert.deepEqual([report.delivered, report.persisted, report.undelivered.length], [1, 0, 0])
  assert.equal(delivered[0].count, 2)
  await assert.rejects(tracker.trackEvent('c', 'a'), { message: 'the tracker is shut down' })

  const refusing = new EventTracker({ limit: 1, maxRetries: 1, processor: async () => { throw new Error('down') } })
  await refusing.trackEvent('c', 'b')
  await refusing.trackEvent('c', 'b', { keep: 1 })
  const r = await refusing.shutdown()
  assert.equal(r.delivered, 0)
  assert.equal(r.undelivered.length, 1)
  assert.deepEqual(r.undelivered[0].details, [{ keep: 1 }])
})

test('destroy stops the tracker and removes its listeners', async () => {
  const tracker = new EventTracker({ processor: async () => {} })
  tracker.on('immediate', () => {})
  tracker.destroy()
  assert.equal(tracker.listenerCount('immediate'), 0)
  await assert.rejects(tracker.trackEvent('c', 'i'), { message: 'the tracker is shut down' })
})

test('immediate and deferred events carry the record', async () => {
  const tracker = new EventTracker({ limit: 1, deferInterval: 60000, processor: async () => {} })
  const seen = []
  tracker.on('immediate', (r) => seen.push(['immediate', r.count]))
  tracker.on('deferred', (r) => seen.push(['deferred', r.count, r.deferredCount]))
  await tracker.trackEvent('c', 'i')
  await tracker.trackEvent('c', 'i')
  assert.deepEqual(seen, [['immediate', 1], ['deferred', 2, 1]])
  tracker.destroy()
})

test('bad options throw TypeError and RangeError: node-event-throttler\'s checks, then tidegate\'s messages', async () => {
  assert.throws(() => new EventTracker({ limit: 'many' }), { name: 'TypeError', message: 'limit must be a number.' })
  assert.throws(() => new EventTracker({ retryDelay: -5 }), { name: 'RangeError', message: 'retryDelay must be non-negative.' })
  assert.throws(() => new EventTracker({ strategy: {} }), { name: 'TypeError', message: 'strategy must be an instance of BaseStrategy.' })
  assert.throws(() => new EventTracker({ limit: 0 }), { name: 'RangeError', message: 'invalid limit: must be at least 1' })
  assert.throws(() => new EventTracker({ deferInterval: 0 }), { name: 'RangeError', message: 'invalid defer_interval: must be greater than zero' })
  assert.throws(() => new EventTracker({ strategy: new TokenBucketStrategy({ refillRate: 0.0001 }) }),
    { name: 'RangeError', message: 'invalid refill_rate: 0.0001 is below the smallest rate, 0.001 tokens per second' })
  const tracker = new EventTracker({})
  await assert.rejects(tracker.trackEvent(1, 'x'), { name: 'TypeError', message: 'category and id must be strings.' })
  await assert.rejects(tracker.trackEvent('', 'x'), { name: 'RangeError', message: 'invalid category: must not be empty' })
  const circular = {}
  circular.self = circular
  await assert.rejects(tracker.trackEvent('c', 'x', circular), { name: 'TypeError' })
  tracker.destroy()
})
