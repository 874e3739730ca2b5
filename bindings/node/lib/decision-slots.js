'use strict'

/** Numbers per decision the engine writes: limit, remaining, retry after (`NaN` when
 * admitted), reset after, delay (`NaN` when none); milliseconds. */
const DECISION_SLOTS = 5

/**
 * The decision whose numbers start at `slots[at]`, shaped as `Limiter.check` answers it.
 * @param {boolean} allowed
 * @param {Float64Array} slots
 * @param {number} at
 * @returns {import('./limiter').Decision}
 */
function decisionFromSlots (allowed, slots, at) {
  /** @type {import('./limiter').Decision} */
  const d = { allowed, limit: slots[at], remaining: slots[at + 1], resetAfter: slots[at + 3] }
  const retryAfter = slots[at + 2]
  const delay = slots[at + 4]
  if (!Number.isNaN(retryAfter)) d.retryAfter = retryAfter
  if (!Number.isNaN(delay)) d.delay = delay
  return d
}

module.exports = { DECISION_SLOTS, decisionFromSlots }
