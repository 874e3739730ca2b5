'use strict'

/**
 * @typedef {object} EventRecord
 * @property {string} category The record's category.
 * @property {string} id The identifier within the category.
 * @property {unknown} details The latest event's details.
 * @property {number} count Events the record tracked since it was created.
 * @property {boolean} deferred Whether a batch of this record waits.
 * @property {number} deferredCount Events in the waiting batch.
 * @property {number | null} scheduledSendAt When the waiting batch is due (Unix ms).
 * @property {number} firstEventTime The record's first event (Unix ms).
 * @property {number} lastEventTime The record's latest event (Unix ms).
 * @property {'idle' | 'deferred' | 'processing'} [state] `getEvent`: whether a batch
 *   waits (`deferred`), one is being processed or retried (`processing`), or neither.
 * @property {number} [inFlight] `getEvent`: batches being processed or retried.
 * @property {number} [failedRounds] `getEvent`: failed rounds of the waiting batch.
 */

/**
 * The record snapshot of one `trackEvent` answer.
 * @param {string} category
 * @param {string} id
 * @param {unknown} details
 * @param {{ total: number, deferred: number, scheduledAt?: number | null, firstSeen: number, lastSeen: number }} r
 * @returns {EventRecord}
 */
function eventRecord (category, id, details, r) {
  return {
    category,
    id,
    details,
    count: r.total,
    deferred: r.deferred > 0,
    deferredCount: r.deferred,
    scheduledSendAt: r.scheduledAt ?? null,
    firstEventTime: r.firstSeen,
    lastEventTime: r.lastSeen
  }
}

/** Numbers per record the engine writes for an in-memory `trackEvent`. */
const RECORD_SLOTS = 5

/**
 * The record snapshot of one in-memory `trackEvent` answer, from the numbers the
 * engine wrote: total, deferred, scheduled at (`NaN` for none), first seen, last seen.
 * @param {string} category
 * @param {string} id
 * @param {unknown} details
 * @param {Float64Array} slots
 * @returns {EventRecord}
 */
function recordFromSlots (category, id, details, slots) {
  const deferred = slots[1]
  const scheduledAt = slots[2]
  return {
    category,
    id,
    details,
    count: slots[0],
    deferred: deferred > 0,
    deferredCount: deferred,
    scheduledSendAt: Number.isNaN(scheduledAt) ? null : scheduledAt,
    firstEventTime: slots[3],
    lastEventTime: slots[4]
  }
}

/**
 * A record as the tracker's store holds it (`getEvent`).
 * @param {string} category
 * @param {string} id
 * @param {unknown} details
 * @param {{ total: number, deferred: number, scheduledAt?: number | null, firstSeen: number, lastSeen: number, state: string, inFlight: number, failedRounds: number }} r
 * @returns {EventRecord}
 */
function storedRecord (category, id, details, r) {
  return {
    ...eventRecord(category, id, details, r),
    state: /** @type {'idle' | 'deferred' | 'processing'} */ (r.state),
    inFlight: r.inFlight,
    failedRounds: r.failedRounds
  }
}

module.exports = { eventRecord, storedRecord, recordFromSlots, RECORD_SLOTS }
