'use strict'

/**
 * Where an `EventTracker` keeps its records: `InMemoryAdapter` (this process) or
 * `RedisAdapter` (shared by every process using the same Redis and tracker name).
 */
class BaseAdapter {
  /** Whether records are shared with other processes. */
  get shared () {
    return false
  }

  /** Lets go of what the adapter holds (nothing for memory). */
  destroy () {}
}

module.exports = BaseAdapter
