'use strict'

// Express requests per second on loopback, the load generator (wrk, or autocannon when
// wrk is not on PATH) in a process of its own and each Express app in another
// (bench/express-server.js): no limiter; tidegate's rateLimit in memory and through
// Redis; express-rate-limit with its memory store, with rate-limit-redis and with
// tidegate's store. The Redis rows need redis-server on PATH (started here on a free
// port) and, for rate-limit-redis, the bench-only packages:
//   npm install --no-save rate-limit-redis redis@4
// Each row runs ROUNDS times, the rows alternating. In each round a row's app and a
// no-limiter app run side by side, and the load goes to one, then the other, in slices
// of SLICE seconds (no limiter, row, row, no limiter, ...: DURATION seconds of each),
// so that both meet the same moments of a machine whose speed drifts. A row reports
// its median req/s, the median over rounds of its cost against the no-limiter slices
// of its round, and the Express process's CPU time per request (from /proc, on Linux)
// against theirs. These runs mount the limiter as an app does. In the first three
// rounds each row also runs for 2 s with the limiter timed (TIMED=1 in
// bench/express-server.js): the time from entering it to its next() per request,
// against the no-limiter CPU per request.
// DURATION= (seconds per row and round), SLICE=, CONNECTIONS=, ROUNDS=, ONLY= (limiters
// to run besides `none`, comma-separated: see bench/express-server.js). Not a test: it
// prints figures.

const { spawn, spawnSync, execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { startRedis } = require('../test/support/redis-server')

const DURATION = Number(process.env.DURATION ?? 5)
const SLICE = Number(process.env.SLICE ?? 1)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
/** Rounds in which each limiter is also timed to its next(). */
const OWN_ROUNDS = 3
const SERVER = path.join(__dirname, 'express-server.js')

const ROWS = require('./rows')

const wrk = spawnSync('wrk', ['--version']).error === undefined

/** @param {string} name */
function installed (name) {
  try {
    require.resolve(name)
    return true
  } catch {
    return false
  }
}

/**
 * Starts bench/express-server.js with `limiter` (timed when `timed`); resolves once it
 * answered a request.
 * @param {string} limiter
 * @param {string} redisUrl
 * @param {boolean} [timed]
 */
async function startServer (limiter, redisUrl, timed = false) {
  const child = spawn(process.execPath, [SERVER, limiter], {
    env: { ...process.env, REDIS_URL: redisUrl, TIMED: timed ? '1' : '0' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: /** @type {any} */ (child.stdout) }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`${limiter}: the server exited (${code})`)))
  })
  const url = `http://127.0.0.1:${JSON.parse(line).port}/`
  // The first answer (the Redis connection opens on first use) before any timed run.
  for (let tries = 0; ; tries++) {
    const res = await fetch(url).catch(() => null)
    if (res !== null && res.status === 200) break
    if (tries > 100) throw new Error(`${limiter}: no 200 from ${url}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    url,
    pid: /** @type {number} */ (child.pid),
    stop: async () => {
      child.kill('SIGKILL')
      await exited
    }
  }
}

/**
 * CPU time (user + system, in clock ticks of 1/100 s) the process `pid` used so far,
 * or NaN where /proc is not there.
 * @param {number} pid
 */
function cpuTicks (pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return NaN
  }
}

/**
 * Runs the load generator against `url` for `seconds`.
 * @param {string} url
 * @param {number} seconds
 * @returns {Promise<{ perSecond: number, requests: number, errors: number }>}
 */
function load (url, seconds) {
  return new Promise((resolve, reject) => {
    if (wrk) {
      execFile('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, url], (error, stdout) => {
        if (error) return reject(error)
        const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
        const requests = Number(/(\d+) requests in/.exec(stdout)?.[1])
        const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0) +
          Number(/Socket errors:.*?(\d+)/.exec(stdout)?.[1] ?? 0)
        resolve({ perSecond, requests, errors })
      })
    } else {
      const bin = require.resolve('autocannon/autocannon.js')
      execFile(process.execPath, [bin, '-j', '-c', String(CONNECTIONS), '-d', String(seconds), url],
        { maxBuffer: 1 << 24 }, (error, stdout) => {
          if (error) return reject(error)
          const r = JSON.parse(stdout)
          resolve({ perSecond: r.requests.average, requests: r.requests.total, errors: r.non2xx + r.errors })
        })
    }
  })
}

/**
 * @typedef {{ rates: number[], cpu: number[], cost: number[], cpuCost: number[], own: number[], errors: number }} Result
 * @typedef {{ url: string, pid: number, stop: () => Promise<void> }} Server
 */

/**
 * Loads `a` and `b` in turns of SLICE seconds (a, b, b, a, a, b, ...), DURATION
 * seconds each, and answers each one's req/s, CPU µs per request and errors.
 * @param {Server} a
 * @param {Server} b
 * @returns {Promise<{ perSecond: number, cpu: number, errors: number }[]>}
 */
async function sideBySide (a, b) {
  const sums = [a, b].map(() => ({ requests: 0, seconds: 0, ticks: 0, errors: 0 }))
  const slices = Math.max(1, Math.round(DURATION / SLICE))
  for (let i = 0; i < slices; i++) {
    for (const which of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const server = which === 0 ? a : b
      const sum = sums[which]
      const before = cpuTicks(server.pid)
      const r = await load(server.url, SLICE)
      sum.ticks += cpuTicks(server.pid) - before
      sum.requests += r.requests
      sum.seconds += r.requests / r.perSecond
      sum.errors += r.errors
    }
  }
  return sums.map((sum) => ({
    perSecond: sum.requests / sum.seconds,
    cpu: sum.ticks * 10000 / sum.requests,
    errors: sum.errors
  }))
}

/** @param {number} x */
function signed (x) {
  return `${x >= 0 ? '+' : ''}${x.toFixed(1)}`
}

/**
 * The first and third quartiles of `values`, as `q1 to q3`.
 * @param {number[]} values
 */
function quartiles (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (/** @type {number} */ q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return `${at(0.25).toFixed(1)} to ${at(0.75).toFixed(1)}`
}

/** @param {number[]} values */
function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function main () {
  const generator = wrk ? 'wrk -t1' : 'autocannon (a process of its own)'
  console.log(`Express ${require('express/package.json').version}, ${generator}, ${CONNECTIONS} connections, ${DURATION} s of each app per round in ${SLICE} s slices beside no limiter, median of ${ROUNDS} rounds (node ${process.version})`)
  let redis = null
  try {
    redis = await startRedis()
  } catch {
    console.log('redis-server not available: the Redis rows are skipped')
  }
  const only = process.env.ONLY?.split(',') ?? null
  const rows = ROWS.filter((row) => {
    if (only !== null && row.limiter !== 'none' && !only.includes(row.limiter)) return false
    if (row.redis && redis === null) return false
    const missing = (row.needs ?? []).filter((name) => !installed(name))
    if (missing.length > 0) console.log(`${row.label}: skipped (${missing.join(', ')} not installed)`)
    return missing.length === 0
  })
  /** @type {Map<string, Result>} */
  const results = new Map(rows.map((row) => [row.limiter, { rates: [], cpu: [], cost: [], cpuCost: [], own: [], errors: 0 }]))
  const base = /** @type {Result} */ (results.get('none'))
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const row of rows) {
        if (row.limiter === 'none') continue
        const none = await startServer('none', '')
        const server = await startServer(row.limiter, redis?.url ?? '')
        try {
          // Warm-up, two turns of new connections: after one, V8 recompiles the request
          // path once connections close and new ones open, in the first counted slice.
          for (let turn = 0; turn < 2; turn++) {
            await load(none.url, 1)
            await load(server.url, 1)
          }
          const [b, r] = await sideBySide(none, server)
          const result = /** @type {Result} */ (results.get(row.limiter))
          base.rates.push(Math.round(b.perSecond))
          base.cpu.push(b.cpu)
          result.rates.push(Math.round(r.perSecond))
          result.cpu.push(r.cpu)
          result.cost.push(100 * (1 - r.perSecond / b.perSecond))
          result.cpuCost.push(100 * (r.cpu / b.cpu - 1))
          result.errors += r.errors
        } finally {
          await server.stop()
          await none.stop()
        }
        if (round < OWN_ROUNDS) {
          const timed = await startServer(row.limiter, redis?.url ?? '', true)
          try {
            await load(timed.url, 2)
            const own = await (await fetch(`${timed.url}own-time`)).json()
            const result = /** @type {Result} */ (results.get(row.limiter))
            result.own.push(own.requests > 0 ? own.ns / own.requests / 1000 : 0)
          } finally {
            await timed.stop()
          }
        }
      }
    }
  } finally {
    if (redis !== null) await redis.stop()
  }
  const baseCpu = median(base.cpu)
  for (const row of rows) {
    const r = /** @type {Result} */ (results.get(row.limiter))
    let cost = ''
    let runs = `runs ${r.rates.join(', ')}`
    if (row.limiter === 'none') {
      runs = `${r.rates.length} runs, ${Math.min(...r.rates)}-${Math.max(...r.rates)}`
    } else {
      const own = median(r.own)
      cost = `  cost ${median(r.cost).toFixed(1)} % (paired by round, middle half ${quartiles(r.cost)} %); CPU ${signed(median(r.cpuCost))} % (${quartiles(r.cpuCost)} %); to next() ${own.toFixed(1)} µs = ${(100 * own / baseCpu).toFixed(1)} % of no limiter's CPU/req`
    }
    console.log(`${row.label.padEnd(44)} ${String(median(r.rates)).padStart(7)} req/s  (${runs})  ${median(r.cpu).toFixed(0)} µs CPU/req${cost}${r.errors ? `  ${r.errors} errors/non-2xx` : ''}`)
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
