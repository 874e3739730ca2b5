'use strict'

const BaseStrategy = require('./base-strategy')
const { checkNumber } = require('../validate')

/**
 * Immediate while a token is available: a bucket of `bucketSize` tokens (starts full)
 * refilling at `refillRate` tokens per second (exact to 0.001/s); otherwise the event
 * is deferred until the next token.
 */
class TokenBucketStrategy extends BaseStrategy {
  static strategyType = 'token-bucket'

  /**
   * @param {{ bucketSize?: number, refillRate?: number }} [options]
   */
  constructor (options = {}) {
    super()
    checkNumber(options, 'bucketSize')
    checkNumber(options, 'refillRate')
    /** Tokens the bucket holds (default 10). */
    this.bucketSize = options.bucketSize ?? 10
    /** Tokens added per second (default 1). */
    this.refillRate = options.refillRate ?? 1
  }

  /** @returns {{ kind: 'token_bucket', bucketSize: number, refillRate: number }} */
  toNative () {
    return { kind: 'token_bucket', bucketSize: this.bucketSize, refillRate: this.refillRate }
  }
}

module.exports = TokenBucketStrategy
