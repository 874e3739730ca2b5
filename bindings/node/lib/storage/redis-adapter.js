'use strict'

const BaseAdapter = require('./base-adapter')
const { connect } = require('../redis-connection')

/**
 * Records in Redis, shared by every tracker (in any process) with the same Redis and
 * `name`: limits, waiting batches and claimed batches under a lease. Each change is
 * one atomic Lua call; a batch whose claimer died is delivered by another instance.
 */
class RedisAdapter extends BaseAdapter {
  /**
   * @param {{ url: string, name?: string, timeout?: number, connectTimeout?: number }} options
   *   `url`: `redis://host:port` (`rediss://` for TLS, several comma-separated URLs for a
   *   cluster); `name`: the tracker's name in Redis (default `"events"`).
   */
  constructor (options = /** @type {any} */ ({})) {
    super()
    if (options.redisClient !== undefined && options.url === undefined) {
      throw new TypeError('RedisAdapter takes { url }: tidegate connects to Redis itself (pass the URL your Redis client uses)')
    }
    if (typeof options.url !== 'string') {
      throw new TypeError('RedisAdapter: url must be a string such as "redis://127.0.0.1:6379"')
    }
    if (options.name !== undefined && typeof options.name !== 'string') {
      throw new TypeError('RedisAdapter: name must be a string')
    }
    /** The Redis URL. */
    this.url = options.url
    /** The tracker's name: instances with the same name share records. */
    this.name = options.name ?? 'events'
    this._options = { timeout: options.timeout, connectTimeout: options.connectTimeout }
    /** @type {Promise<any> | null} */
    this._connection = null
  }

  /** Whether records are shared with other processes: always. */
  get shared () {
    return true
  }

  /**
   * The connection, opened on first use.
   * @returns {Promise<any>}
   */
  connection () {
    this._connection ??= connect(this.url, this._options)
    return this._connection
  }
}

module.exports = RedisAdapter
