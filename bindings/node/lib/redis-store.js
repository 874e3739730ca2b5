'use strict'

const { connect } = require('./redis-connection')
const { callNative } = require('./errors')
const RedisLimiter = require('./redis-limiter')

const ON_ERROR = new Set(['local', 'open', 'closed'])

/**
 * A Redis connection for the rate limiters: `rateLimit({ store: redisStore({ url }) })`.
 * Limits made from it are shared with every other process using the same Redis
 * (and with `tidegate serve` for a policy of the same name and definition).
 */
class RedisStore {
  /**
   * @param {object} options
   * @param {string} options.url `redis://host:port` (`rediss://` for TLS; several
   *   comma-separated URLs for a cluster)
   * @param {'local' | 'open' | 'closed'} [options.onError='local'] what answers when Redis
   *   does not within `timeout`: an in-memory limiter in this process, admit, or deny
   * @param {number} [options.timeout=50] ms a decision waits for Redis
   * @param {number} [options.connectTimeout=2000] ms a (re)connection may take
   * @param {string} [options.namespace='tidegate'] prefix of every key
   */
  constructor (options) {
    if (options === null || typeof options !== 'object' || typeof options.url !== 'string') {
      throw new TypeError('redisStore: url must be a string such as "redis://127.0.0.1:6379"')
    }
    const onError = options.onError ?? 'local'
    if (!ON_ERROR.has(onError)) {
      throw new TypeError(`onError must be "local", "open" or "closed", got ${JSON.stringify(onError)}`)
    }
    /** The Redis URL. */
    this.url = options.url
    /** What answers when Redis does not. */
    this.onError = onError
    this.namespace = options.namespace
    this._connectOptions = { timeout: options.timeout, connectTimeout: options.connectTimeout, tlsCaFile: options.tlsCaFile }
    /** @type {Promise<any> | null} */
    this._connection = null
  }

  /**
   * The connection, opened on first use.
   * @returns {Promise<any>}
   */
  connection () {
    this._connection ??= connect(this.url, this._connectOptions)
    return this._connection
  }

  /**
   * A limiter named `name` with `policy`, sharing each key's quota through Redis.
   * @param {string} name
   * @param {string | string[]} policy
   * @returns {Promise<RedisLimiter>}
   */
  async limiter (name, policy) {
    const connection = await this.connection()
    const options = { onError: this.onError, namespace: this.namespace }
    return new RedisLimiter(callNative(() => connection.limiter(name, policy, options)))
  }
}

/**
 * `new RedisStore(options)`.
 * @param {ConstructorParameters<typeof RedisStore>[0]} options
 * @returns {RedisStore}
 */
function redisStore (options) {
  return new RedisStore(options)
}

module.exports = { RedisStore, redisStore }
