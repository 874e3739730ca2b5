'use strict'

/**
 * Starts `app` on a free loopback port; resolves to its base URL and a `close()`.
 * @param {import('express').Express} app
 * @returns {Promise<{ base: string, close: () => Promise<void> }>}
 */
function listen (app) {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      resolve({
        base: `http://127.0.0.1:${port}`,
        close: () => new Promise((done) => { server.closeAllConnections(); server.close(() => done()) })
      })
    })
  })
}

module.exports = { listen }
