#!/usr/bin/env node
// BullMQ side of tidegate's work-queue benchmark (see README.md and scripts/bench-queue).
//
//   node bench.mjs --redis redis://127.0.0.1:PORT --test noop --jobs N --concurrency C
//   node bench.mjs --redis redis://127.0.0.1:PORT --test rate --rate R --seconds 10
//
// Prints exactly one JSON line on stdout; progress and errors go to stderr.
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';

const USAGE = `usage: bench.mjs --redis URL --test noop [--jobs N] [--concurrency C]
       bench.mjs --redis URL --test rate [--rate R] [--seconds S] [--concurrency C] [--limiter spaced|window]
options: --keep N (removeOnComplete count, default 1000), --timeout SECS (default 60)`;

function parseArgs(argv) {
  const opts = {
    redis: 'redis://127.0.0.1:6379',
    test: 'noop',
    jobs: 20000,
    concurrency: null, // per test default below
    rate: 50,
    seconds: 10,
    limiter: 'spaced',
    keep: 1000,
    timeout: 60,
  };
  const numeric = new Set(['jobs', 'concurrency', 'rate', 'seconds', 'keep', 'timeout']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1] in opts)) fail(`unknown argument ${arg}\n${USAGE}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) fail(`missing value for --${m[1]}`);
    if (numeric.has(m[1])) {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) fail(`--${m[1]} must be a positive number, got ${value}`);
      opts[m[1]] = n;
    } else {
      opts[m[1]] = value;
    }
  }
  if (!['noop', 'rate'].includes(opts.test)) fail(`--test must be noop or rate, got ${opts.test}`);
  if (!['spaced', 'window'].includes(opts.limiter)) fail(`--limiter must be spaced or window`);
  for (const k of ['jobs', 'concurrency', 'seconds', 'keep']) {
    if (opts[k] !== null && !Number.isInteger(opts[k])) fail(`--${k} must be an integer`);
  }
  opts.concurrency ??= opts.test === 'noop' ? 1 : 50;
  return opts;
}

function fail(msg) {
  console.error(`bench.mjs: ${msg}`);
  process.exit(2);
}

/** redis://[user:pass@]host:port[/db] -> ioredis connection options (BullMQ opens its own). */
function connectionFromUrl(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    fail(`invalid --redis URL ${url}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') fail(`--redis must be redis:// or rediss://`);
  const conn = {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    // Fail fast instead of retrying forever when the server is unreachable.
    retryStrategy: (times) => (times > 3 ? null : 200),
    maxRetriesPerRequest: null, // required by BullMQ workers
  };
  if (u.username) conn.username = decodeURIComponent(u.username);
  if (u.password) conn.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (db) conn.db = Number(db);
  if (u.protocol === 'rediss:') conn.tls = {};
  return conn;
}

const opts = parseArgs(process.argv.slice(2));
const connection = connectionFromUrl(opts.redis);
const queueName = `tidegate-bench-${opts.test}-${process.pid}-${Date.now()}`;
// Fair retention: tidegate counts completed jobs and keeps the last N; BullMQ's equivalent
// is removeOnComplete {count: N} (trimmed inside the same Lua script that completes the job).
const jobOpts = { removeOnComplete: { count: opts.keep }, removeOnFail: { count: opts.keep } };
const log = (...a) => console.error('[bullmq]', ...a);

let queue;
let worker;

async function addJobs(n) {
  const CHUNK = 1000;
  for (let i = 0; i < n; i += CHUNK) {
    const bulk = [];
    for (let j = i; j < Math.min(n, i + CHUNK); j++) bulk.push({ name: 'job', data: { i: j }, opts: jobOpts });
    await queue.addBulk(bulk);
  }
}

/** Resolves when `count()` reaches `target`, checked on every worker 'completed' event. */
function completedCounter(w, target) {
  let done = 0;
  let resolve;
  const finished = new Promise((r) => (resolve = r));
  w.on('completed', () => {
    if (++done === target) resolve(performance.now());
  });
  return { finished, done: () => done };
}

async function noop() {
  const { jobs: n, concurrency } = opts;
  await addJobs(n);
  log(`queued ${n} jobs on ${queueName}; processing with concurrency ${concurrency}`);
  worker = new Worker(queueName, async () => {}, { connection, concurrency, autorun: false });
  worker.on('error', (e) => log('worker error:', e.message));
  await worker.waitUntilReady();
  const counter = completedCounter(worker, n);
  // Timed: from worker start (connections already open, n jobs already waiting) to the
  // n-th local 'completed' event, i.e. the n-th moveToFinished acknowledged by Redis.
  const t0 = performance.now();
  worker.run().catch((e) => log('worker.run failed:', e.message));
  const t1 = await counter.finished;
  const seconds = (t1 - t0) / 1000;
  return {
    system: 'bullmq',
    test: 'noop',
    concurrency,
    jobs: n,
    seconds: round(seconds, 3),
    jobs_per_s: round(n / seconds, 1),
  };
}

async function rate() {
  const { rate: r, seconds, concurrency } = opts;
  // 'spaced' = one start per 1000/R ms window: starts spread evenly, the closest BullMQ
  // gets to a GCRA with burst 1. 'window' = R starts per 1 s window: allows bursts of R.
  const limiter = opts.limiter === 'spaced' ? { max: 1, duration: 1000 / r } : { max: r, duration: 1000 };
  // More jobs than the limiter can start in the window, so the queue never runs dry.
  const n = Math.ceil(r * (seconds + 3)) + 100;
  await addJobs(n);
  log(`queued ${n} jobs on ${queueName}; limiter ${JSON.stringify(limiter)}, concurrency ${concurrency}`);
  const starts = [];
  worker = new Worker(
    queueName,
    async () => {
      starts.push(performance.now());
    },
    { connection, concurrency, limiter, autorun: false },
  );
  worker.on('error', (e) => log('worker error:', e.message));
  await worker.waitUntilReady();
  worker.run().catch((e) => log('worker.run failed:', e.message));
  // Wait for the first start, then for the whole measured span plus a margin.
  while (starts.length === 0) await sleep(5);
  await sleep(seconds * 1000 + 300);
  const first = starts[0];
  const perSecond = new Array(seconds).fill(0);
  for (const t of starts) {
    const k = Math.floor((t - first) / 1000);
    if (k < seconds) perSecond[k]++;
  }
  const maxDev = Math.max(...perSecond.map((c) => Math.abs(c - r)));
  return { system: 'bullmq', test: 'rate', rate: r, per_second: perSecond, max_dev: round(maxDev, 3) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;

async function cleanup() {
  if (worker) await worker.close(true).catch((e) => log('worker close:', e.message));
  if (queue) {
    await queue.obliterate({ force: true }).catch((e) => log('obliterate:', e.message));
    // obliterate leaves the rate limiter's counter (it expires within one window anyway).
    await queue.backend.client.then((c) => c.del(queue.keys.limiter)).catch((e) => log('del limiter:', e.message));
    await queue.close().catch((e) => log('queue close:', e.message));
  }
}

const watchdog = setTimeout(async () => {
  log(`timed out after ${opts.timeout}s`);
  await Promise.race([cleanup(), sleep(3000)]);
  process.exit(1);
}, opts.timeout * 1000);
watchdog.unref();

try {
  queue = new Queue(queueName, { connection });
  queue.on('error', (e) => log('queue error:', e.message));
  await queue.waitUntilReady();
  const result = opts.test === 'noop' ? await noop() : await rate();
  await cleanup();
  clearTimeout(watchdog);
  console.log(JSON.stringify(result));
} catch (e) {
  log('failed:', e?.message ?? e);
  await Promise.race([cleanup(), sleep(3000)]);
  process.exit(1);
}
