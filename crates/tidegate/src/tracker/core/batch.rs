//! A record's deferred batch: the events waiting for delivery, and the merge of their
//! details within the bounds.

use super::settings::DetailLimits;
use crate::tracker::Details;
use crate::tracker::budget::detail_cost;
use crate::tracker::record::{DeliveredRecord, RecordKey};

/// A deferred batch waiting in a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Events in the batch.
    pub count: u64,
    /// First event of the batch (µs).
    pub first_seen: u64,
    /// Last event of the batch (µs).
    pub last_seen: u64,
    /// When the batch is due (µs).
    pub due_at: u64,
    /// The details kept, oldest first.
    pub details: Vec<Details>,
    /// Bytes the kept details are charged (text and overhead).
    pub detail_bytes: usize,
    /// Details left out by a bound.
    pub dropped: u64,
    /// Rounds of processing that failed for this batch.
    pub failed_rounds: u32,
}

/// What became of one event's detail offered to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailFate {
    /// The event had no detail (`null`).
    None,
    /// Kept in the batch.
    Kept,
    /// Left out and counted in the batch's `dropped`; `by_size` when a byte bound (the
    /// detail's size, the batch's bytes or the budget) left it out rather than
    /// `max_details`.
    Dropped {
        /// A byte bound left it out.
        by_size: bool,
    },
}

impl Batch {
    /// A batch opened by the event at `now`, due at `due_at`.
    pub fn open(now: u64, due_at: u64) -> Self {
        Self {
            count: 1,
            first_seen: now,
            last_seen: now,
            due_at,
            details: Vec::new(),
            detail_bytes: 0,
            dropped: 0,
            failed_rounds: 0,
        }
    }

    /// A claimed batch whose round failed, back in its record, due at `due_at`.
    pub fn back(r: DeliveredRecord, due_at: u64) -> Self {
        Self {
            count: r.count,
            first_seen: r.first_seen_us,
            last_seen: r.last_seen_us,
            due_at,
            detail_bytes: r.details.iter().map(|d| detail_cost(d.len())).sum(),
            details: r.details,
            dropped: r.details_dropped,
            failed_rounds: r.failed_rounds + 1,
        }
    }

    /// Offers one event's detail: kept when the batch has room under every bound and
    /// `charge` accepts its bytes (the store's budget), otherwise counted as dropped.
    /// `charge` is asked only when every other bound allows.
    pub fn add_detail(
        &mut self,
        detail: Details,
        limits: &DetailLimits,
        charge: impl FnOnce(usize) -> bool,
    ) -> DetailFate {
        if detail.is_null() {
            return DetailFate::None;
        }
        let cost = detail_cost(detail.len());
        if self.details.len() >= limits.max_details {
            self.dropped += 1;
            return DetailFate::Dropped { by_size: false };
        }
        if detail.len() > limits.max_detail_bytes
            || self.detail_bytes + cost > limits.max_batch_bytes
            || !charge(cost)
        {
            self.dropped += 1;
            return DetailFate::Dropped { by_size: true };
        }
        self.details.push(detail);
        self.detail_bytes += cost;
        DetailFate::Kept
    }

    /// Merges `newer` (a batch opened while this one was in flight) after this one: its
    /// events and drops are added, its details kept within `max_details` and
    /// `max_batch_bytes`, the rest dropped and their charged bytes given to `release`.
    pub fn absorb(&mut self, newer: Batch, limits: &DetailLimits, mut release: impl FnMut(usize)) {
        self.count += newer.count;
        self.last_seen = newer.last_seen;
        self.dropped += newer.dropped;
        for d in newer.details {
            let cost = detail_cost(d.len());
            if self.details.len() < limits.max_details
                && self.detail_bytes + cost <= limits.max_batch_bytes
            {
                self.details.push(d);
                self.detail_bytes += cost;
            } else {
                self.dropped += 1;
                release(cost);
            }
        }
    }

    /// The batch as the processor receives it.
    pub fn deliver(self, key: &RecordKey) -> DeliveredRecord {
        DeliveredRecord {
            category: key.category.clone(),
            id: key.id.clone(),
            count: self.count,
            first_seen_us: self.first_seen,
            last_seen_us: self.last_seen,
            details: self.details,
            details_dropped: self.dropped,
            failed_rounds: self.failed_rounds,
        }
    }
}
