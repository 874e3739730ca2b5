'use strict'

/**
 * The calls made in one turn of the event loop, sent together: `add` queues one call's
 * arguments (one value per column) and returns its promise; on the next tick
 * `send(columns, settle)` receives the columns and each call's `{ resolve, reject }`, in
 * the order added. When `send` throws or rejects, every call it had not settled is
 * rejected with that error.
 */
class TickBatch {
  /**
   * @param {number} width the number of columns (1 to 4)
   * @param {(columns: unknown[][], settle: Settle[]) => Promise<void>} send
   */
  constructor (width, send) {
    this._width = width
    this._send = send
    this._columns = emptyColumns(width)
    /** @type {Settle[]} */
    this._settle = []
  }

  /**
   * Queues one call; resolves or rejects as `send` settles it.
   * @param {unknown} a
   * @param {unknown} [b]
   * @param {unknown} [c]
   * @param {unknown} [d]
   * @returns {Promise<any>}
   */
  add (a, b, c, d) {
    return new Promise((resolve, reject) => {
      if (this._settle.length === 0) process.nextTick(() => this._flush())
      const columns = this._columns
      columns[0].push(a)
      if (this._width > 1) columns[1].push(b)
      if (this._width > 2) columns[2].push(c)
      if (this._width > 3) columns[3].push(d)
      this._settle.push({ resolve, reject })
    })
  }

  /** Sends what is queued and starts a new batch. */
  async _flush () {
    const columns = this._columns
    const settle = this._settle
    this._columns = emptyColumns(this._width)
    this._settle = []
    try {
      await this._send(columns, settle)
    } catch (error) {
      for (const { reject } of settle) reject(error)
    }
  }
}

/** @typedef {{ resolve: (value: any) => void, reject: (error: unknown) => void }} Settle */

/** @param {number} width */
function emptyColumns (width) {
  return Array.from({ length: width }, () => [])
}

module.exports = { TickBatch }
