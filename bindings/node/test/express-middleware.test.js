'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const express = require('express')
const { rateLimit, redisStore } = require('..')
const { listen } = require('./support/http')
const { startRedis } = require('./support/redis-server')
const { startNode } = require('./support/processes')

/** An Express app with `middleware` in front of GET /api. */
function appWith (middleware) {
  const app = express()
  app.set('trust proxy', false)
  app.use(middleware)
  app.get('/api', (req, res) => res.json({ ok: true }))
  return app
}

test('memory: 5 requests admitted, then 429 with Retry-After, RateLimit headers and a JSON body', async () => {
  const server = await listen(appWith(rateLimit({ requestsPerMinute: 5 })))
  try {
    const statuses = []
    let last
    for (let i = 0; i < 6; i++) {
      last = await fetch(`${server.base}/api`)
      statuses.push(last.status)
      if (i === 0) {
        assert.equal(last.headers.get('ratelimit-policy'), '"token_bucket_5/1m,burst=5";q=5;w=60')
        assert.equal(last.headers.get('ratelimit'), '"token_bucket_5/1m,burst=5";r=4;t=12')
      }
      if (last.status === 200) await last.arrayBuffer()
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429])
    assert.equal(last.headers.get('retry-after'), '12')
    assert.equal(last.headers.get('ratelimit'), '"token_bucket_5/1m,burst=5";r=0;t=60')
    assert.match(last.headers.get('content-type'), /application\/json/)
    assert.deepEqual(await last.json(), {
      error: 'Too Many Requests',
      message: 'Too many requests, please try again later.',
      retryAfter: 12,
      limit: 5,
      remaining: 0
    })
  } finally {
    await server.close()
  }
})

test('the default key is req.ip: the socket address unless the app trusts a proxy', async () => {
  // Each app limits GET /api to 2 per minute per key and answers with the req.ip it saw.
  const limited = (configure) => {
    const app = express()
    configure(app)
    app.use(rateLimit({ requestsPerMinute: 60, capacity: 2 }))
    app.get('/api', (req, res) => res.send(req.ip))
    return app
  }
  const mountedUnder = (trust) => {
    const parent = express()
    parent.set('trust proxy', trust)
    parent.use('/sub', limited(() => {}))
    return parent
  }
  // [case, app, path, whether req.ip is the forwarded client]
  const cases = [
    ['default settings', limited(() => {}), '/api', false],
    ['trust proxy false', limited((app) => app.set('trust proxy', false)), '/api', false],
    ['trust proxy 0', limited((app) => app.set('trust proxy', 0)), '/api', false],
    ['trust proxy true', limited((app) => app.set('trust proxy', true)), '/api', true],
    ['trust proxy 1', limited((app) => app.set('trust proxy', 1)), '/api', true],
    ['trust proxy loopback', limited((app) => app.set('trust proxy', 'loopback')), '/api', true],
    ['a sub-app under a parent trusting proxies', mountedUnder(true), '/sub/api', true],
    ['a sub-app under a parent trusting none', mountedUnder(false), '/sub/api', false]
  ]
  for (const [name, app, path, forwarded] of cases) {
    const server = await listen(app)
    try {
      // Three requests from three forwarded clients, then a fourth from the first again.
      const seen = []
      for (const client of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1']) {
        const r = await fetch(`${server.base}${path}`, { headers: { 'x-forwarded-for': client } })
        seen.push({ status: r.status, ip: r.status === 200 ? await r.text() : null })
      }
      if (forwarded) {
        // One key per forwarded client: all four admitted (10.0.0.1 twice of 2).
        assert.deepEqual(seen.map((s) => s.status), [200, 200, 200, 200], name)
        assert.deepEqual(seen.map((s) => s.ip), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1'], name)
      } else {
        // One key, the socket's address, whatever the header says: 2 admitted.
        assert.deepEqual(seen.map((s) => s.status), [200, 200, 429, 429], name)
        assert.deepEqual(seen.map((s) => s.ip), ['127.0.0.1', '127.0.0.1', null, null], name)
      }
    } finally {
      await server.close()
    }
  }
})

test('the default key of a pipelined request, whose response waits without a socket, is the socket address', async () => {
  const app = express()
  app.use(rateLimit({ requestsPerMinute: 60, capacity: 2 }))
  // Whether the response had no socket yet: it waits behind the one before it.
  app.get('/api', (req, res) => res.json({ ip: req.ip, waiting: res.socket === null }))
  const server = await listen(app)
  try {
    const { hostname, port } = new URL(server.base)
    const request = (last) => `GET /api HTTP/1.1\r\nHost: ${hostname}\r\n${last ? 'Connection: close\r\n' : ''}\r\n`
    // Three requests in one write, the last closing the connection.
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () => {
        socket.write(request(false) + request(false) + request(true))
      })
      let text = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk) => { text += chunk })
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })
    // The answers, one after the other: status line, headers, a JSON body.
    const answers = answer.split(/(?=HTTP\/1\.1 )/).map((one) => ({
      status: Number(one.slice(9, 12)),
      body: JSON.parse(one.slice(one.indexOf('\r\n\r\n') + 4))
    }))
    const statuses = answers.map((a) => a.status)
    const bodies = answers.map((a) => a.body)
    // One key for all three, the socket's: 2 admitted, the third refused.
    assert.deepEqual(statuses, [200, 200, 429])
    assert.deepEqual(bodies.slice(0, 2).map((b) => b.ip), ['127.0.0.1', '127.0.0.1'])
    assert.ok(bodies.slice(0, 2).some((b) => b.waiting), 'no response waited without a socket')
  } finally {
    await server.close()
  }
})

test('capacity, identifier, skip, message, handler and a tidegate policy string', async () => {
  const app = express()
  app.use('/burst', rateLimit({ requestsPerMinute: 60, capacity: 2, identifier: (req) => req.headers['x-api-key'] || req.ip, message: 'slow down' }))
  app.use('/skip', rateLimit({ requestsPerMinute: 1, skip: (req) => req.headers['x-internal'] === '1' }))
  app.use('/policy', rateLimit({ policy: 'gcra:10/1s;fixed_window:3/1d', name: 'api' }))
  app.use('/handler', rateLimit({ requestsPerMinute: 1, handler: (req, res, next, d) => res.send(`wait ${d.retryAfter} ms`) }))
  app.use('/cost', rateLimit({ policy: 'token_bucket:6/1m', name: 'heavy', cost: () => 2 }))
  app.use((req, res) => res.send('ok'))
  const server = await listen(app)
  const get = async (path, headers = {}) => {
    const r = await fetch(`${server.base}${path}`, { headers })
    return { status: r.status, headers: r.headers, body: await r.text() }
  }
  try {
    assert.deepEqual([(await get('/burst', { 'x-api-key': 'a' })).status, (await get('/burst', { 'x-api-key': 'a' })).status], [200, 200])
    const denied = await get('/burst', { 'x-api-key': 'a' })
    assert.equal(denied.status, 429)
    assert.equal(JSON.parse(denied.body).message, 'slow down')
    assert.equal((await get('/burst', { 'x-api-key': 'b' })).status, 200, 'another key has its own bucket')

    assert.equal((await get('/skip')).status, 200)
    assert.equal((await get('/skip')).status, 429)
    const skipped = await get('/skip', { 'x-internal': '1' })
    assert.equal(skipped.status, 200)
    assert.equal(skipped.headers.get('ratelimit'), null, 'skipped requests are not limited')

    const first = await get('/policy')
    assert.equal(first.headers.get('ratelimit-policy'), '"api";q=10;w=1, "api-2";q=3;w=86400')
    assert.equal((await get('/policy')).status, 200)
    assert.equal((await get('/policy')).status, 200)
    assert.equal((await get('/policy')).status, 429, 'the daily quota of 3 binds')

    assert.equal((await get('/handler')).status, 200)
    const handled = await get('/handler')
    assert.equal(handled.status, 429)
    assert.match(handled.body, /^wait \d+(\.\d+)? ms$/)
    assert.ok(handled.headers.get('retry-after'))

    // A request costing 2 units: the headers count units.
    assert.equal((await get('/cost')).headers.get('ratelimit'), '"heavy";r=4;t=20')
    assert.equal((await get('/cost')).headers.get('ratelimit'), '"heavy";r=2;t=40')
    assert.equal((await get('/cost')).headers.get('ratelimit'), '"heavy";r=0;t=60')
    const heavy = await get('/cost')
    assert.equal(heavy.status, 429)
    assert.equal(heavy.headers.get('ratelimit'), '"heavy";r=0;t=60')
    assert.equal(heavy.headers.get('retry-after'), '20')
  } finally {
    await server.close()
  }
})

test('bad options throw with tidegate\'s messages', () => {
  assert.throws(() => rateLimit({ policy: 'token_bucket:0/1m' }), { name: 'RangeError', message: 'invalid policy `token_bucket:0/1m`: `limit` must be at least 1' })
  assert.throws(() => rateLimit({ requestsPerMinute: 'x' }), { name: 'TypeError', message: 'requestsPerMinute must be a number.' })
  assert.throws(() => rateLimit({ skip: true }), { name: 'TypeError', message: 'skip must be a function.' })
  assert.throws(() => rateLimit({ store: {} }), { name: 'TypeError' })
  assert.throws(() => redisStore({ url: 'redis://127.0.0.1:1', onError: 'maybe' }), { name: 'TypeError' })
})

test('two Express processes on one Redis share a limit exactly', async () => {
  const redis = await startRedis()
  const options = JSON.stringify({ requestsPerMinute: 5, name: 'shared-api', keyHeader: 'x-client' })
  const a = startNode('express-server.js', [redis.url, options])
  const b = startNode('express-server.js', [redis.url, options])
  try {
    const [pa, pb] = await Promise.all([a.next(), b.next()])
    const statuses = []
    for (let i = 0; i < 12; i++) {
      const port = i % 2 === 0 ? pa.port : pb.port
      const r = await fetch(`http://127.0.0.1:${port}/api`, { headers: { 'x-client': 'alice' } })
      statuses.push(r.status)
      await r.arrayBuffer()
    }
    assert.equal(statuses.filter((s) => s === 200).length, 5)
    assert.deepEqual(statuses.slice(0, 5), [200, 200, 200, 200, 200])
    assert.ok(statuses.slice(5).every((s) => s === 429))
    // 40 concurrent requests of another client on both servers: exactly 5 admitted.
    const burst = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const port = i % 2 === 0 ? pa.port : pb.port
      const r = await fetch(`http://127.0.0.1:${port}/api`, { headers: { 'x-client': 'bob' } })
      await r.arrayBuffer()
      return r.status
    }))
    assert.equal(burst.filter((s) => s === 200).length, 5)
    assert.equal(burst.filter((s) => s === 429).length, 35)
  } finally {
    await Promise.all([a.stop(), b.stop()])
    await redis.stop()
  }
})

test('a Redis outage follows onError within the timeout: closed denies, open admits, local limits in memory', async () => {
  const redis = await startRedis()
  const app = express()
  app.use('/closed', rateLimit({ requestsPerMinute: 100, name: 'closed', store: redisStore({ url: redis.url, onError: 'closed', timeout: 50 }) }))
  app.use('/open', rateLimit({ requestsPerMinute: 100, name: 'open', store: redisStore({ url: redis.url, onError: 'open', timeout: 50 }) }))
  app.use('/local', rateLimit({ requestsPerMinute: 2, name: 'local', store: redisStore({ url: redis.url, onError: 'local', timeout: 50 }) }))
  app.use((req, res) => res.send('ok'))
  const server = await listen(app)
  const status = async (path) => {
    const r = await fetch(`${server.base}${path}`)
    await r.arrayBuffer()
    return r.status
  }
  try {
    assert.deepEqual([await status('/closed'), await status('/open'), await status('/local')], [200, 200, 200])
    redis.pause()
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 5)
    const started = Date.now()
    assert.equal(await status('/closed'), 429)
    assert.equal(await status('/open'), 200)
    // The local limiter starts empty when Redis stops answering: 2 per minute of its own.
    assert.deepEqual([await status('/local'), await status('/local'), await status('/local')], [200, 200, 429])
    const took = Date.now() - started
    clearInterval(timer)
    assert.ok(took < 2000, `5 requests during the outage took ${took} ms`)
    assert.ok(ticks > 0, 'the event loop kept running')
  } finally {
    redis.resume()
    await server.close()
    await redis.stop()
  }
})
