'use strict'

// Real redis-server processes for the tests, each on a free loopback port.

const { spawn } = require('node:child_process')
const net = require('node:net')

/**
 * A free loopback port: bound to port 0, read, then closed.
 * @returns {Promise<number>}
 */
function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address())
      server.close(() => resolve(port))
    })
  })
}

/**
 * Resolves once something accepts connections on `port`.
 * @param {number} port
 * @param {number} deadline Unix ms
 */
async function waitForPort (port, deadline) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Starts `redis-server` on a free port (no persistence); `stop()` kills it,
 * `pause()` / `resume()` freeze and thaw it (SIGSTOP / SIGCONT) to make an outage.
 * @returns {Promise<{ url: string, port: number, pid: number | undefined, stop: () => Promise<void>, pause: () => void, resume: () => void }>}
 */
async function startRedis () {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore'
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  await waitForPort(port, Date.now() + 10000)
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') },
    stop: async () => {
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await exited
    }
  }
}

module.exports = { startRedis, freePort }
