'use strict'

const Limiter = require('../limiter')
const { RedisStore } = require('../redis-store')
const { translate } = require('../errors')
const { DECISION_SLOTS } = require('../decision-slots')

/** The counter's quota: large enough that express-rate-limit, not the counter, decides. */
const COUNTER_LIMIT = 1e15

/**
 * A `Store` for express-rate-limit: `rateLimit({ windowMs, limit, store: new
 * TidegateStore() })`. It counts each client's hits per window with tidegate's
 * `fixed_window` (windows aligned to multiples of `windowMs` since the Unix epoch), in
 * memory or, with `{ store: redisStore({ url }) }`, in Redis shared by every process;
 * express-rate-limit compares the count with its `limit` as it does with its own stores.
 */
class TidegateStore {
  /**
   * @param {{ store?: RedisStore, name?: string }} [options] `store`: share the counts
   *   through Redis; `name`: the counter's name in Redis keys (default `"express-rate-limit"`).
   */
  constructor (options = {}) {
    if (options.store !== undefined && !(options.store instanceof RedisStore)) {
      throw new TypeError('store must come from redisStore({ url }) (leave it out for memory).')
    }
    this._redis = options.store ?? null
    this._name = options.name ?? 'express-rate-limit'
    /** Counts of one process only (memory) or shared (Redis). */
    this.localKeys = this._redis === null
    this._windowMs = 60000
    /** @type {any} */
    this._limiter = null
    /** In memory: where the limiter's one-call check writes each hit's numbers. */
    this._slots = this._redis === null ? new Float64Array(DECISION_SLOTS) : null
    /** @type {((key: string) => boolean) | null} In memory: that check (cost 1). */
    this._check = null
    /** @type {Promise<any> | null} */
    this._ready = null
    /** Hits given back by `decrement`, per key, in this process: `{ windowEnd, count }`. */
    this._returned = new Map()
  }

  /**
   * Called by express-rate-limit with its options: takes `windowMs`.
   * @param {{ windowMs?: number }} options
   */
  init (options) {
    this._windowMs = options.windowMs ?? 60000
    const policy = `fixed_window:${COUNTER_LIMIT}/${this._windowMs}ms`
    if (this._redis === null) {
      this._limiter = new Limiter(policy)
      this._check = this._limiter._native.checker(this._slots)
      this._ready = Promise.resolve(this._limiter)
    } else {
      this._ready = this._redis.limiter(this._name, policy)
      this._ready.then((l) => { this._limiter = l }, () => {})
    }
  }

  /** @returns {Promise<any>} */
  async _get () {
    if (this._ready === null) this.init({})
    return this._limiter ?? this._ready
  }

  /**
   * Hits given back for `key` in the window ending at `windowEnd`.
   * @param {string} key
   * @param {number} windowEnd
   */
  _given (key, windowEnd) {
    const r = this._returned.get(key)
    if (r === undefined) return 0
    if (Math.abs(r.windowEnd - windowEnd) > 1) {
      this._returned.delete(key)
      return 0
    }
    return r.count
  }

  /**
   * The count from a decision's `remaining` and `resetAfter` (ms): `check` answers
   * after counting the hit, `peek` as if it had (`peeked`: one hit less).
   * @param {string} key
   * @param {number} remaining
   * @param {number} resetAfter
   * @param {boolean} peeked
   */
  _count (key, remaining, resetAfter, peeked) {
    const windowEnd = Math.round(Date.now() + resetAfter)
    const used = COUNTER_LIMIT - remaining - (peeked ? 1 : 0) - this._given(key, windowEnd)
    return { totalHits: Math.max(0, used), resetTime: new Date(windowEnd) }
  }

  /**
   * Counts one hit of `key`.
   * @param {string} key
   * @returns {Promise<{ totalHits: number, resetTime: Date }>}
   */
  async increment (key) {
    if (this._ready === null) this.init({})
    const check = this._check
    if (check !== null) {
      // In memory: one light call into the addon, its numbers in the slots.
      try {
        check(key)
      } catch (error) {
        throw translate(error)
      }
      const slots = /** @type {Float64Array} */ (this._slots)
      return this._count(key, slots[1], slots[3], false)
    }
    const limiter = await this._get()
    const d = await limiter.check(key, 1)
    return this._count(key, d.remaining, d.resetAfter, false)
  }

  /**
   * Gives one hit of `key` back (counted by this process).
   * @param {string} key
   */
  async decrement (key) {
    const limiter = await this._get()
    const d = await limiter.peek(key, 1)
    const windowEnd = Math.round(Date.now() + d.resetAfter)
    const count = this._given(key, windowEnd) + 1
    if (COUNTER_LIMIT - d.remaining - 1 >= count) this._returned.set(key, { windowEnd, count })
  }

  /**
   * The hits of `key` in the current window, or `undefined` when it has none.
   * @param {string} key
   * @returns {Promise<{ totalHits: number, resetTime: Date } | undefined>}
   */
  async get (key) {
    const limiter = await this._get()
    const d = await limiter.peek(key, 1)
    const info = this._count(key, d.remaining, d.resetAfter, true)
    return info.totalHits === 0 ? undefined : info
  }

  /**
   * Forgets `key`'s hits.
   * @param {string} key
   */
  async resetKey (key) {
    const limiter = await this._get()
    this._returned.delete(key)
    await limiter.reset(key)
  }
}

module.exports = TidegateStore
