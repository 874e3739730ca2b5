'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const express = require('express')
const { rateLimit: expressRateLimit } = require('express-rate-limit')
const { TidegateStore, redisStore } = require('..')
const { listen } = require('./support/http')
const { startRedis } = require('./support/redis-server')

/** An app limited by express-rate-limit with `store`. */
function appWith (store, limit = 3) {
  const app = express()
  app.use(expressRateLimit({ windowMs: 60000, limit, standardHeaders: 'draft-7', legacyHeaders: false, store }))
  app.get('/api', (req, res) => res.send('ok'))
  return app
}

/** Statuses of `n` requests to `base`. */
async function statuses (base, n) {
  const out = []
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${base}/api`)
    await r.arrayBuffer()
    out.push(r.status)
  }
  return out
}

test('express-rate-limit with the tidegate store: 3 admitted, then 429', async () => {
  const store = new TidegateStore()
  const server = await listen(appWith(store))
  try {
    assert.deepEqual(await statuses(server.base, 5), [200, 200, 200, 429, 429])
    const info = await store.get('127.0.0.1')
    assert.equal(info.totalHits, 5, 'every hit is counted, as express-rate-limit\'s own stores do')
    assert.ok(info.resetTime instanceof Date)
    await store.decrement('127.0.0.1')
    assert.equal((await store.get('127.0.0.1')).totalHits, 4)
    await store.resetKey('127.0.0.1')
    assert.equal(await store.get('127.0.0.1'), undefined)
    assert.deepEqual(await statuses(server.base, 1), [200])
  } finally {
    await server.close()
  }
})

test('express-rate-limit with the tidegate store on Redis: two apps share the count', async () => {
  const redis = await startRedis()
  const shared = redisStore({ url: redis.url })
  const a = await listen(appWith(new TidegateStore({ store: shared, name: 'erl' })))
  const b = await listen(appWith(new TidegateStore({ store: shared, name: 'erl' })))
  try {
    const first = await statuses(a.base, 2)
    const second = await statuses(b.base, 2)
    assert.deepEqual([...first, ...second], [200, 200, 200, 429])
  } finally {
    await a.close()
    await b.close()
    await redis.stop()
  }
})
