'use strict'

const BaseStrategy = require('./base-strategy')

/**
 * The first `limit` events of a record are immediate; the next one defers the record
 * for `deferInterval`; once its batch is processed, counting starts again.
 */
class SimpleCounterStrategy extends BaseStrategy {
  static strategyType = 'simple-counter'

  /** @returns {{ kind: 'simple' }} */
  toNative () {
    return { kind: 'simple' }
  }
}

module.exports = SimpleCounterStrategy
