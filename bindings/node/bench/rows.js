'use strict'

// The Express apps the two Express benches compare: `limiter` names the app's limiter
// in bench/express-server.js; `redis` rows need a redis-server, `needs` lists the
// bench-only packages a row loads.

/** @type {{ limiter: string, label: string, redis?: boolean, needs?: string[] }[]} */
const ROWS = [
  { limiter: 'none', label: 'no limiter' },
  { limiter: 'noop', label: 'a middleware calling next() (the floor)' },
  { limiter: 'headers-only', label: 'two fixed RateLimit headers, no limiting' },
  { limiter: 'tidegate-memory', label: 'tidegate rateLimit, memory' },
  { limiter: 'tidegate-memory-no-headers', label: 'tidegate rateLimit, memory, headers: false' },
  { limiter: 'erl-memory', label: 'express-rate-limit, its MemoryStore' },
  { limiter: 'erl-tidegate-memory', label: 'express-rate-limit + TidegateStore' },
  { limiter: 'tidegate-redis', label: 'tidegate rateLimit, Redis', redis: true },
  { limiter: 'erl-rate-limit-redis', label: 'express-rate-limit + rate-limit-redis', redis: true, needs: ['rate-limit-redis', 'redis'] },
  { limiter: 'erl-tidegate-redis', label: 'express-rate-limit + TidegateStore, Redis', redis: true }
]

module.exports = ROWS
