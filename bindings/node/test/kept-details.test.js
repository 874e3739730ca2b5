'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const KeptDetails = require('../lib/kept-details')

test('kept details: the latest per record, the most recently tracked kept past the bound', () => {
  const kept = new KeptDetails(4)
  for (let i = 0; i < 5; i++) kept.set('c', `id-${i}`, { i })
  assert.deepEqual(kept.get('c', 'id-1'), { i: 1 }, 'within the bound and its quarter: all kept')
  kept.set('c', 'id-0', { i: 'again' })
  // A sixth record: down to the 4 most recently tracked.
  kept.set('other', 'id-0', 'x')
  for (const id of ['id-1', 'id-2']) assert.equal(kept.get('c', id), undefined, id)
  assert.deepEqual(kept.get('c', 'id-0'), { i: 'again' }, 'tracked again: among the most recent')
  assert.deepEqual(kept.get('c', 'id-3'), { i: 3 })
  assert.deepEqual(kept.get('c', 'id-4'), { i: 4 })
  assert.equal(kept.get('other', 'id-0'), 'x')
  kept.delete('other', 'id-0')
  assert.equal(kept.get('other', 'id-0'), undefined)
  kept.clear()
  assert.equal(kept.get('c', 'id-6'), undefined)
})
