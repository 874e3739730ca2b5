// The ES module entry point: the same objects as the CommonJS one.
import tidegate from './index.js'

export const {
  EventTracker,
  EventThrottler,
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
  TidegateStore
} = tidegate

export default tidegate
