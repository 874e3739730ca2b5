'use strict'

// node-event-throttler's README examples, run on tidegate's engine with exact counts.

const test = require('node:test')
const assert = require('node:assert/strict')
const EventTracker = require('..')
const { TokenBucketStrategy } = require('..')
const { waitUntil } = require('./support/wait')

test('alert de-duplication: the first error alerts at once, the next 9 arrive as one summary', async () => {
  const summaries = []
  const tracker = new EventTracker({
    limit: 1,
    deferInterval: 200,
    processingInterval: 20,
    processor: async (batch) => {
      summaries.push(`Detected ${batch[0].count} additional occurrences of: ${batch[0].id}`)
    }
  })
  const types = []
  for (let i = 0; i < 10; i++) {
    const r = await tracker.trackEvent('system_error', 'ECONNRESET', { stack: `at line ${i}` })
    types.push(r.type)
  }
  assert.deepEqual(types, ['immediate', ...Array(9).fill('deferred')])
  await waitUntil(() => summaries.length === 1)
  assert.deepEqual(summaries, ['Detected 9 additional occurrences of: ECONNRESET'])
  await tracker.shutdown()
})

test('API burst with a token bucket: 10 immediate, the 5 over the burst deferred until the next token', async () => {
  const deferred = []
  const tracker = new EventTracker({
    strategy: new TokenBucketStrategy({ bucketSize: 10, refillRate: 0.5 }),
    processor: async (batch) => { deferred.push(...batch) }
  })
  const counts = { immediate: 0, deferred: 0 }
  let scheduled = 0
  const before = Date.now()
  for (let i = 0; i < 15; i++) {
    const r = await tracker.trackEvent('api_request', 'user-1', { path: '/search', i })
    counts[r.type]++
    if (r.type === 'deferred') scheduled = r.data.scheduledSendAt
  }
  assert.deepEqual(counts, { immediate: 10, deferred: 5 })
  // One token every 2 s: the batch is due when the next one is.
  assert.ok(scheduled >= before + 1990 && scheduled <= Date.now() + 2001, `due at +${scheduled - before} ms`)
  const report = await tracker.shutdown()
  assert.equal(report.delivered, 1)
  assert.equal(deferred.length, 1)
  assert.equal(deferred[0].count, 5)
  assert.deepEqual(deferred[0].details.map((d) => d.i), [10, 11, 12, 13, 14])
})

test('log aggregation: 100 logs immediate, the other 150 batched; the details of the first 100 deferred are kept', async () => {
  const indexed = []
  let batchCount = 0
  let dropped = 0
  const tracker = new EventTracker({
    limit: 100,
    deferInterval: 100,
    processingInterval: 20,
    processor: async (logs) => {
      batchCount += logs.reduce((n, l) => n + l.count, 0)
      dropped += logs.reduce((n, l) => n + l.detailsDropped, 0)
      indexed.push(...logs.flatMap((l) => l.details))
    }
  })
  let immediate = 0
  for (let i = 0; i < 250; i++) {
    const r = await tracker.trackEvent('app_log', 'payments', { line: i })
    if (r.type === 'immediate') immediate++
  }
  assert.equal(immediate, 100)
  await waitUntil(() => batchCount === 150)
  assert.equal(indexed.length, 100, 'maxDetails (default 100) details are kept per batch')
  assert.equal(dropped, 50)
  assert.deepEqual(indexed.slice(0, 3), [{ line: 100 }, { line: 101 }, { line: 102 }])
  await tracker.shutdown()
})
