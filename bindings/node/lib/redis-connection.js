'use strict'

const native = require('./native')
const { awaitNative } = require('./errors')

/**
 * Opens a connection to Redis through the engine (never blocking the event loop).
 * @param {string} url
 * @param {{ timeout?: number, connectTimeout?: number, tlsCaFile?: string }} [options]
 *   times in milliseconds
 * @returns {Promise<any>} the native `RedisConnection`
 */
function connect (url, options = {}) {
  const clean = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  return awaitNative(native.connectRedis(url, clean))
}

module.exports = { connect }
