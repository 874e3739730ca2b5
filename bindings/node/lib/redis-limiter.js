'use strict'

const { awaitNative } = require('./errors')

/**
 * A limiter whose state lives in Redis, shared with every limiter of the same Redis,
 * namespace, name and policies (other processes, `tidegate serve`). Every call returns
 * a Promise; when Redis does not answer within the timeout, `onError` answers.
 */
class RedisLimiter {
  /** @param {any} nativeLimiter */
  constructor (nativeLimiter) {
    this._native = nativeLimiter
  }

  /** The limiter's name. @returns {string} */
  get name () {
    return this._native.name
  }

  /** The policies in short form. @returns {string} */
  get policy () {
    return this._native.policy
  }

  /** Each policy's `{ limit, windowMs }`. */
  quotas () {
    return this._native.quotas()
  }

  /**
   * Decides now for `key`, consuming `cost` (default 1) if admitted.
   * @param {string} key
   * @param {number} [cost]
   * @returns {Promise<import('./limiter').Decision>}
   */
  check (key, cost) {
    return awaitNative(this._native.check(key, cost))
  }

  /**
   * The decision `check` would give, consuming nothing.
   * @param {string} key
   * @param {number} [cost]
   * @returns {Promise<import('./limiter').Decision>}
   */
  peek (key, cost) {
    return awaitNative(this._native.peek(key, cost))
  }

  /**
   * Forgets `key` in Redis; resolves to whether it was held.
   * @param {string} key
   * @returns {Promise<boolean>}
   */
  reset (key) {
    return awaitNative(this._native.reset(key))
  }
}

module.exports = RedisLimiter
