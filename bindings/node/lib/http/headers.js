'use strict'

/**
 * IETF `RateLimit-Policy` / `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers)
 * and `Retry-After`, formatted as tidegate's HTTP layer and `tidegate serve` do.
 */

/**
 * `name` as a structured-field string: `"` and `\` escaped, other bytes outside
 * printable ASCII replaced by `_`.
 * @param {string} name
 * @returns {string}
 */
function sfString (name) {
  return `"${name.replace(/["\\]/g, '\\$&').replace(/[^ -~]/g, '_')}"`
}

/**
 * Milliseconds as whole seconds, rounded up.
 * @param {number} ms
 * @returns {number}
 */
function secondsCeil (ms) {
  return Math.ceil(Math.round(ms * 1000) / 1e6)
}

/**
 * The `RateLimit-Policy` value: one `"name";q=LIMIT;w=WINDOW_SECONDS` per policy.
 * @param {string} name
 * @param {{ limit: number, windowMs: number }[]} quotas
 * @returns {string}
 */
function policyHeader (name, quotas) {
  return quotas
    .map((q, i) => `${sfString(i === 0 ? name : `${name}-${i + 1}`)};q=${q.limit};w=${secondsCeil(q.windowMs)}`)
    .join(', ')
}

/**
 * `Retry-After` seconds for a denied decision: the wait rounded up, at least 1.
 * @param {{ retryAfter?: number }} decision
 * @returns {number}
 */
function retryAfterSeconds (decision) {
  return Math.max(1, secondsCeil(decision.retryAfter ?? 0))
}

module.exports = { sfString, policyHeader, retryAfterSeconds, secondsCeil }
