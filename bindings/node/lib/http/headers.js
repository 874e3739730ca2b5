'use strict'

/**
 * IETF `RateLimit` values (draft-ietf-httpapi-ratelimit-headers) and `Retry-After`
 * seconds, written by the engine's formatter, the one `tidegate serve` uses: the same
 * text from both.
 */

const native = require('../native')

/**
 * The `RateLimit` value of a decision: `"name";r=REMAINING;t=RESET_SECONDS`.
 * @param {string} name
 * @param {{ remaining: number, resetAfter: number }} decision
 * @returns {string}
 */
function rateLimitValue (name, decision) {
  return native.rateLimitValue(name, decision.remaining, decision.resetAfter)
}

/**
 * `Retry-After` seconds for a denied decision: the wait rounded up, at least 1.
 * @param {{ retryAfter?: number }} decision
 * @returns {number}
 */
function retryAfterSeconds (decision) {
  return native.retryAfterSeconds(decision.retryAfter ?? 0)
}

module.exports = { rateLimitValue, retryAfterSeconds }
