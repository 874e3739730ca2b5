'use strict'

const EventEmitter = require('node:events')
const native = require('./native')
const { callNative, awaitNative, translate } = require('./errors')
const { checkNumber } = require('./validate')
const { eventRecord, storedRecord, recordFromSlots, RECORD_SLOTS } = require('./records')
const KeptDetails = require('./kept-details')
const { TickBatch } = require('./tick-batch')
const BaseStrategy = require('./strategies/base-strategy')
const SimpleCounterStrategy = require('./strategies/simple-counter-strategy')
const BaseAdapter = require('./storage/base-adapter')
const InMemoryAdapter = require('./storage/in-memory-adapter')

/** Events the engine reports (the others come from `trackEvent`'s answer). */
const FORWARDED = new Set(['processed', 'retry', 'process_failed', 'config_updated', 'error'])

/** Where the engine writes an in-memory `trackEvent`'s record numbers (read at once,
 * before anything else can call it). */
const RECORD = new Float64Array(RECORD_SLOTS)

/**
 * Events after which a turn's `trackBatch` goes out without waiting for the turn's end.
 * With 64 calls in flight, each awaited before the next (bench/tracker.js, 20 events per
 * id): 161 000 events/s with batches of 32, 129 000 of 16, 134 000 of 24, 133 000 of 48
 * (one batch per turn, before the engine's batch path got cheaper: 87 000 against
 * 150 000 for 32).
 */
const BATCH_FLUSH_AT = 32

/** Numbers per event in a `trackBatch` answer: the kind, then the record's. */
const BATCH_SLOTS = 1 + RECORD_SLOTS

/** Processor errors kept to hand to `process_failed` listeners. */
const KEPT_ERRORS = 1024

/** Records whose latest details are at least kept for `getEvent` when `maxKeys` sets
 * no bound. */
const KEPT_RECORDS = 100000

/**
 * @typedef {import('./records').EventRecord} EventRecord
 * @typedef {object} DeliveredRecord A deferred batch of one record, as the processor receives it.
 * @property {string} category
 * @property {string} id
 * @property {number} count Events in this batch.
 * @property {unknown[]} details The events' details, oldest first (up to `maxDetails`).
 * @property {number} detailsDropped Details the caps left out.
 * @property {number} firstEventTime First event of the batch (Unix ms).
 * @property {number} lastEventTime Last event of the batch (Unix ms).
 * @property {number} failedRounds Rounds of processing that failed before this one.
 */

/**
 * Tracks events per `(category, id)`: immediate while the strategy admits, otherwise
 * deferred into the record's batch, which is handed to the async processor later, with
 * retries and backoff; nothing accepted is dropped. The engine is tidegate's.
 */
class EventTracker extends EventEmitter {
  /**
   * @param {object} [options]
   * @param {number} [options.limit=5] Events per record before deferral.
   * @param {number} [options.deferInterval=3600000] ms a new deferred batch waits.
   * @param {number} [options.expireTime=86400000] ms after which an idle record with nothing waiting is purged.
   * @param {number} [options.maxKeys=0] Most records (0: no bound of its own; `maxMemoryBytes` still holds).
   * @param {(events: DeliveredRecord[]) => Promise<void>} [options.processor] Handles due batches.
   * @param {BaseAdapter} [options.storage] `InMemoryAdapter` (default) or `RedisAdapter`.
   * @param {BaseStrategy} [options.strategy] Default `SimpleCounterStrategy`.
   * @param {number} [options.maxRetries=3] Retries of a failed processor call per round.
   * @param {number} [options.retryDelay=1000] ms before the first retry, doubling each time.
   * @param {number} [options.processingInterval=1000] ms between looks for due batches.
   * @param {number} [options.maxBatchSize=100] Most records per processor call.
   * @param {number} [options.maxDetails=100] Most details kept per batch.
   * @param {number} [options.maxDetailBytes=8192] Largest detail kept (bytes of JSON).
   * @param {number} [options.maxMemoryBytes=67108864] Memory budget (memory store).
   * @param {number} [options.lease=30000] Redis: ms a claimed batch stays with this instance.
   */
  constructor (options = {}) {
    super()
    for (const field of ['limit', 'deferInterval', 'expireTime', 'maxKeys', 'processingInterval',
      'maxRetries', 'retryDelay', 'maxBatchSize', 'maxDetails', 'maxDetailBytes', 'maxMemoryBytes', 'lease']) {
      checkNumber(options, field)
    }
    const strategy = options.strategy ?? new SimpleCounterStrategy()
    if (!(strategy instanceof BaseStrategy)) {
      throw new TypeError('strategy must be an instance of BaseStrategy.')
    }
    const storage = options.storage ?? new InMemoryAdapter()
    if (!(storage instanceof BaseAdapter)) {
      throw new TypeError('storage must be an InMemoryAdapter or a RedisAdapter.')
    }
    /** The tracker's settings (ms). */
    this.config = Object.freeze({
      limit: strategy.ownLimit ?? options.limit ?? 5,
      deferInterval: options.deferInterval ?? 3600000,
      expireTime: options.expireTime ?? 86400000,
      maxKeys: options.maxKeys ?? 0
    })
    /** The storage adapter. */
    this.storage = storage
    this._shared = Boolean(storage.shared)
    /**
     * Events waiting for the next `trackBatch` call (Redis): category, id, json,
     * details; a batch goes out at the end of the turn or once it holds BATCH_FLUSH_AT.
     */
    this._queued = new TickBatch(4, (columns, settle) => this._sendBatch(columns, settle), BATCH_FLUSH_AT)
    /** The strategy. */
    this.strategy = strategy
    /** @type {((events: DeliveredRecord[]) => Promise<void>) | null} */
    this.processor = null
    this._destroyed = false
    this._listening = false
    this._errorSeq = 0
    /** @type {Map<string, unknown>} */
    this._errors = new Map()
    /** The latest details this tracker tracked per record (the store keeps only the
     * waiting batch's, for the processor). */
    this._details = new KeptDetails(this.config.maxKeys > 0 ? this.config.maxKeys : KEPT_RECORDS)
    /** @type {ReturnType<typeof setInterval> | null} */
    this._keepAlive = null

    const settings = {
      limit: this.config.limit,
      deferInterval: this.config.deferInterval,
      expireTime: this.config.expireTime,
      maxKeys: this.config.maxKeys,
      processingInterval: options.processingInterval,
      maxRetries: options.maxRetries,
      retryDelay: options.retryDelay,
      maxBatchSize: options.maxBatchSize,
      maxDetails: options.maxDetails,
      maxDetailBytes: options.maxDetailBytes,
      maxMemoryBytes: options.maxMemoryBytes,
      lease: options.lease,
      strategy: strategy.toNative()
    }
    const process = (/** @type {string} */ json) => this._dispatch(json)
    const emit = (/** @type {string} */ json) => this._forward(json)
    if (storage.shared) {
      /** @type {any} */
      this._native = null
      this._ready = /** @type {any} */ (storage).connection().then((/** @type {any} */ connection) => {
        const n = callNative(() => connection.tracker(/** @type {any} */ (storage).name, settings, process, emit))
        this._native = n
        if (this._destroyed) n.destroy()
        else if (this._listening) n.listen()
        return n
      })
      // Surfaced by the first call that needs the tracker.
      this._ready.catch(() => {})
    } else {
      this._native = callNative(() => new native.NativeTracker(settings, process, emit))
      this._ready = Promise.resolve(this._native)
    }
    this.on('newListener', (name) => {
      if (FORWARDED.has(name)) this._listen()
    })
    if (typeof options.processor === 'function') {
      this.setProcessor(options.processor)
    } else if (options.processor !== undefined && options.processor !== null) {
      throw new TypeError('processor must be a function.')
    }
  }

  /**
   * Sets or replaces the processor of due batches. A rejected promise (or a throw) is a
   * failure: the batch is retried with backoff, then deferred again (`process_failed`).
   * @param {(events: DeliveredRecord[]) => Promise<void>} processorFn
   */
  setProcessor (processorFn) {
    if (typeof processorFn !== 'function') {
      throw new Error('Processor must be a function.')
    }
    this.processor = processorFn
    // Like a timer, a tracker with a processor keeps the process alive until it is
    // destroyed or shut down.
    if (this._keepAlive === null && !this._destroyed) {
      this._keepAlive = setInterval(() => {}, 1 << 30)
    }
  }

  /**
   * Tracks one event of the record `(category, id)`.
   * @param {string} category
   * @param {string} id
   * @param {unknown} [details={}] Any JSON-serialisable value, kept with a deferred batch.
   * @returns {Promise<{ type: 'immediate' | 'deferred' | 'ignored', data: EventRecord | null, reason?: string }>}
   */
  async trackEvent (category, id, details = {}) {
    checkKey(category, id)
    if (this._destroyed) throw new Error('the tracker is shut down')
    let json
    if (details !== undefined && details !== null) {
      try {
        json = JSON.stringify(details)
      } catch (error) {
        throw new TypeError(`details must be serialisable as JSON: ${/** @type {Error} */ (error).message}`)
      }
    }
    const n = this._native
    if (n !== null && !this._shared) {
      let r
      try {
        r = n.trackNow(category, id, json, RECORD)
      } catch (error) {
        throw translate(error)
      }
      if (r === 0 || r === 1) {
        const kind = r === 0 ? 'immediate' : 'deferred'
        const record = recordFromSlots(category, id, details, RECORD)
        this._remember(record)
        this.emit(kind, record)
        return { type: kind, data: record }
      }
      if (r !== null && r !== undefined) return this._answer(category, id, details, r)
    }
    if (this._shared) return this._queue(category, id, details, json)
    const ready = await awaitNative(this._ready)
    return this._answer(category, id, details, await awaitNative(ready.track(category, id, json)))
  }

  /**
   * Queues one event for the next `trackBatch` call (Redis): the events tracked in one
   * turn of the event loop cross into the engine together, with one promise.
   * @param {string} category
   * @param {string} id
   * @param {unknown} details
   * @param {string | undefined} json
   * @returns {Promise<{ type: 'immediate' | 'deferred' | 'ignored', data: EventRecord | null, reason?: string }>}
   */
  _queue (category, id, details, json) {
    return this._queued.add(category, id, json, details)
  }

  /**
   * Sends the queued events in one `trackBatch` call and settles their promises.
   * @param {any[][]} columns categories, ids, details' JSON, details
   * @param {import('./tick-batch').Settle[]} settle
   */
  async _sendBatch ([categories, ids, json, detailsList], settle) {
    const n = await awaitNative(this._ready)
    const batch = await awaitNative(n.trackBatch(categories, ids, json))
    const { slots, texts, codes } = batch
    let text = 0
    let code = 0
    for (let i = 0; i < settle.length; i++) {
      const at = i * BATCH_SLOTS
      const kind = slots[at]
      const { resolve, reject } = settle[i]
      const category = categories[i]
      const id = ids[i]
      const details = detailsList[i]
      if (kind === 0 || kind === 1) {
        const type = kind === 0 ? 'immediate' : 'deferred'
        const record = recordFromSlots(category, id, details, slots.subarray(at + 1, at + BATCH_SLOTS))
        this._remember(record)
        this.emit(type, record)
        resolve({ type, data: record })
      } else if (kind === 2) {
        const reason = texts[text++]
        this.emit('ignored', { reason, category, id, details })
        resolve({ type: 'ignored', reason, data: null })
      } else {
        const error = /** @type {Error & { code?: string }} */ (new Error(texts[text++]))
        error.code = codes[code++]
        reject(translate(error))
      }
    }
  }

  /**
   * `trackEvent`'s answer from the engine's `TrackResult`.
   * @param {string} category
   * @param {string} id
   * @param {unknown} details
   * @param {any} r
   * @returns {{ type: 'immediate' | 'deferred' | 'ignored', data: EventRecord | null, reason?: string }}
   */
  _answer (category, id, details, r) {
    if (r.kind === 'ignored') {
      const reason = r.reason
      this.emit('ignored', { reason, category, id, details })
      return { type: 'ignored', reason, data: null }
    }
    const record = eventRecord(category, id, details, r)
    this._remember(record)
    this.emit(r.kind, record)
    return { type: r.kind, data: record }
  }

  /**
   * Changes one record's settings at run time (`limit`, `deferInterval`, `strategy`).
   * @param {string} category
   * @param {string} id
   * @param {{ limit?: number, deferInterval?: number, strategy?: BaseStrategy }} newConfig
   * @returns {Promise<boolean>} whether the record exists (and was changed)
   */
  async updateConfig (category, id, newConfig) {
    if (!newConfig || typeof newConfig !== 'object') {
      throw new Error('newConfig must be an object.')
    }
    if (typeof category !== 'string' || typeof id !== 'string') {
      throw new TypeError('category and id must be strings.')
    }
    checkNumber(newConfig, 'limit')
    checkNumber(newConfig, 'deferInterval')
    const strategy = newConfig.strategy
    if (strategy !== undefined && !(strategy instanceof BaseStrategy)) {
      throw new TypeError('strategy must be an instance of BaseStrategy.')
    }
    const patch = {
      limit: strategy?.ownLimit ?? newConfig.limit,
      deferInterval: newConfig.deferInterval,
      strategy: strategy?.toNative()
    }
    const n = await awaitNative(this._ready)
    return awaitNative(n.updateConfig(category, id, patch))
  }

  /**
   * The record `(category, id)` as the tracker's store holds it, or `undefined`. With
   * `RedisAdapter` it is read from Redis, so it shows what every tracker sharing the
   * name tracked; `details` is the latest this tracker tracked (`undefined` when the
   * record's events came from elsewhere).
   * @param {string} category
   * @param {string} id
   * @returns {Promise<EventRecord | undefined>}
   */
  async getEvent (category, id) {
    checkKey(category, id)
    const n = await awaitNative(this._ready)
    const r = await awaitNative(n.record(category, id))
    if (r === null || r === undefined) return undefined
    return storedRecord(category, id, this._details.get(category, id), r)
  }

  /**
   * The records whose deferred batch waits, earliest due first, at most `limit` (read
   * from the store: with `RedisAdapter`, every process's). A batch being processed or
   * retried is not listed.
   * @param {number} [limit=1000]
   * @returns {Promise<EventRecord[]>}
   */
  async getDeferredEvents (limit = 1000) {
    return this._waiting(false, limit)
  }

  /**
   * The records whose deferred batch is due now and waits for the next processing
   * round, earliest first, at most `limit`; nothing is claimed or processed.
   * @param {number} [limit=1000]
   * @returns {Promise<EventRecord[]>}
   */
  async peekDueEvents (limit = 1000) {
    return this._waiting(true, limit)
  }

  /**
   * @param {boolean} dueOnly
   * @param {number} limit
   * @returns {Promise<EventRecord[]>}
   */
  async _waiting (dueOnly, limit) {
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
      throw new RangeError('limit must be a whole number of at least 1.')
    }
    const n = await awaitNative(this._ready)
    const records = await awaitNative(n.waiting(dueOnly, limit))
    return records.map((/** @type {any} */ r) =>
      storedRecord(r.category, r.id, this._details.get(r.category, r.id), r))
  }

  /**
   * Forgets the record `(category, id)`: its next event is immediate again. A batch of
   * it that waits is not dropped: it is handed to the processor on the next
   * processing round (with the usual retries); a record whose batch is being
   * processed stays, with no events counted, until that batch is settled.
   * @param {string} category
   * @param {string} id
   * @returns {Promise<boolean>} whether the record existed
   */
  async resetEvent (category, id) {
    checkKey(category, id)
    if (this._destroyed) throw new Error('the tracker is shut down')
    const n = await awaitNative(this._ready)
    const existed = await awaitNative(n.reset(category, id))
    this._details.delete(category, id)
    return existed
  }

  /**
   * The engine's counters: `records`, `waiting`, `retrying`, `immediate`, `deferred`,
   * `ignored`, `processedRecords`, `processedEvents`, `failedRounds`, `takenOver`.
   * @returns {Promise<Record<string, number>>}
   */
  async stats () {
    const n = await awaitNative(this._ready)
    return n.stats()
  }

  /**
   * Deletes every record and batch of this tracker, without delivering (with Redis:
   * for every instance sharing it).
   * @returns {Promise<number>}
   */
  async clear () {
    this._details.clear()
    const n = await awaitNative(this._ready)
    return awaitNative(n.clear())
  }

  /**
   * Stops processing and hands every pending batch to the processor now, due or not
   * (each gets `1 + maxRetries` attempts). With Redis, waiting batches stay in Redis for
   * the other instances. Resolves to what it did; `undelivered` lists the records the
   * processor kept refusing (memory), for you to persist.
   * @returns {Promise<{ delivered: number, undelivered: DeliveredRecord[], persisted: number }>}
   */
  async shutdown () {
    const n = await awaitNative(this._ready)
    const summary = await awaitNative(n.shutdown())
    this._stopKeepAlive()
    this._destroyed = true
    return {
      delivered: summary.delivered,
      undelivered: JSON.parse(summary.undelivered),
      persisted: summary.persisted
    }
  }

  /**
   * Stops at once and removes every listener. Pending batches are not delivered (in
   * memory they are dropped; in Redis they stay for the other instances): use
   * `await shutdown()` to deliver them.
   */
  destroy () {
    if (this._destroyed) return
    this._destroyed = true
    this._stopKeepAlive()
    if (this._native !== null) this._native.destroy()
    this.storage.destroy()
    this.removeAllListeners()
  }

  _stopKeepAlive () {
    if (this._keepAlive !== null) {
      clearInterval(this._keepAlive)
      this._keepAlive = null
    }
  }

  _listen () {
    if (this._listening) return
    this._listening = true
    if (this._native !== null) this._native.listen()
  }

  /** @param {EventRecord} record */
  _remember (record) {
    this._details.set(record.category, record.id, record.details)
  }

  /**
   * Called by the engine with a due batch; resolves to `null` when the processor took
   * it, or to an error text.
   * @param {string} json
   * @returns {Promise<string | null>}
   */
  async _dispatch (json) {
    const events = JSON.parse(json)
    try {
      if (this.processor === null) {
        throw new Error('no processor is set: call setProcessor(fn); the batch stays deferred')
      }
      await this.processor(events)
      return null
    } catch (error) {
      const token = `#${++this._errorSeq}`
      this._errors.set(token, error)
      if (this._errors.size > KEPT_ERRORS) {
        this._errors.delete(/** @type {string} */ (this._errors.keys().next().value))
      }
      const message = error instanceof Error ? error.message : String(error)
      return `${token} ${message}`
    }
  }

  /**
   * The processor's error behind an error text of `_dispatch`.
   * @param {string} text
   * @returns {unknown}
   */
  _takeError (text) {
    const token = /^#\d+(?= )/.exec(text)?.[0]
    if (token !== undefined && this._errors.has(token)) {
      const error = this._errors.get(token)
      this._errors.delete(token)
      return error
    }
    return new Error(text)
  }

  /**
   * Called by the engine with one lifecycle event.
   * @param {string} json
   */
  _forward (json) {
    const e = JSON.parse(json)
    switch (e.event) {
      case 'processed':
        for (const record of e.events) this.emit('processed', record)
        break
      case 'retry':
        this.emit('retry', { attempt: e.attempt, maxRetries: e.maxRetries, delay: e.delay, events: e.events })
        break
      case 'process_failed': {
        const error = this._takeError(e.error)
        this.emit('process_failed', { error, events: e.events, attempts: e.attempts })
        if (this.listenerCount('error') > 0) {
          const message = error instanceof Error ? error.message : String(error)
          this.emit('error', new Error(`Processor callback failed after ${e.attempts} attempts: ${message}`))
        }
        break
      }
      case 'config_updated': {
        this.emit('config_updated', { ...e.record, details: this._details.get(e.record.category, e.record.id) })
        break
      }
      case 'error':
        if (this.listenerCount('error') > 0) this.emit('error', new Error(e.message))
        break
      default:
        break
    }
  }
}

/**
 * @param {unknown} category
 * @param {unknown} id
 */
function checkKey (category, id) {
  if (typeof category !== 'string' || typeof id !== 'string') {
    throw new TypeError('category and id must be strings.')
  }
}

module.exports = EventTracker
