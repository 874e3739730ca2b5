'use strict'

// The Express app `bench/express.js` measures, in a process of its own: argv[2] names
// the limiter in front of `GET /` (see LIMITERS), REDIS_URL is the Redis of the Redis
// ones. Prints {"port": n} once listening. The limits are far above the load: every
// request is admitted, so the figures measure what the limiter costs. The limiter is
// mounted as an app mounts it (`app.use(limiter)`), except with TIMED=1: then a
// middleware around it times each request from entering the limiter to its `next()`,
// and `GET /own-time` answers the sum (ns) and the requests timed: the limiter's own
// work when it calls `next()` at once (memory), its wait for the store too otherwise.

const express = require('express')
const { rateLimit: expressRateLimit } = require('express-rate-limit')
const { rateLimit, redisStore, TidegateStore } = require('..')

const HUGE = 1e9
const url = process.env.REDIS_URL ?? ''

/** The bench-only stores, loaded only by the rows that use them. */
function rateLimitRedis () {
  const { RedisStore } = require('rate-limit-redis')
  const { createClient } = require('redis')
  const client = createClient({ url })
  const connected = client.connect()
  return new RedisStore({ sendCommand: async (...args) => { await connected; return client.sendCommand(args) } })
}

/** @type {Record<string, () => any>} */
const LIMITERS = {
  none: () => null,
  noop: () => (/** @type {any} */ req, /** @type {any} */ res, /** @type {() => void} */ next) => next(),
  // What the two headers cost Node and Express on their own: the rateLimit row's
  // values, fixed (its limit name and numbers).
  'headers-only': () => {
    const policy = '"token_bucket_1000000000/1m,burst=1000000000";q=1000000000;w=60'
    const limit = '"token_bucket_1000000000/1m,burst=1000000000";r=999999999;t=1'
    return (/** @type {any} */ req, /** @type {any} */ res, /** @type {() => void} */ next) => {
      res.setHeader('ratelimit-policy', policy)
      res.setHeader('ratelimit', limit)
      next()
    }
  },
  'tidegate-memory': () => rateLimit({ requestsPerMinute: HUGE }),
  'tidegate-memory-no-headers': () => rateLimit({ requestsPerMinute: HUGE, headers: false }),
  'tidegate-redis': () => rateLimit({ requestsPerMinute: HUGE, store: redisStore({ url }) }),
  'erl-memory': () => expressRateLimit({ windowMs: 60000, limit: HUGE }),
  'erl-rate-limit-redis': () => expressRateLimit({ windowMs: 60000, limit: HUGE, store: rateLimitRedis() }),
  'erl-tidegate-memory': () => expressRateLimit({ windowMs: 60000, limit: HUGE, store: new TidegateStore() }),
  'erl-tidegate-redis': () => expressRateLimit({ windowMs: 60000, limit: HUGE, store: new TidegateStore({ store: redisStore({ url }) }) })
}

const make = LIMITERS[process.argv[2]]
if (make === undefined) {
  console.error(`unknown limiter ${process.argv[2]}: one of ${Object.keys(LIMITERS).join(', ')}`)
  process.exit(2)
}
const app = express()
const middleware = make()
/** Time from entering the limiter to its `next()` (ns), and the requests timed. */
const own = { ns: 0, requests: 0 }
app.get('/own-time', (req, res) => res.json(own))
if (middleware !== null && process.env.TIMED !== '1') {
  app.use(middleware)
} else if (middleware !== null) {
  app.use((req, res, next) => {
    const started = process.hrtime.bigint()
    middleware(req, res, (/** @type {unknown} */ err) => {
      own.ns += Number(process.hrtime.bigint() - started)
      own.requests++
      next(err)
    })
  })
}
app.get('/', (req, res) => res.send('ok'))
const server = app.listen(0, '127.0.0.1', () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  process.stdout.write(JSON.stringify({ port }) + '\n')
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
