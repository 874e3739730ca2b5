'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const v8 = require('node:v8')
const vm = require('node:vm')
const { Limiter, redisStore } = require('..')
const { startRedis } = require('./support/redis-server')

test('Limiter decides with any tidegate policy, times in milliseconds', () => {
  const limiter = new Limiter('token_bucket:5/1m')
  const start = performance.now()
  const answers = Array.from({ length: 6 }, () => limiter.check('a'))
  const elapsed = performance.now() - start
  assert.deepEqual(answers.map((d) => d.allowed), [true, true, true, true, true, false])
  assert.deepEqual(answers[0], { allowed: true, limit: 5, remaining: 4, resetAfter: 12000 })
  // The next token comes 12 s after the first check; the clock reads whole milliseconds,
  // so the sixth check sees between 0 and elapsed + 1 ms of them gone.
  const retry = answers[5].retryAfter
  assert.ok(retry <= 12000 && retry >= 12000 - Math.ceil(elapsed) - 1, `retryAfter ${retry} after ${elapsed} ms`)
  assert.equal(limiter.peek('a').allowed, false)
  assert.equal(limiter.keyCount(), 1)
  assert.equal(limiter.reset('a'), true)
  assert.equal(limiter.check('a').remaining, 4)
  assert.deepEqual(limiter.quotas(), [{ limit: 5, windowMs: 60000 }])
  assert.equal(limiter.policy, 'token_bucket:5/1m')
})

test('several policies on one key admit together: weighted costs, all or nothing', () => {
  const limiter = new Limiter(['gcra:10/1s', 'fixed_window:12/1d'])
  assert.equal(limiter.check('k', 10).allowed, true)
  const d = limiter.check('k', 3)
  assert.equal(d.allowed, false)
  assert.equal(limiter.check('k', 2).allowed, false, 'gcra has no room yet')
  assert.deepEqual(limiter.quotas(), [{ limit: 10, windowMs: 1000 }, { limit: 12, windowMs: 86400000 }])
})

test('bad policies and costs are RangeErrors with tidegate\'s messages; wrong types TypeErrors', () => {
  assert.throws(() => new Limiter('token_bucket:0/1m'), { name: 'RangeError', message: 'invalid policy `token_bucket:0/1m`: `limit` must be at least 1' })
  const limiter = new Limiter('fixed_window:20/1s')
  assert.throws(() => limiter.check('k', 0), { name: 'RangeError', message: 'cost must be at least 1' })
  assert.throws(() => limiter.check('k', 21), { name: 'RangeError', message: 'cost 21 can never be admitted: the policy admits at most 20 at once' })
  assert.throws(() => limiter.check('k', 1.5), { name: 'RangeError' })
  assert.throws(() => limiter.check(42), { name: 'TypeError' })
})

test('the middleware\'s one-call check reads each key whole, long and non-ASCII ones too, as the same key as check', () => {
  const limiter = new Limiter('fixed_window:2/1m')
  const slots = new Float64Array(new ArrayBuffer(8 * 5))
  const check = limiter._native.checker(slots)
  // The function holds its slots for as long as it lives: they cannot be taken away.
  assert.equal(check.slots, slots)
  assert.throws(() => { check.slots = new Float64Array(5) }, TypeError)
  assert.throws(() => { delete check.slots }, TypeError)
  assert.equal(check.slots, slots)
  // Around the 124 bytes read without allocating: ASCII, 2- and 4-byte characters
  // across the bound, and a lone surrogate (U+FFFD in UTF-8, as everywhere).
  const keys = ['a', 'x'.repeat(124), 'x'.repeat(125), 'x'.repeat(300), 'é'.repeat(62), 'é'.repeat(63),
    'x'.repeat(124) + '😀', 'x'.repeat(123) + '😀', 'x'.repeat(122) + '😀', 'x'.repeat(121) + '😀', 'lone \ud800']
  for (const key of keys) {
    assert.equal(check(key), true, key)
    assert.deepEqual([slots[0], slots[1], Number.isNaN(slots[2])], [2, 1, true], key)
    assert.equal(limiter.check(key).remaining, 0, `check sees the same key: ${key}`)
    assert.equal(check(key), false, key)
    assert.ok(slots[1] === 0 && slots[2] > 0, key)
  }
  assert.equal(limiter.keyCount(), keys.length, 'every key is its own')
  assert.throws(() => check(42), { message: 'key must be a string' })
  assert.throws(() => check(), { message: 'key must be a string' })
  assert.throws(() => limiter._native.checker(new Float64Array(2)), { message: 'slots must hold 5 numbers, it holds 2' })
  for (const notSlots of [new Float32Array(5), new Uint8Array(40), [0, 0, 0, 0, 0], {}, undefined]) {
    assert.throws(() => limiter._native.checker(notSlots), { message: 'slots must be a Float64Array' })
  }
})

test('a checker given a limit name answers the RateLimit value when admitted and false when refused', () => {
  const limiter = new Limiter('token_bucket:2/1m')
  const slots = new Float64Array(new ArrayBuffer(8 * 5))
  // The name is written as a structured-field string: `"` and `\` escaped, bytes
  // outside printable ASCII as `_`.
  const check = limiter._native.checker(slots, 'a "q" \\ é')
  assert.equal(check('k'), '"a \\"q\\" \\\\ _";r=1;t=30')
  assert.deepEqual([slots[0], slots[1]], [2, 1])
  assert.equal(check('k'), '"a \\"q\\" \\\\ _";r=0;t=60')
  assert.equal(check('k'), false)
  assert.ok(slots[1] === 0 && slots[2] > 0, 'the refusal\'s numbers are in the slots')
  assert.equal(limiter._native.rateLimitPolicy('api'), '"api";q=2;w=60')
  assert.equal(new Limiter('gcra:10/1s;fixed_window:1000/1d')._native.rateLimitPolicy('x'), '"x";q=10;w=1, "x-2";q=1000;w=86400')
})

test('a checker function that is collected lets go of its slots, and its limiter works on', async () => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc')
  const limiter = new Limiter('fixed_window:1000/1m')
  let freed = 0
  const registry = new FinalizationRegistry(() => { freed++ })
  for (let i = 0; i < 100; i++) {
    const slots = new Float64Array(new ArrayBuffer(8 * 5))
    registry.register(slots, i)
    assert.equal(limiter._native.checker(slots)(`k${i}`), true)
  }
  // Collecting a function runs its finalizer, which releases the slots; the next
  // collections free them.
  for (let round = 0; round < 50 && freed < 95; round++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  // V8 may still hold the last one or two (a register, a feedback slot).
  assert.ok(freed >= 95, `the slots of ${freed} checkers of 100 were freed`)
  assert.equal(limiter.check('k0').remaining, 998)
  // A small Float64Array keeps its numbers on V8's heap, which collections move; the
  // checker's writes still land in it after them.
  const small = new Float64Array(5)
  const check = limiter._native.checker(small)
  for (let round = 1; round <= 3; round++) {
    Array.from({ length: 100000 }, (_, i) => ({ i })) // garbage for the collection
    gc()
    assert.equal(check('moved'), true)
    assert.equal(small[1], 1000 - round, `after collection ${round}`)
  }
})

test('RedisLimiter shares a quota between limiters and resolves without blocking', async () => {
  const redis = await startRedis()
  try {
    const a = await redisStore({ url: redis.url }).limiter('login', 'fixed_window:3/10s')
    const b = await redisStore({ url: redis.url }).limiter('login', 'fixed_window:3/10s')
    const answers = await Promise.all([a.check('alice'), b.check('alice'), a.check('alice'), b.check('alice')])
    assert.equal(answers.filter((d) => d.allowed).length, 3)
    assert.equal((await a.peek('alice')).allowed, false)
    assert.equal(await b.reset('alice'), true)
    assert.equal((await a.check('alice')).remaining, 2)
    await assert.rejects(a.check('alice', 4), { name: 'RangeError' })
    // Checks of one tick: each its own answer, a refused one rejects alone.
    const together = await Promise.allSettled([a.check('bob'), a.check('bob', 4), a.check('bob', 0), a.check('bob', 2), a.check('bob')])
    assert.deepEqual(together.map((t) => t.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled'])
    assert.equal(/** @type {PromiseRejectedResult} */ (together[2]).reason.message, 'cost must be at least 1')
    const [first, , , second, third] = together.map((t) => /** @type {any} */ (t).value)
    assert.deepEqual(Object.keys(first), ['allowed', 'limit', 'remaining', 'resetAfter'])
    assert.deepEqual([first.allowed, first.remaining, second.allowed, second.remaining], [true, 2, true, 0])
    assert.deepEqual(Object.keys(third), ['allowed', 'limit', 'remaining', 'resetAfter', 'retryAfter'])
    assert.equal(third.allowed, false)
    assert.ok(third.retryAfter > 0)
    await assert.rejects(redisStore({ url: redis.url }).limiter('bad:name', 'fixed_window:3/10s'), { name: 'RangeError' })
  } finally {
    await redis.stop()
  }
})
