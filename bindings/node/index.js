'use strict'

/**
 * tidegate for Node.js: the event tracker (node-event-throttler's API), Express rate
 * limiting (memory or Redis), an express-rate-limit store and the limiters, on
 * tidegate's engine compiled from Rust.
 *
 * `require('tidegate')` is the `EventTracker` class, as `require('node-event-throttler')`
 * is; everything else is a property of it.
 */

const EventTracker = require('./lib/event-tracker')
const BaseStrategy = require('./lib/strategies/base-strategy')
const SimpleCounterStrategy = require('./lib/strategies/simple-counter-strategy')
const TokenBucketStrategy = require('./lib/strategies/token-bucket-strategy')
const SlidingWindowStrategy = require('./lib/strategies/sliding-window-strategy')
const BaseAdapter = require('./lib/storage/base-adapter')
const InMemoryAdapter = require('./lib/storage/in-memory-adapter')
const RedisAdapter = require('./lib/storage/redis-adapter')
const Limiter = require('./lib/limiter')
const RedisLimiter = require('./lib/redis-limiter')
const { RedisStore, redisStore } = require('./lib/redis-store')
const { rateLimit, rateLimiter } = require('./lib/http/rate-limit')
const TidegateStore = require('./lib/http/express-rate-limit-store')

module.exports = EventTracker
Object.assign(module.exports, {
  EventTracker,
  EventThrottler: EventTracker,
  BaseStrategy,
  SimpleCounterStrategy,
  TokenBucketStrategy,
  SlidingWindowStrategy,
  BaseAdapter,
  InMemoryAdapter,
  RedisAdapter,
  Limiter,
  RedisLimiter,
  RedisStore,
  redisStore,
  rateLimit,
  rateLimiter,
  TidegateStore,
  default: EventTracker
})
