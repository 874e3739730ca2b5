'use strict'

const Limiter = require('../limiter')
// The header values come from the engine's formatter, the one `tidegate serve` uses.
const native = require('../native')
const { RedisStore } = require('../redis-store')
const { checkFunction } = require('../validate')
const { translate } = require('../errors')
const { DECISION_SLOTS, decisionFromSlots } = require('../decision-slots')

const DEFAULT_MESSAGE = 'Too many requests, please try again later.'

/** Where the memory limiter writes a decision's numbers for `checkInto` (read at once). */
const DECISION = new Float64Array(DECISION_SLOTS)

/**
 * @typedef {import('../limiter').Decision} Decision
 * @typedef {object} RateLimitOptions
 * @property {string | string[]} [policy] Any tidegate policy, e.g.
 *   `"gcra:10/1s;fixed_window:1000/1d"`; replaces `requestsPerMinute` and `capacity`.
 * @property {number} [requestsPerMinute=60] Token bucket refill, tokens per minute.
 * @property {number} [capacity=requestsPerMinute] Token bucket size (burst).
 * @property {RedisStore} [store] `redisStore({ url })` to share limits; memory when absent.
 * @property {string} [name] The limit's name in headers and in Redis keys (default:
 *   the policy text with `{`, `}` and `:` replaced by `_`).
 * @property {(req: any) => string | Promise<string>} [identifier] The client key (default `req.ip`).
 * @property {(req: any, res: any) => boolean | Promise<boolean>} [skip] Requests not limited.
 * @property {(req: any) => number} [cost] Units a request costs (default 1).
 * @property {string | object} [message] The 429 body's `message` (an object replaces the body).
 * @property {(req: any, res: any, next: Function, decision: Decision) => void} [handler]
 *   Answers a denied request instead of the default 429 (status and headers are set).
 * @property {boolean} [headers=true] Send `RateLimit-Policy` and `RateLimit`.
 */

/**
 * The default client key, `req.ip`. Where the app trusts no proxy (Express's default,
 * `trust proxy` false or 0) `req.ip` is the socket's address, so that is read directly
 * rather than through Express's parse of `X-Forwarded-For`.
 *
 * The app is read from the request's prototype, where Express puts it (each app's
 * `request` object, also for a mounted sub-app): Express 5 gives every request an
 * object shape of its own, so a property lookup on `req` misses V8's caches on every
 * request, while the prototype's shape stays the same. The socket is read from `res`,
 * whose shape is as new, but whose `socket` Node reads again when the response ends:
 * the lookup is then paid once, where `req.socket` is read by nothing else. (`res`
 * has no socket yet while it waits behind a pipelined response: then `req.socket`.)
 * @param {any} req
 * @param {any} res
 * @returns {string | undefined}
 */
function clientAddress (req, res) {
  const settings = Object.getPrototypeOf(req)?.app?.settings
  if (settings !== undefined) {
    const trust = settings['trust proxy']
    if (trust === false || trust === 0) {
      const socket = res.socket ?? req.socket
      if (socket) return socket.remoteAddress
    }
  }
  return req.ip
}

/**
 * @param {unknown} value
 * @returns {value is PromiseLike<unknown>}
 */
function isThenable (value) {
  return value !== null && typeof value === 'object' && typeof /** @type {any} */ (value).then === 'function'
}

/**
 * Express middleware limiting each client: `429` with `Retry-After` and a JSON body
 * once its quota is used up, IETF `RateLimit-Policy` / `RateLimit` headers on every
 * answer. In memory by default; with `store: redisStore({ url })` shared by every
 * process using that Redis.
 * @param {RateLimitOptions} [options]
 * @returns {(req: any, res: any, next: (err?: unknown) => void) => void}
 */
function rateLimit (options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('rateLimit options must be an object.')
  }
  for (const field of ['identifier', 'skip', 'handler', 'cost']) checkFunction(options, field)
  for (const field of ['requestsPerMinute', 'capacity']) {
    const value = options[field]
    if (value !== undefined && (typeof value !== 'number' || Number.isNaN(value))) {
      throw new TypeError(`${field} must be a number.`)
    }
  }
  if (options.store !== undefined && !(options.store instanceof RedisStore)) {
    throw new TypeError('store must come from redisStore({ url }) (leave it out for memory).')
  }
  const requestsPerMinute = options.requestsPerMinute ?? 60
  const capacity = options.capacity ?? requestsPerMinute
  const policy = options.policy ?? `token_bucket:${requestsPerMinute}/1m,burst=${capacity}`
  const policyText = Array.isArray(policy) ? policy.join(';') : String(policy)
  const name = options.name ?? policyText.replace(/[{}:]/g, '_')
  const identifier = options.identifier ?? null
  const skip = options.skip ?? null
  const cost = options.cost ?? null
  const message = options.message ?? DEFAULT_MESSAGE
  const handler = options.handler ?? null
  const sendHeaders = options.headers ?? true

  /** @type {Limiter | null} */
  let memory = null
  /** @type {Promise<import('../redis-limiter')> | null} */
  let shared = null
  /** @type {string} */
  let policyValue
  /**
   * The memory limiter's one-call check (cost 1), and where it writes the numbers. With
   * headers it answers the `RateLimit` value when admitted, `false` when refused.
   * @type {((key: string) => boolean | string) | null}
   */
  let check = null
  const slots = new Float64Array(new ArrayBuffer(8 * DECISION_SLOTS))
  if (options.store === undefined) {
    memory = new Limiter(policy)
    policyValue = memory._native.rateLimitPolicy(name)
    check = memory._native.checker(slots, sendHeaders ? name : undefined)
  } else {
    // The policy is checked now (a RangeError here, not on the first request).
    policyValue = new Limiter(policy)._native.rateLimitPolicy(name)
    shared = options.store.limiter(name, policy)
    shared.catch(() => {})
  }

  /**
   * Answers from the decision.
   * @param {any} req
   * @param {any} res
   * @param {(err?: unknown) => void} next
   * @param {Decision} decision
   */
  function respond (req, res, next, decision) {
    if (sendHeaders) {
      // Field names in lower case, as `tidegate serve` sends them (HTTP field names are
      // case-insensitive): Node then keys its header table without a lower-cased copy.
      res.setHeader('ratelimit-policy', policyValue)
      res.setHeader('ratelimit', native.rateLimitValue(name, decision.remaining, decision.resetAfter))
    }
    if (decision.allowed) {
      next()
      return
    }
    deny(req, res, next, decision)
  }

  /**
   * Answers a denied request (the `RateLimit` headers are set).
   * @param {any} req
   * @param {any} res
   * @param {(err?: unknown) => void} next
   * @param {Decision} decision
   */
  function deny (req, res, next, decision) {
    const retryAfter = native.retryAfterSeconds(decision.retryAfter ?? 0)
    res.setHeader('retry-after', String(retryAfter))
    res.status(429)
    if (handler !== null) {
      handler(req, res, next, decision)
      return
    }
    const body = typeof message === 'object'
      ? message
      : { error: 'Too Many Requests', message, retryAfter, limit: decision.limit, remaining: decision.remaining }
    res.json(body)
  }

  /**
   * Decides for one request whose key is known.
   * @param {any} req
   * @param {any} res
   * @param {(err?: unknown) => void} next
   * @param {unknown} key
   */
  function decide (req, res, next, key) {
    const units = cost === null ? undefined : cost(req)
    const k = key === undefined || key === null ? '' : String(key)
    if (memory !== null) {
      // One crossing into the addon per request, and as light as it can be: each one
      // finds the addon's code out of the caches, which costs more than the decision.
      const out = units === undefined ? slots : DECISION
      let answer
      try {
        answer = units === undefined
          ? /** @type {(key: string) => boolean | string} */ (check)(k)
          : memory._native.checkInto(k, units, DECISION)
      } catch (error) {
        throw translate(error)
      }
      if (answer !== false) {
        // Admitted, answered straight from the check: no decision object.
        if (sendHeaders) {
          res.setHeader('ratelimit-policy', policyValue)
          res.setHeader('ratelimit', typeof answer === 'string'
            ? answer
            : native.rateLimitValue(name, out[1], out[3]))
        }
        next()
        return
      }
      respond(req, res, next, decisionFromSlots(false, out, 0))
      return
    }
    /** @type {Promise<any>} */ (shared)
      .then((limiter) => limiter.check(k, units))
      .then((decision) => respond(req, res, next, decision))
      .catch(next)
  }

  /**
   * @param {any} req
   * @param {any} res
   * @param {(err?: unknown) => void} next
   */
  function withKey (req, res, next) {
    const key = identifier === null ? clientAddress(req, res) : identifier(req)
    if (isThenable(key)) {
      Promise.resolve(key).then((k) => decide(req, res, next, k)).catch(next)
    } else {
      decide(req, res, next, key)
    }
  }

  return function tidegateRateLimit (req, res, next) {
    try {
      if (skip !== null) {
        const skipped = skip(req, res)
        if (isThenable(skipped)) {
          Promise.resolve(skipped)
            .then((s) => (s ? next() : withKey(req, res, next)))
            .catch(next)
          return
        }
        if (skipped) {
          next()
          return
        }
      }
      withKey(req, res, next)
    } catch (error) {
      next(error)
    }
  }
}

module.exports = { rateLimit, rateLimiter: rateLimit }
