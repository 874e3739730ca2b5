'use strict'

// trackEvent calls per second, in memory: tidegate's EventTracker against
// node-event-throttler 1.0.7 when it is installed beside it (not a dependency):
//   npm install --no-save node-event-throttler@1.0.7
// or NODE_EVENT_THROTTLER=/path/to/its/source. Not a test: it prints figures.

const path = require('node:path')
const TidegateTracker = require('..')

/** node-event-throttler, if it can be found. */
function otherTracker () {
  const where = process.env.NODE_EVENT_THROTTLER
  try {
    return require(where ? path.resolve(where) : 'node-event-throttler')
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
  const started = process.hrtime.bigint()
  let next = 0
  const counts = { immediate: 0, deferred: 0, ignored: 0 }
  async function worker () {
    while (next < events) {
      const i = next++
      // The same details for every event: node-event-throttler starts a record over
      // when its details change.
      const r = await tracker.trackEvent('api_request', `user-${i % ids}`, { path: '/search' })
      counts[r.type]++
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { perSecond: Math.round(events / seconds), counts }
}

async function main () {
  const events = Number(process.env.EVENTS ?? 200000)
  const cases = [
    { ids: 1000, inFlight: 1 },
    { ids: 1000, inFlight: 64 },
    { ids: 100000, inFlight: 64 }
  ]
  const Other = otherTracker()
  const options = { limit: 5, deferInterval: 3600000, processor: async () => {} }
  console.log(`trackEvent, ${events} events per run, limit 5, in memory (node ${process.version})`)
  for (const c of cases) {
    // A budget that holds 100 000 records (the default 64 MiB holds about 99 000).
    const tidegate = new TidegateTracker({ ...options, maxMemoryBytes: 256 * 1024 * 1024 })
    const a = await rate(tidegate, events, c.ids, c.inFlight)
    tidegate.destroy()
    let line = `ids=${c.ids} in-flight=${c.inFlight}: tidegate ${a.perSecond}/s (${JSON.stringify(a.counts)})`
    if (Other) {
      const other = new Other({ ...options, maxKeys: 0 })
      const b = await rate(other, events, c.ids, c.inFlight)
      other.destroy()
      line += `; node-event-throttler ${b.perSecond}/s (${JSON.stringify(b.counts)}); ${(a.perSecond / b.perSecond).toFixed(2)}x`
    } else {
      line += '; node-event-throttler not installed'
    }
    console.log(line)
  }
}

main().then(() => process.exit(0))
