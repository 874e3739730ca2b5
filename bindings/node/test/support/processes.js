'use strict'

// Child Node processes of the tests: each prints one JSON line when ready, and one
// more per answer.

const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

/**
 * Starts `node test/support/<script> ...args` and returns its JSON lines one by one.
 * @param {string} script
 * @param {string[]} args
 */
function startNode (script, args) {
  const child = spawn(process.execPath, [path.join(__dirname, script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit']
  })
  const lines = readline.createInterface({ input: child.stdout })
  /** @type {unknown[]} */
  const queue = []
  /** @type {((v: unknown) => void)[]} */
  const waiting = []
  lines.on('line', (line) => {
    const value = JSON.parse(line)
    const w = waiting.shift()
    if (w) w(value)
    else queue.push(value)
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    child,
    /** The next JSON line. @returns {Promise<any>} */
    next () {
      if (queue.length > 0) return Promise.resolve(queue.shift())
      return new Promise((resolve) => waiting.push(resolve))
    },
    /** Sends one line to the child's stdin. @param {unknown} value */
    send (value) {
      child.stdin.write(JSON.stringify(value) + '\n')
    },
    async stop () {
      child.kill('SIGTERM')
      await exited
    },
    exited
  }
}

module.exports = { startNode }
