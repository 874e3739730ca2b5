'use strict'

/**
 * The native addon's errors as JavaScript error classes: a value tidegate refuses
 * (`InvalidArg`) is a `RangeError`, a value of the wrong type a `TypeError`; the
 * message is tidegate's own. Anything else stays an `Error`.
 */

const TYPE_CODES = new Set([
  'ObjectExpected',
  'StringExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'FunctionExpected',
  'BigintExpected'
])

/**
 * The error to throw for an error of the native addon.
 * @param {unknown} error
 * @returns {unknown}
 */
function translate (error) {
  if (!(error instanceof Error) || error instanceof TypeError || error instanceof RangeError) {
    return error
  }
  const code = /** @type {{ code?: string }} */ (error).code
  let translated
  if (code === 'InvalidArg') translated = new RangeError(error.message)
  else if (code !== undefined && TYPE_CODES.has(code)) translated = new TypeError(error.message)
  else return error
  translated.code = code
  return translated
}

/**
 * Runs `fn`, throwing its native error as the matching JavaScript class.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
function callNative (fn) {
  try {
    return fn()
  } catch (error) {
    throw translate(error)
  }
}

/**
 * Awaits `promise`, rejecting with its native error as the matching JavaScript class.
 * @template T
 * @param {Promise<T>} promise
 * @returns {Promise<T>}
 */
async function awaitNative (promise) {
  try {
    return await promise
  } catch (error) {
    throw translate(error)
  }
}

module.exports = { translate, callNative, awaitNative }
