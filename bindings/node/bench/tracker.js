'use strict'

// trackEvent calls per second, 10 000 ids, 64 calls in flight, in memory and through a
// local redis-server (started here on a free port): tidegate's EventTracker against
// node-event-throttler 1.0.7 when it can be found (not a dependency):
//   npm install --no-save node-event-throttler@1.0.7 redis@4
// or NODE_EVENT_THROTTLER=/path/to/its/source (with its dependencies installed there).
// Each case runs once untimed, then ROUNDS times, the two trackers alternating, and
// reports the median; through Redis also redis-server's CPU time per event (user +
// system, from /proc).
// Not a test: it prints figures.

const fs = require('node:fs')
const path = require('node:path')
const TidegateTracker = require('..')
const { startRedis } = require('../test/support/redis-server')

const EVENTS = Number(process.env.EVENTS ?? 200000)
// Through Redis, each count is a case of its own: 50 000 is 5 events per id (all
// immediate at limit 5), 200 000 the memory case's mix (5 immediate, 15 deferred per id).
const REDIS_EVENTS = (process.env.REDIS_EVENTS ?? '50000,200000').split(',').map(Number)
const IDS = Number(process.env.IDS ?? 10000)
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 64)
const ROUNDS = Number(process.env.ROUNDS ?? 3)

/** node-event-throttler's directory (or package name), if it can be found. */
function otherRoot () {
  const where = process.env.NODE_EVENT_THROTTLER
  const root = where ? path.resolve(where) : 'node-event-throttler'
  try {
    require.resolve(root)
    return root
  } catch {
    return null
  }
}

/**
 * Events per second of `tracker` over `events` events spread over `ids` records.
 * @param {any} tracker
 * @param {number} events
 * @param {number} ids
 * @param {number} inFlight concurrent trackEvent calls
 */
async function rate (tracker, events, ids, inFlight) {
  let next = 0
  const counts = { immediate: 0, deferred: 0, ignored: 0 }
  async function worker () {
    while (next < events) {
      const i = next++
      // The same details for every event: node-event-throttler starts a record over
      // when its details change.
      const r = await tracker.trackEvent('api_request', `user-${i % ids}`, { path: '/search' })
      counts[/** @type {'immediate' | 'deferred' | 'ignored'} */ (r.type)]++
    }
  }
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: inFlight }, worker))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { perSecond: Math.round(events / seconds), counts }
}

/** @param {number[]} values */
function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

/**
 * CPU seconds (user + system) the process `pid` has used, or null where /proc is not.
 * @param {number | undefined} pid
 * @returns {number | null}
 */
function cpuSeconds (pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

/**
 * Runs each maker's tracker `ROUNDS` times, alternating, and prints the medians.
 * @param {string} label
 * @param {number} events
 * @param {{ name: string, make: () => Promise<{ tracker: any, close: () => Promise<void> }> }[]} makers
 * @param {number} [redisPid] redis-server's process, whose CPU time per event is printed
 */
async function compare (label, events, makers, redisPid) {
  /** @type {number[][]} */
  const rates = makers.map(() => [])
  /** @type {number[][]} */
  const redisCpu = makers.map(() => [])
  /** @type {any[]} */
  const counts = makers.map(() => null)
  // One untimed run of each first: the first run of a case in this process is
  // 10-20 % slower for both trackers (V8 compiling the path it takes).
  for (const maker of makers) {
    const { tracker, close } = await maker.make()
    await rate(tracker, Math.min(events, 20000), IDS, IN_FLIGHT)
    await close()
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, maker] of makers.entries()) {
      const { tracker, close } = await maker.make()
      const before = cpuSeconds(redisPid)
      const r = await rate(tracker, events, IDS, IN_FLIGHT)
      const after = cpuSeconds(redisPid)
      await close()
      rates[i].push(r.perSecond)
      if (before !== null && after !== null) redisCpu[i].push((after - before) * 1e6 / events)
      counts[i] = r.counts
    }
  }
  const medians = rates.map(median)
  for (const [i, maker] of makers.entries()) {
    const ratio = i === 0 || medians[i] === 0 ? '' : `  tidegate ${(medians[0] / medians[i]).toFixed(2)}x`
    const cpu = redisCpu[i].length === 0 ? '' : `; redis-server ${median(redisCpu[i]).toFixed(1)} µs CPU per event`
    console.log(`${label.padEnd(13)} ${maker.name.padEnd(22)} ${String(medians[i]).padStart(8)} events/s  (runs ${rates[i].join(', ')}; ${JSON.stringify(counts[i])}${cpu})${ratio}`)
  }
}

async function main () {
  const root = otherRoot()
  const Other = root === null ? null : require(root)
  const options = { limit: 5, deferInterval: 3600000, processor: async () => {} }
  console.log(`trackEvent, ${IDS} ids, ${IN_FLIGHT} in flight, limit 5; ${EVENTS} events per run in memory, ${REDIS_EVENTS.join(' and ')} through Redis; median of ${ROUNDS} (node ${process.version})`)
  if (Other === null) console.log('node-event-throttler not found: its rows are skipped')

  /** @type {{ name: string, make: () => Promise<{ tracker: any, close: () => Promise<void> }> }[]} */
  const memory = [{
    name: 'tidegate',
    make: async () => {
      const tracker = new TidegateTracker({ ...options })
      return { tracker, close: async () => tracker.destroy() }
    }
  }]
  if (Other !== null) {
    memory.push({
      name: 'node-event-throttler',
      make: async () => {
        const tracker = new Other({ ...options, maxKeys: 0 })
        return { tracker, close: async () => tracker.destroy() }
      }
    })
  }
  await compare('memory', EVENTS, memory)

  let redis = null
  try {
    redis = await startRedis()
  } catch {
    console.log('redis-server not available: Redis figures skipped')
    return
  }
  const url = redis.url
  let run = 0
  /** @type {{ name: string, make: () => Promise<{ tracker: any, close: () => Promise<void> }> }[]} */
  const shared = [{
    name: 'tidegate',
    make: async () => {
      const tracker = new TidegateTracker({ ...options, storage: new TidegateTracker.RedisAdapter({ url, name: `bench-${run++}` }) })
      // The connection opens outside the timed run.
      await tracker.stats()
      return {
        tracker,
        close: async () => {
          await tracker.clear()
          tracker.destroy()
        }
      }
    }
  }]
  if (Other !== null) {
    const { createClient } = require(require.resolve('redis', { paths: [require.resolve(root)] }))
    const OtherRedisAdapter = require(path.join(path.dirname(require.resolve(root)), 'storage', 'RedisAdapter'))
    shared.push({
      name: 'node-event-throttler',
      make: async () => {
        const client = createClient({ url, scripts: OtherRedisAdapter.scripts })
        await client.connect()
        await client.flushDb()
        const tracker = new Other({ ...options, maxKeys: 0, storage: new OtherRedisAdapter({ redisClient: client }) })
        return {
          tracker,
          close: async () => {
            tracker.destroy()
            await client.flushDb()
            await client.quit()
          }
        }
      }
    })
  }
  try {
    for (const events of REDIS_EVENTS) await compare(`Redis ${events / IDS}/id`, events, shared, redis.pid)
  } finally {
    await redis.stop()
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
