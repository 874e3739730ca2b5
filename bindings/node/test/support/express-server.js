'use strict'

// An Express process for the shared-limit tests: argv[2] is the Redis URL, argv[3] the
// rateLimit options as JSON (plus keyHeader). Prints {"port": n} once listening.

const express = require('express')
const { rateLimit, redisStore } = require('../..')

const [url, optionsJson] = process.argv.slice(2)
const app = express()
const { keyHeader, ...options } = JSON.parse(optionsJson)
// keyHeader: the client key is that request header (default: the peer address).
const identifier = keyHeader === undefined ? undefined : (req) => req.headers[keyHeader]
app.use(rateLimit({ ...options, identifier, store: redisStore({ url }) }))
app.get('/api', (req, res) => res.json({ ok: true, pid: process.pid }))
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
