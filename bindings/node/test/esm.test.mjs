// The ES module entry point exposes the same objects as the CommonJS one.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import EventTracker, { rateLimit, Limiter, TokenBucketStrategy } from 'tidegate'

const require = createRequire(import.meta.url)

test('import and require give the same classes', () => {
  const cjs = require('tidegate')
  assert.equal(EventTracker, cjs)
  assert.equal(rateLimit, cjs.rateLimit)
  assert.equal(new Limiter('fixed_window:2/1s').check('k').remaining, 1)
  assert.ok(new TokenBucketStrategy() instanceof cjs.BaseStrategy)
})
