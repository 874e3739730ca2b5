'use strict'

// One process of the shared-tracker tests: a Redis tracker named argv[3] on argv[2];
// with argv[4] = "hang" its processor announces {"claimed": n} and never settles; with
// "slow" batches wait a minute.
// Each stdin line {"track": n} tracks n events of ('alerts', 'disk') and answers the
// outcome counts; {"get": true} answers getEvent('alerts', 'disk') (or null),
// {"reset": true} resetEvent's answer; {"shutdown": true} shuts down and answers what this process
// delivered.

const readline = require('node:readline')
const EventTracker = require('../..')
const { RedisAdapter } = EventTracker

const [url, name, mode] = process.argv.slice(2)
let delivered = 0
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n')
const tracker = new EventTracker({
  storage: new RedisAdapter({ url, name }),
  limit: 5,
  deferInterval: mode === 'slow' ? 60000 : 200,
  processingInterval: 50,
  lease: 2000,
  processor: async (batch) => {
    if (mode === 'hang') {
      say({ claimed: batch.reduce((n, r) => n + r.count, 0) })
      return new Promise(() => {})
    }
    for (const r of batch) delivered += r.count
  }
})

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const msg = JSON.parse(line)
  if (msg.track !== undefined) {
    const counts = { immediate: 0, deferred: 0, ignored: 0 }
    await Promise.all(Array.from({ length: msg.track }, async (_, i) => {
      const r = await tracker.trackEvent('alerts', 'disk', { pid: process.pid, i })
      counts[r.type]++
    }))
    say(counts)
  } else if (msg.get) {
    say((await tracker.getEvent('alerts', 'disk')) ?? null)
  } else if (msg.reset) {
    say({ reset: await tracker.resetEvent('alerts', 'disk') })
  } else if (msg.delivered) {
    say({ delivered })
  } else if (msg.shutdown) {
    await tracker.shutdown()
    say({ delivered })
    process.exit(0)
  }
})
say({ ready: true })
