//! One record's state: its settings, its gate, its counts and its waiting batch.

use std::sync::Arc;

use super::batch::Batch;
use super::gate::GateState;
use super::settings::RecordSettings;
use crate::tracker::record::{RecordKey, RecordSnapshot, RecordView};

/// The state of one record, everything the tracker's decisions read and change.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record's settings.
    pub settings: RecordSettings,
    /// The state of its strategy gate.
    pub gate: GateState,
    /// Events tracked since the record was created.
    pub total: u64,
    /// First event (µs).
    pub first_seen: u64,
    /// Latest event (µs).
    pub last_seen: u64,
    /// The deferred batch waiting for its due time, if any.
    pub pending: Option<Batch>,
    /// Batches of this record claimed and not settled yet.
    pub in_flight: u32,
}

impl Record {
    /// A record created by an event at `now`, before that event is tracked.
    pub fn new(settings: RecordSettings, now: u64) -> Self {
        Self {
            settings,
            gate: settings.gate.fresh(),
            total: 0,
            first_seen: now,
            last_seen: now,
            pending: None,
            in_flight: 0,
        }
    }

    /// The snapshot handed out for this record.
    pub fn view(&self, key: Arc<RecordKey>) -> RecordView {
        RecordView {
            key,
            total: self.total,
            deferred: self.pending.as_ref().map_or(0, |p| p.count),
            scheduled_at_us: self.pending.as_ref().map(|p| p.due_at),
            first_seen_us: self.first_seen,
            last_seen_us: self.last_seen,
        }
    }

    /// The record as a read-only snapshot (its view, what is in flight, the waiting
    /// batch's failed rounds and details).
    pub fn snapshot(&self, key: Arc<RecordKey>) -> RecordSnapshot {
        let p = self.pending.as_ref();
        RecordSnapshot {
            view: self.view(key),
            in_flight: self.in_flight,
            failed_rounds: p.map_or(0, |p| p.failed_rounds),
            details: p.map_or(0, |p| p.details.len() as u64),
            details_dropped: p.map_or(0, |p| p.dropped),
        }
    }

    /// The snapshot of the record an event at `now` would have created, as a refusal
    /// (no room for another record) reports it: that one event, nothing stored.
    pub fn refused(key: Arc<RecordKey>, now: u64) -> RecordView {
        RecordView {
            key,
            total: 1,
            deferred: 0,
            scheduled_at_us: None,
            first_seen_us: now,
            last_seen_us: now,
        }
    }
}
