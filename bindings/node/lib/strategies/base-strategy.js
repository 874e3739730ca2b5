'use strict'

/**
 * What every tracker strategy is: it decides, per record, which events are immediate
 * and when a deferred batch is due. The decisions run in tidegate's engine.
 */
class BaseStrategy {
  /**
   * The strategy as the engine takes it.
   * @returns {{ kind: string, bucketSize?: number, refillRate?: number, windowSize?: number }}
   */
  toNative () {
    throw new TypeError('strategy must be a SimpleCounterStrategy, TokenBucketStrategy or SlidingWindowStrategy.')
  }

  /**
   * The events per record the strategy sets, if it sets one (the sliding window does).
   * @returns {number | undefined}
   */
  get ownLimit () {
    return undefined
  }
}

module.exports = BaseStrategy
