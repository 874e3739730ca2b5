'use strict'

// What each limiter costs an Express app in instructions per request, counted by
// valgrind's callgrind: a count the machine's load barely moves (run it on an idle
// machine all the same: a busy one moved it by about 1.5 %), where the req/s of
// bench/express.js spread over several points from one run to the next on a shared VM.
// Each row's app (bench/express-server.js) runs under callgrind; this process sends it
// WARMUP requests in CYCLES turns, each over connections of its own (the JIT settles,
// also on the paths that close and open connections), zeroes the counters
// (`callgrind_control -z`), sends REQUESTS more over new connections, dumps the counters
// (`-d`) and divides by REQUESTS. With one turn, the counted requests' new connections
// made V8 drop and recompile the request path's optimized code (types it had not seen on
// closed sockets): 60 k instructions a request of compiling in the count, 10 % of it,
// and about 5 k more for a row that reads `req.socket`. Every thread of the process is
// counted: the JIT compilers and the garbage collector too. The rows run ROUNDS times,
// JOBS at a time; each row reports the median over rounds and its cost against the
// no-limiter app of the same round.
//
// An instruction count is not time: it leaves out cache misses and stalls, so it is a
// check on the req/s figures, not a replacement. CACHE=1 simulates the caches too
// (callgrind's --cache-sim, slower): L1 and last-level misses per request and the cycles
// they estimate. Needs valgrind (callgrind and callgrind_control) on PATH; the memory
// rows only (a Redis row's wait is not counted). ROUNDS= (3), JOBS= (2), WARMUP= (6000),
// CYCLES= (3), REQUESTS= (5000), CONNECTIONS= (8), ONLY= (rows besides `none`,
// comma-separated). Under valgrind an app answers about 200 requests per second: with
// the defaults a row takes about a minute. Not a test: it prints figures.

const { spawn, spawnSync, execFile } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const JOBS = Number(process.env.JOBS ?? 2)
const WARMUP = Number(process.env.WARMUP ?? 6000)
/** Turns of the warm-up, each over new connections. */
const CYCLES = Number(process.env.CYCLES ?? 3)
const REQUESTS = Number(process.env.REQUESTS ?? 5000)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 8)
/** Simulate the caches too (callgrind's --cache-sim): misses and estimated cycles. */
const CACHE = process.env.CACHE === '1'
const SERVER = path.join(__dirname, 'express-server.js')

/** The memory rows: under callgrind a Redis row's wait is not counted. */
const ROWS = require('./rows').filter((row) => !row.redis)

/**
 * Sends `count` GET / to `port` over CONNECTIONS keep-alive connections.
 * @param {number} port
 * @param {number} count
 * @returns {Promise<void>}
 */
function send (port, count) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS })
  let sent = 0
  let answered = 0
  return new Promise((resolve, reject) => {
    const one = () => {
      if (sent === count) return
      sent++
      http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`))
        res.resume()
        res.on('end', () => {
          answered++
          if (answered === count) {
            agent.destroy()
            resolve()
          } else {
            one()
          }
        })
      }).on('error', reject)
    }
    for (let i = 0; i < Math.min(CONNECTIONS, count); i++) one()
  })
}

/**
 * Runs callgrind_control with `args`.
 * @param {string[]} args
 * @returns {Promise<void>}
 */
function control (args) {
  return new Promise((resolve, reject) => {
    execFile('callgrind_control', args, (error) => (error ? reject(error) : resolve()))
  })
}

/**
 * @typedef {Record<string, number>} Counts callgrind's events per request, and with
 *   CACHE the estimated cycles (`Ir + 10 × L1 misses + 100 × last-level misses`, the
 *   estimate KCachegrind shows).
 */

/**
 * The events per request of a callgrind dump, by name (`Ir`, and with the cache
 * simulation `I1mr`, `D1mr`, `ILmr`... and `cycles`).
 * @param {string} text
 * @returns {Counts}
 */
function eventsPerRequest (text) {
  const names = /^events: (.+)$/m.exec(text)?.[1].trim().split(/\s+/)
  const values = /^summary: (.+)$/m.exec(text)?.[1].trim().split(/\s+/).map(Number)
  if (names === undefined || values === undefined) throw new Error('no events or summary line')
  /** @type {Counts} */
  const counts = {}
  names.forEach((name, i) => { counts[name] = (values[i] ?? 0) / REQUESTS })
  if (CACHE) {
    const l1 = counts.I1mr + counts.D1mr + counts.D1mw
    const ll = counts.ILmr + counts.DLmr + counts.DLmw
    counts.cycles = counts.Ir + 10 * l1 + 100 * ll
    counts.l1 = l1
    counts.ll = ll
  }
  return counts
}

/**
 * The app with `limiter` under callgrind: its events per request over REQUESTS
 * requests after WARMUP (in CYCLES turns).
 * @param {string} limiter
 * @param {string} dir
 * @returns {Promise<Counts>}
 */
async function countRequests (limiter, dir) {
  const out = path.join(dir, `${limiter}.%p`)
  const child = spawn('valgrind', [
    '--tool=callgrind', `--callgrind-out-file=${out}`, '--dump-instr=no',
    ...(CACHE ? ['--cache-sim=yes'] : []),
    process.execPath, SERVER, limiter
  ], { stdio: ['ignore', 'pipe', 'ignore'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    const line = await new Promise((resolve, reject) => {
      readline.createInterface({ input: /** @type {any} */ (child.stdout) }).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`${limiter}: the app exited (${code})`)))
    })
    const { port } = JSON.parse(line)
    const pid = String(child.pid)
    for (let turn = 0; turn < CYCLES; turn++) await send(port, Math.ceil(WARMUP / CYCLES))
    await control(['-z', pid])
    await send(port, REQUESTS)
    await control(['-d', pid])
    return eventsPerRequest(fs.readFileSync(path.join(dir, `${limiter}.${pid}.1`), 'utf8'))
  } finally {
    child.kill('SIGKILL')
    await exited
  }
}

/** @param {number[]} values */
function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function main () {
  for (const tool of ['valgrind', 'callgrind_control']) {
    if (spawnSync(tool, ['--help']).error !== undefined) {
      console.error(`${tool} is not on PATH (Debian: apt-get install valgrind)`)
      process.exit(2)
    }
  }
  const only = process.env.ONLY?.split(',') ?? null
  const rows = ROWS.filter((row) => only === null || row.limiter === 'none' || only.includes(row.limiter))
  console.log(`Express ${require('express/package.json').version} under callgrind, ${WARMUP} requests to warm up in ${CYCLES} turns of new connections, then ${REQUESTS} counted over ${CONNECTIONS} connections; median of ${ROUNDS} rounds, ${JOBS} apps at a time (node ${process.version})`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidegate-callgrind-'))
  const measures = CACHE
    ? [['Ir', 'k instructions'], ['cycles', 'k cycles (estimated)'], ['l1', 'L1 misses'], ['ll', 'LL misses']]
    : [['Ir', 'k instructions']]
  try {
    const runs = []
    for (let round = 0; round < ROUNDS; round++) {
      for (const row of rows) runs.push({ round, limiter: row.limiter })
    }
    /** @type {Map<string, Counts>} */
    const byRun = new Map()
    let next = 0
    const worker = async () => {
      while (next < runs.length) {
        const run = runs[next++]
        const counts = await countRequests(run.limiter, dir)
        byRun.set(`${run.round} ${run.limiter}`, counts)
        console.error(`round ${run.round + 1} ${run.limiter}: ${(counts.Ir / 1000).toFixed(1)} k instructions/request`)
      }
    }
    await Promise.all(Array.from({ length: JOBS }, worker))
    /**
     * @param {string} limiter
     * @param {string} event
     */
    const series = (limiter, event) => Array.from({ length: ROUNDS }, (_, round) =>
      /** @type {Counts} */ (byRun.get(`${round} ${limiter}`))[event])
    for (const row of rows) {
      const parts = measures.map(([event, unit]) => {
        const mine = series(row.limiter, event)
        const scale = unit.startsWith('k ') ? 1000 : 1
        let text = `${(median(mine) / scale).toFixed(1)} ${unit} (${mine.map((n) => (n / scale).toFixed(1)).join(', ')})`
        if (row.limiter !== 'none') {
          const none = series('none', event)
          const paired = mine.map((n, round) => (100 * (n / none[round] - 1)).toFixed(1))
          text += ` ${(100 * (median(mine) / median(none) - 1)).toFixed(1)} % more (by round ${paired.join(', ')} %)`
        }
        return text
      })
      console.log(`${row.label.padEnd(44)} per request: ${parts.join('; ')}`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
