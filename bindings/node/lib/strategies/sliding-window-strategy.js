'use strict'

const BaseStrategy = require('./base-strategy')
const { checkNumber } = require('../validate')

/**
 * Immediate while the sliding-window estimate admits (`limit` events per `windowSize`
 * milliseconds, the previous window weighted by its overlap); otherwise deferred, the
 * batch due `deferInterval` after the first deferral.
 */
class SlidingWindowStrategy extends BaseStrategy {
  static strategyType = 'sliding-window'

  /**
   * @param {{ limit?: number, windowSize?: number }} [options]
   */
  constructor (options = {}) {
    super()
    checkNumber(options, 'limit')
    checkNumber(options, 'windowSize')
    /** Events per window (default 10); it replaces the tracker's `limit`. */
    this.limit = options.limit ?? 10
    /** The window in milliseconds (default 60000). */
    this.windowSize = options.windowSize ?? 60000
  }

  /** @returns {number} */
  get ownLimit () {
    return this.limit
  }

  /** @returns {{ kind: 'sliding_window', windowSize: number }} */
  toNative () {
    return { kind: 'sliding_window', windowSize: this.windowSize }
  }
}

module.exports = SlidingWindowStrategy
