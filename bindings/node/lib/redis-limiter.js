'use strict'

const { awaitNative, translate } = require('./errors')
const { DECISION_SLOTS, decisionFromSlots } = require('./decision-slots')
const { TickBatch } = require('./tick-batch')

/** Numbers per decision in a `checkBatch` answer: admitted (1, 0, `NaN` if failed), then the decision's. */
const BATCH_SLOTS = 1 + DECISION_SLOTS

/**
 * A limiter whose state lives in Redis, shared with every limiter of the same Redis,
 * namespace, name and policies (other processes, `tidegate serve`). Every call returns
 * a Promise; when Redis does not answer within the timeout, `onError` answers.
 */
class RedisLimiter {
  /** @param {any} nativeLimiter */
  constructor (nativeLimiter) {
    this._native = nativeLimiter
    /** Checks waiting for the next `checkBatch` call: keys, costs. */
    this._queued = new TickBatch(2, (columns, settle) => this._sendBatch(columns, settle))
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
    if (typeof key !== 'string' || (cost !== undefined && cost !== null && typeof cost !== 'number')) {
      // Refused by the addon as before, without failing the checks queued beside it.
      return awaitNative(this._native.check(key, cost))
    }
    // The checks of one tick cross into the engine together, in one call with one
    // promise (the store still sends them to Redis in its own batches).
    return this._queued.add(key, cost)
  }

  /**
   * Sends the queued checks in one `checkBatch` call and settles their promises.
   * @param {any[][]} columns keys, costs
   * @param {import('./tick-batch').Settle[]} settle
   */
  async _sendBatch ([keys, costs], settle) {
    const batch = await awaitNative(this._native.checkBatch(keys, costs))
    const { slots, messages, codes } = batch
    let failed = 0
    for (let i = 0; i < settle.length; i++) {
      const at = i * BATCH_SLOTS
      const allowed = slots[at]
      if (Number.isNaN(allowed)) {
        const error = /** @type {Error & { code?: string }} */ (new Error(messages[failed]))
        error.code = codes[failed++]
        settle[i].reject(translate(error))
      } else {
        settle[i].resolve(decisionFromSlots(allowed === 1, slots, at + 1))
      }
    }
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
