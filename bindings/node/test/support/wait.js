'use strict'

/**
 * Resolves after `ms` milliseconds.
 * @param {number} ms
 */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Resolves once `predicate()` is true; rejects after `timeout` ms.
 * @param {() => boolean} predicate
 * @param {number} [timeout]
 */
async function waitUntil (predicate, timeout = 5000) {
  const deadline = Date.now() + timeout
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(10)
  }
}

module.exports = { sleep, waitUntil }
