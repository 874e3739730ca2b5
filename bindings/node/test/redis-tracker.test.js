'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const EventTracker = require('..')
const { RedisAdapter } = EventTracker
const { startRedis } = require('./support/redis-server')
const { startNode } = require('./support/processes')
const { sleep, waitUntil } = require('./support/wait')

test('two Node processes on one Redis tracker share the limit and deliver each deferred event once', async () => {
  const redis = await startRedis()
  const a = startNode('tracker-worker.js', [redis.url, 'shared-alerts'])
  const b = startNode('tracker-worker.js', [redis.url, 'shared-alerts'])
  try {
    await Promise.all([a.next(), b.next()])
    a.send({ track: 20 })
    b.send({ track: 20 })
    const [ca, cb] = await Promise.all([a.next(), b.next()])
    assert.equal(ca.immediate + cb.immediate, 5, 'limit 5 across both processes')
    assert.equal(ca.deferred + cb.deferred, 35)
    assert.equal(ca.ignored + cb.ignored, 0)
    let total = 0
    const deadline = Date.now() + 5000
    while (total < 35 && Date.now() < deadline) {
      await sleep(100)
      a.send({ delivered: true })
      b.send({ delivered: true })
      const [da, db] = await Promise.all([a.next(), b.next()])
      total = da.delivered + db.delivered
    }
    assert.equal(total, 35, 'every deferred event delivered exactly once, by one of the two')
    a.send({ shutdown: true })
    b.send({ shutdown: true })
    await Promise.all([a.next(), b.next()])
  } finally {
    await Promise.all([a.stop(), b.stop()])
    await redis.stop()
  }
})

test('a batch claimed by a process that is killed is delivered by another once its lease expires', async () => {
  const redis = await startRedis()
  const a = startNode('tracker-worker.js', [redis.url, 'takeover', 'hang'])
  let b = null
  try {
    await a.next()
    a.send({ track: 8 })
    assert.deepEqual(await a.next(), { immediate: 5, deferred: 3, ignored: 0 })
    assert.deepEqual(await a.next(), { claimed: 3 }, 'the hanging process claimed the batch')
    a.child.kill('SIGKILL')
    await a.exited
    b = startNode('tracker-worker.js', [redis.url, 'takeover'])
    await b.next()
    let delivered = 0
    const deadline = Date.now() + 6000
    while (delivered < 3 && Date.now() < deadline) {
      await sleep(100)
      b.send({ delivered: true })
      delivered = (await b.next()).delivered
    }
    assert.equal(delivered, 3, 'the other process delivered the claimed batch after the 2 s lease')
  } finally {
    await a.stop()
    if (b) await b.stop()
    await redis.stop()
  }
})

test('getEvent, getDeferredEvents and resetEvent act on the record in Redis, whichever process tracked it', async () => {
  const redis = await startRedis()
  const a = startNode('tracker-worker.js', [redis.url, 'shared-reads', 'slow'])
  const delivered = []
  const tracker = new EventTracker({
    storage: new RedisAdapter({ url: redis.url, name: 'shared-reads' }),
    limit: 5,
    deferInterval: 60000,
    processingInterval: 20,
    lease: 5000,
    processor: async (b) => { delivered.push(...b) }
  })
  try {
    await a.next()
    assert.equal(await tracker.getEvent('alerts', 'disk'), undefined)
    a.send({ track: 8 })
    assert.deepEqual(await a.next(), { immediate: 5, deferred: 3, ignored: 0 })
    const seen = await tracker.getEvent('alerts', 'disk')
    assert.equal(seen.count, 8, 'the other process\'s events')
    assert.equal(seen.deferredCount, 3)
    assert.equal(seen.state, 'deferred')
    assert.ok(seen.scheduledSendAt > Date.now() + 30000)
    assert.equal(seen.details, undefined, 'no event of this process')
    const listed = await tracker.getDeferredEvents(10)
    assert.deepEqual(listed.map((r) => [r.category, r.id, r.deferredCount]), [['alerts', 'disk', 3]])
    assert.deepEqual(await tracker.peekDueEvents(10), [], 'due in a minute')

    // Reset here: the other process's next event is immediate, and the waiting batch
    // is delivered by this process (it claimed it), not dropped.
    assert.equal(await tracker.resetEvent('alerts', 'disk'), true)
    await waitUntil(() => delivered.length === 1, 5000)
    assert.equal(delivered[0].count, 3)
    a.send({ track: 1 })
    assert.deepEqual(await a.next(), { immediate: 1, deferred: 0, ignored: 0 })
    a.send({ get: true })
    const there = await a.next()
    assert.equal(there.count, 1)
    assert.equal(there.deferred, false)
    // Once the delivered batch is settled, the record is idle and a reset forgets it.
    const deadline = Date.now() + 5000
    while ((await tracker.getEvent('alerts', 'disk')).state !== 'idle' && Date.now() < deadline) {
      await sleep(20)
    }
    a.send({ reset: true })
    assert.deepEqual(await a.next(), { reset: true })
    assert.equal(await tracker.getEvent('alerts', 'disk'), undefined, 'an idle record is forgotten')
    assert.equal(delivered.length, 1)
    a.send({ shutdown: true })
    await a.next()
  } finally {
    await tracker.shutdown()
    await a.stop()
    await redis.stop()
  }
})

test('a Redis tracker in this process: same outcomes as memory, stats, clear', async () => {
  const redis = await startRedis()
  const delivered = []
  const tracker = new EventTracker({
    storage: new RedisAdapter({ url: redis.url, name: 'local' }),
    limit: 1,
    deferInterval: 100,
    processingInterval: 20,
    lease: 1000,
    processor: async (b) => { delivered.push(...b) }
  })
  try {
    const types = []
    for (let i = 0; i < 4; i++) types.push((await tracker.trackEvent('c', 'i', { i })).type)
    assert.deepEqual(types, ['immediate', 'deferred', 'deferred', 'deferred'])
    await waitUntil(() => delivered.length === 1)
    assert.equal(delivered[0].count, 3)
    assert.deepEqual(delivered[0].details, [{ i: 1 }, { i: 2 }, { i: 3 }])
    assert.equal((await tracker.stats()).processedEvents, 3)
    assert.equal(await tracker.updateConfig('c', 'i', { limit: 2 }), true)
    assert.ok(await tracker.clear() >= 1)
    assert.equal(await tracker.updateConfig('c', 'i', { limit: 2 }), false)
  } finally {
    await tracker.shutdown()
    await redis.stop()
  }
})

test('Redis: events tracked together each get their own answer, a refused one rejects alone', async () => {
  const redis = await startRedis()
  const tracker = new EventTracker({
    storage: new RedisAdapter({ url: redis.url, name: 'together' }),
    limit: 2,
    processor: async () => {}
  })
  try {
    const answers = await Promise.allSettled([
      tracker.trackEvent('c', 'a', { n: 1 }),
      tracker.trackEvent('', 'x'),
      tracker.trackEvent('c', 'a', { n: 2 }),
      tracker.trackEvent('c', 'b'),
      tracker.trackEvent('c', 'a', { n: 3 })
    ])
    assert.deepEqual(answers.map((a) => a.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'])
    const refused = /** @type {PromiseRejectedResult} */ (answers[1]).reason
    assert.equal(refused.name, 'RangeError')
    assert.equal(refused.message, 'invalid category: must not be empty')
    const [a1, , a2, b1, a3] = answers.map((a) => /** @type {any} */ (a).value)
    assert.deepEqual([a1.type, a2.type, b1.type, a3.type], ['immediate', 'immediate', 'immediate', 'deferred'])
    assert.deepEqual([a1.data.count, a2.data.count, a3.data.count], [1, 2, 3])
    assert.deepEqual(a3.data.details, { n: 3 })
    assert.equal(a3.data.deferredCount, 1)
    assert.equal(typeof a3.data.scheduledSendAt, 'number')
    assert.equal(b1.data.scheduledSendAt, null)
    assert.deepEqual((await tracker.getEvent('c', 'a'))?.details, { n: 3 })
  } finally {
    await tracker.clear()
    tracker.destroy()
    await redis.stop()
  }
})

test('Redis: one record\'s events spread over several batches in flight are each counted once, the limit exact', async () => {
  const redis = await startRedis()
  const tracker = new EventTracker({
    storage: new RedisAdapter({ url: redis.url, name: 'in-order' }),
    limit: 3,
    processor: async () => {}
  })
  try {
    // 200 calls in one turn: several trackBatch calls in flight at once, the record
    // 'one' in every one of them, between events of other records.
    const calls = []
    for (let i = 0; i < 200; i++) {
      calls.push(i % 2 === 0 ? tracker.trackEvent('c', 'one', { n: i }) : tracker.trackEvent('c', `other-${i}`))
    }
    const answers = await Promise.all(calls)
    const mine = answers.filter((_, i) => i % 2 === 0)
    // Counted in any order (the scripts run side by side), each once: counts 1 to 100,
    // the first 3 admitted, the rest deferred.
    const byCount = [...mine].sort((a, b) => a.data.count - b.data.count)
    assert.deepEqual(byCount.map((a) => a.data.count), Array.from({ length: 100 }, (_, i) => i + 1))
    assert.deepEqual(byCount.map((a) => a.type), byCount.map((_, i) => (i < 3 ? 'immediate' : 'deferred')))
    assert.equal((await tracker.getEvent('c', 'one'))?.count, 100)
    assert.ok(answers.filter((_, i) => i % 2 === 1).every((a) => a.type === 'immediate' && a.data.count === 1))
  } finally {
    await tracker.clear()
    tracker.destroy()
    await redis.stop()
  }
})

test('a Redis outage fails trackEvent in bounded time without blocking the event loop', async () => {
  const redis = await startRedis()
  const tracker = new EventTracker({
    storage: new RedisAdapter({ url: redis.url, name: 'outage' }),
    processingInterval: 50,
    lease: 1000,
    processor: async () => {}
  })
  try {
    assert.equal((await tracker.trackEvent('c', 'i')).type, 'immediate')
    redis.pause()
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 10)
    const started = Date.now()
    await assert.rejects(tracker.trackEvent('c', 'i'), /tracker store/)
    const took = Date.now() - started
    clearInterval(timer)
    assert.ok(took < 4000, `failed after ${took} ms`)
    assert.ok(ticks >= took / 10 / 4, `the event loop kept running (${ticks} timer ticks in ${took} ms)`)
  } finally {
    redis.resume()
    tracker.destroy()
    await redis.stop()
  }
})
