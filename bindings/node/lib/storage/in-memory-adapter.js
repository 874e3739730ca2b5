'use strict'

const BaseAdapter = require('./base-adapter')

/**
 * Records in this process's memory (the default): tidegate's sharded in-memory tracker,
 * with due batches found from an index ordered by due time.
 */
class InMemoryAdapter extends BaseAdapter {}

module.exports = InMemoryAdapter
