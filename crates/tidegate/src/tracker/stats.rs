//! What a tracker counts, and what its shutdown did.

use super::*;

/// Counters of a tracker, read with [`EventTracker::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) immediate: AtomicU64,
    pub(super) deferred: AtomicU64,
    pub(super) ignored: AtomicU64,
    pub(super) processed_records: AtomicU64,
    pub(super) processed_events: AtomicU64,
    pub(super) failed_rounds: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) taken_over: AtomicU64,
}

/// A snapshot of the tracker's counters and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TrackerStats {
    /// Records held.
    pub records: usize,
    /// Deferred batches waiting for their due time.
    pub waiting: usize,
    /// Batches between processor attempts.
    pub retrying: usize,
    /// Events answered immediate.
    pub immediate: u64,
    /// Events deferred.
    pub deferred: u64,
    /// Events ignored (`max_keys`, `max_memory_bytes`).
    pub ignored: u64,
    /// Records delivered to the processor successfully.
    pub processed_records: u64,
    /// Events in those records.
    pub processed_events: u64,
    /// Rounds in which every attempt failed.
    pub failed_rounds: u64,
    /// Records handed to the dead-letter sink.
    pub dead_lettered: u64,
    /// Batches this instance took over from another whose lease expired (Redis).
    pub taken_over: u64,
    /// Details left out by a byte bound (`max_detail_bytes`, and for memory
    /// `max_batch_bytes` and `max_memory_bytes`); also counted in each record's
    /// `details_dropped` (memory store).
    pub details_dropped_by_size: u64,
    /// Bytes of the memory budget in use (memory store; 0 for Redis).
    pub memory_bytes: usize,
}

/// What [`EventTracker::shutdown`] did with the batches still pending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShutdownReport {
    /// Records delivered to the processor.
    pub delivered: usize,
    /// Records handed to the dead-letter sink.
    pub dead_lettered: usize,
    /// Records neither could take: persist them yourself (memory store only).
    pub undelivered: Vec<DeliveredRecord>,
    /// Records left waiting in the shared store for another instance (Redis).
    pub persisted: usize,
}
