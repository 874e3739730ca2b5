'use strict'

const native = require('./native')
const { callNative } = require('./errors')

/**
 * @typedef {object} Decision
 * @property {boolean} allowed Whether the request was admitted (and its cost consumed).
 * @property {number} limit The policy's limit (the binding policy's, when several).
 * @property {number} remaining Cost that could still be admitted now.
 * @property {number} [retryAfter] ms until this cost could be admitted; absent when admitted.
 * @property {number} resetAfter ms until the full quota is back.
 * @property {number} [delay] For `leaky_bucket`: ms the admitted request waits; absent otherwise.
 */

/**
 * Any tidegate policy (or several on one key, all admitting and consuming together),
 * decided in this process's memory, synchronously.
 */
class Limiter {
  /**
   * @param {string | string[]} policy e.g. `"token_bucket:100/1m,burst=20"`,
   *   `"gcra:10/1s;fixed_window:1000/1d"`
   * @param {{ maxKeys?: number }} [options] `maxKeys`: most keys held (default 10 million)
   */
  constructor (policy, options) {
    this._native = callNative(() => new native.Limiter(policy, options))
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
   * @returns {Decision}
   */
  check (key, cost) {
    return callNative(() => this._native.check(key, cost))
  }

  /**
   * The decision `check` would give, consuming nothing.
   * @param {string} key
   * @param {number} [cost]
   * @returns {Decision}
   */
  peek (key, cost) {
    return callNative(() => this._native.peek(key, cost))
  }

  /**
   * Forgets `key`; returns whether it was held.
   * @param {string} key
   * @returns {boolean}
   */
  reset (key) {
    return callNative(() => this._native.reset(key))
  }

  /** Keys held. @returns {number} */
  keyCount () {
    return this._native.keyCount()
  }
}

module.exports = Limiter
