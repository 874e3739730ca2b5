//! What the tracker hands out: outcomes of `track_event`, delivered records, events.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Details;

/// The identity of a record: the exact `(category, id)` pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RecordKey {
    /// The category (`"api_request"`, `"system_error"`, ...).
    pub category: String,
    /// The identifier within the category (a user, an error code, ...).
    pub id: String,
}

/// A snapshot of a record after one tracked event (no details: cheap to hand out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordView {
    /// The record's identity.
    pub key: Arc<RecordKey>,
    /// Events tracked by this record since it was created.
    pub total: u64,
    /// Events in the deferred batch waiting to be processed (0 when none waits).
    pub deferred: u64,
    /// When the waiting batch is due (µs on the tracker's clock), if one waits.
    pub scheduled_at_us: Option<u64>,
    /// First event of the record (µs).
    pub first_seen_us: u64,
    /// Latest event of the record (µs).
    pub last_seen_us: u64,
}

impl RecordView {
    /// The record's category.
    pub fn category(&self) -> &str {
        &self.key.category
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        &self.key.id
    }

    /// When the waiting batch is due, in whole milliseconds (rounded up).
    pub fn scheduled_at_ms(&self) -> Option<u64> {
        self.scheduled_at_us.map(|us| us.div_ceil(1_000))
    }
}

/// What a record is doing now, as [`RecordSnapshot::state`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// No batch waits and none is being processed: the strategy decides the next event.
    Idle,
    /// A deferred batch waits for its due time (a batch may be processed as well).
    Deferred,
    /// No batch waits; a claimed batch is being processed (or waits for a retry).
    Processing,
}

/// A record as its store holds it, read without changing it
/// ([`EventTracker::record`](super::EventTracker::record)); with Redis, what every
/// instance sharing the tracker did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSnapshot {
    /// Counts, first and last seen, and the waiting batch's count and due time.
    pub view: RecordView,
    /// Batches of this record claimed and not settled yet (being processed or retried).
    pub in_flight: u32,
    /// Failed rounds of the waiting batch (0 when none waits).
    pub failed_rounds: u32,
    /// Details kept with the waiting batch.
    pub details: u64,
    /// Details of the waiting batch the caps left out.
    pub details_dropped: u64,
}

impl RecordSnapshot {
    /// Whether a batch waits, one is being processed, or neither.
    pub fn state(&self) -> RecordState {
        if self.view.scheduled_at_us.is_some() {
            RecordState::Deferred
        } else if self.in_flight > 0 {
            RecordState::Processing
        } else {
            RecordState::Idle
        }
    }
}

/// Why an event was not tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IgnoreReason {
    /// The tracker holds `max_keys` records and this event would have created another.
    KeyLimitReached,
    /// The tracker's memory budget (`max_memory_bytes`) is used up and this event would
    /// have created another record.
    MemoryLimitReached,
}

/// What `track_event` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackOutcome {
    /// Within the limit: handle the event now.
    Immediate(RecordView),
    /// Over the limit: the event joined the record's deferred batch, delivered later.
    Deferred(RecordView),
    /// Not tracked (see the reason); nothing was stored.
    Ignored {
        /// Why.
        reason: IgnoreReason,
        /// The record as it would have been.
        record: RecordView,
    },
}

impl TrackOutcome {
    /// The record snapshot, whatever the outcome.
    pub fn record(&self) -> &RecordView {
        match self {
            Self::Immediate(r) | Self::Deferred(r) | Self::Ignored { record: r, .. } => r,
        }
    }

    /// `"immediate"`, `"deferred"` or `"ignored"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Immediate(_) => "immediate",
            Self::Deferred(_) => "deferred",
            Self::Ignored { .. } => "ignored",
        }
    }
}

/// A deferred batch of one record, as the processor receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveredRecord {
    /// The record's category.
    pub category: String,
    /// The record's id.
    pub id: String,
    /// Events in this batch.
    pub count: u64,
    /// First event of the batch (µs on the tracker's clock).
    pub first_seen_us: u64,
    /// Last event of the batch (µs).
    pub last_seen_us: u64,
    /// The details of the batch's events, oldest first, up to the tracker's caps.
    pub details: Vec<Details>,
    /// Details the caps left out (`max_details`, and the byte bounds: `max_detail_bytes`,
    /// `max_batch_bytes`, `max_memory_bytes`).
    pub details_dropped: u64,
    /// Rounds of processing (each with its retries) that failed before this delivery.
    pub failed_rounds: u32,
}

/// A batch that kept failing, handed to the dead-letter sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The records of the batch.
    pub records: Vec<DeliveredRecord>,
    /// The processor's last error.
    pub error: String,
    /// Processor calls made for this batch, over all rounds.
    pub attempts: u32,
}

/// Something that happened in the tracker, for subscribers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TrackerEvent {
    /// An event was immediate.
    Immediate(RecordView),
    /// An event was deferred.
    Deferred(RecordView),
    /// An event was ignored.
    Ignored {
        /// Why.
        reason: IgnoreReason,
        /// The record as it would have been.
        record: RecordView,
    },
    /// The processor accepted a batch.
    Processed(Arc<[DeliveredRecord]>),
    /// The processor failed; the batch is tried again after `delay`.
    Retry {
        /// The attempt that failed (1 = the first call).
        attempt: u32,
        /// Retries allowed per round.
        max_retries: u32,
        /// Wait before the next attempt.
        delay: Duration,
        /// The batch.
        events: Arc<[DeliveredRecord]>,
    },
    /// Every attempt of a round failed: the records are deferred again (or dead-lettered).
    ProcessFailed {
        /// The last error.
        error: String,
        /// The batch.
        events: Arc<[DeliveredRecord]>,
        /// Processor calls made in this round.
        attempts: u32,
    },
    /// `update_config` changed a record.
    ConfigUpdated(RecordView),
    /// Something went wrong outside the processor (e.g. the dead-letter sink failed).
    Error(String),
}
