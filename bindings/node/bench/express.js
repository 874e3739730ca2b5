'use strict'

// Express requests per second (autocannon, loopback): no limiter, tidegate's rateLimit
// in memory (and through Redis when redis-server is on PATH), and express-rate-limit
// with its own memory store and with tidegate's store. The limits are far above the
// load, so every request is admitted and the figures measure the limiter's cost.
// Not a test: it prints figures.

const autocannon = require('autocannon')
const express = require('express')
const { rateLimit: expressRateLimit } = require('express-rate-limit')
const { rateLimit, redisStore, TidegateStore } = require('..')
const { startRedis } = require('../test/support/redis-server')
const { listen } = require('../test/support/http')

const DURATION = Number(process.env.DURATION ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50)
const HUGE = 1e9

/** Requests per second of an app with `middleware` (or none). */
async function measure (name, middleware) {
  const app = express()
  if (middleware) app.use(middleware)
  app.get('/', (req, res) => res.send('ok'))
  const server = await listen(app)
  const result = await autocannon({ url: `${server.base}/`, connections: CONNECTIONS, duration: DURATION })
  await server.close()
  const non2xx = result.non2xx
  console.log(`${name.padEnd(40)} ${Math.round(result.requests.average).toString().padStart(7)} req/s  p99 ${result.latency.p99} ms${non2xx ? `  (${non2xx} non-2xx)` : ''}`)
}

async function main () {
  console.log(`Express ${require('express/package.json').version}, ${CONNECTIONS} connections, ${DURATION} s each (node ${process.version})`)
  await measure('no limiter', null)
  await measure('tidegate rateLimit (memory)', rateLimit({ requestsPerMinute: HUGE }))
  await measure('express-rate-limit (its MemoryStore)', expressRateLimit({ windowMs: 60000, limit: HUGE }))
  await measure('express-rate-limit + TidegateStore', expressRateLimit({ windowMs: 60000, limit: HUGE, store: new TidegateStore() }))
  let redis = null
  try {
    redis = await startRedis()
  } catch {
    console.log('redis-server not available: Redis figures skipped')
  }
  if (redis) {
    await measure('tidegate rateLimit (Redis)', rateLimit({ requestsPerMinute: HUGE, store: redisStore({ url: redis.url }) }))
    await redis.stop()
  }
}

main().then(() => process.exit(0))
