'use strict'

/**
 * The calls made in one turn of the event loop, sent together: `add` queues one call's
 * arguments (one value per column) and returns its promise; on the next tick
 * `send(columns, settle)` receives the columns and each call's `{ resolve, reject }`, in
 * the order added. When `send` throws or rejects, every call it had not settled is
 * rejected with that error.
 *
 * With `flushAt`, a batch goes out as soon as it holds that many calls, and the calls
 * after it start the next one: a caller that keeps many calls in flight and awaits each
 * answer before its next call then has two or more batches on their way at once, where
 * one batch per turn would leave the store idle while the answers are handled. Batches
 * in flight at once may reach the store in either order.
 */
class TickBatch {
  /**
   * @param {number} width the number of columns (1 to 4)
   * @param {(columns: unknown[][], settle: Settle[]) => Promise<void>} send
   * @param {number} [flushAt] the calls after which a batch goes out at once
   */
  constructor (width, send, flushAt = Infinity) {
    this._width = width
    this._send = send
    this._flushAt = flushAt
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
      if (this._settle.length >= this._flushAt) this._flush()
    })
  }

  /** Sends what is queued and starts a new batch. */
  async _flush () {
    // Nothing when a full batch went out earlier in this turn and nothing came after it.
    if (this._settle.length === 0) return
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
