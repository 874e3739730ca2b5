'use strict'

/**
 * The latest details a tracker tracked per record, for `getEvent`, bounded: at least the
 * `bound` most recently tracked records keep theirs. Looked up by category, then id
 * (no joined key string per event); a record's entry is updated in place. Once a
 * quarter more than the bound are held, the least recently tracked are forgotten down
 * to the bound, in one pass.
 */
class KeptDetails {
  /** @param {number} bound */
  constructor (bound) {
    this._bound = bound
    this._most = bound + Math.max(1, Math.floor(bound / 4))
    /** @type {Map<string, Map<string, { details: unknown, used: number }>>} */
    this._byCategory = new Map()
    this._size = 0
    this._clock = 0
  }

  /**
   * Keeps `details` as the record's latest.
   * @param {string} category
   * @param {string} id
   * @param {unknown} details
   */
  set (category, id, details) {
    let ids = this._byCategory.get(category)
    if (ids === undefined) {
      ids = new Map()
      this._byCategory.set(category, ids)
    }
    const used = ++this._clock
    const kept = ids.get(id)
    if (kept !== undefined) {
      kept.details = details
      kept.used = used
      return
    }
    ids.set(id, { details, used })
    if (++this._size > this._most) this._trim()
  }

  /**
   * The record's latest details, or `undefined`.
   * @param {string} category
   * @param {string} id
   * @returns {unknown}
   */
  get (category, id) {
    return this._byCategory.get(category)?.get(id)?.details
  }

  /**
   * Forgets the record's details.
   * @param {string} category
   * @param {string} id
   */
  delete (category, id) {
    const ids = this._byCategory.get(category)
    if (ids !== undefined && ids.delete(id)) {
      this._size--
      if (ids.size === 0) this._byCategory.delete(category)
    }
  }

  /** Forgets every record's details. */
  clear () {
    this._byCategory.clear()
    this._size = 0
  }

  /** Forgets the least recently tracked records' details down to the bound. */
  _trim () {
    const uses = new Float64Array(this._size)
    let i = 0
    for (const ids of this._byCategory.values()) {
      for (const kept of ids.values()) uses[i++] = kept.used
    }
    uses.sort()
    // Every `used` is distinct: exactly `bound` are at or above the cut.
    const cut = uses[uses.length - this._bound]
    for (const [category, ids] of this._byCategory) {
      for (const [id, kept] of ids) {
        if (kept.used < cut) ids.delete(id)
      }
      if (ids.size === 0) this._byCategory.delete(category)
    }
    this._size = this._bound
  }
}

module.exports = KeptDetails
