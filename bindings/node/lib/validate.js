'use strict'

/**
 * Checks of the options a user passes, with node-event-throttler's messages: a
 * non-number is a `TypeError`, a negative number a `RangeError`. Values the engine
 * refuses beyond that (a zero deferral, a rate below 0.001/s) are refused by it, with
 * its own message.
 */

/**
 * Throws unless `options[field]` is absent or a non-negative number.
 * @param {Record<string, unknown>} options
 * @param {string} field
 */
function checkNumber (options, field) {
  const value = options[field]
  if (value === undefined) return
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`${field} must be a number.`)
  }
  if (value < 0) {
    throw new RangeError(`${field} must be non-negative.`)
  }
}

/**
 * Throws unless `options[field]` is absent or a function.
 * @param {Record<string, unknown>} options
 * @param {string} field
 */
function checkFunction (options, field) {
  const value = options[field]
  if (value !== undefined && typeof value !== 'function') {
    throw new TypeError(`${field} must be a function.`)
  }
}

module.exports = { checkNumber, checkFunction }
