//! What `trackEvent` answers, as the JavaScript wrapper receives it.

use napi_derive::napi;
use tidegate::tracker::{IgnoreReason, RecordSnapshot, RecordState, RecordView, TrackOutcome};

/// One tracked event's outcome and the record's snapshot; times in milliseconds.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct TrackResult {
    /// `"immediate"`, `"deferred"` or `"ignored"`.
    pub kind: String,
    /// Why an event was ignored (`"key_limit_reached"`, `"memory_limit_reached"`).
    pub reason: Option<String>,
    /// Events the record tracked since it was created.
    pub total: f64,
    /// Events in the record's waiting batch (0 when none waits).
    pub deferred: f64,
    /// When the waiting batch is due (Unix ms, rounded up), if one waits.
    pub scheduled_at: Option<f64>,
    /// The record's first event (Unix ms).
    pub first_seen: f64,
    /// The record's latest event (Unix ms).
    pub last_seen: f64,
}

/// The reason's name, as tidegate serialises it.
pub(crate) fn reason_name(reason: IgnoreReason) -> String {
    match reason {
        IgnoreReason::KeyLimitReached => "key_limit_reached".into(),
        IgnoreReason::MemoryLimitReached => "memory_limit_reached".into(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

fn snapshot(kind: &str, reason: Option<String>, r: &RecordView) -> TrackResult {
    TrackResult {
        kind: kind.into(),
        reason,
        total: r.total as f64,
        deferred: r.deferred as f64,
        scheduled_at: r.scheduled_at_ms().map(|v| v as f64),
        first_seen: (r.first_seen_us / 1_000) as f64,
        last_seen: (r.last_seen_us / 1_000) as f64,
    }
}

impl From<&TrackOutcome> for TrackResult {
    fn from(o: &TrackOutcome) -> Self {
        match o {
            TrackOutcome::Ignored { reason, record } => {
                snapshot("ignored", Some(reason_name(*reason)), record)
            }
            other => snapshot(other.kind(), None, other.record()),
        }
    }
}

/// A record as the tracker's store holds it (`getEvent`); times in milliseconds.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// The record's category.
    pub category: String,
    /// The record's id.
    pub id: String,
    /// Events the record tracked since it was created (or reset).
    pub total: f64,
    /// Events in the record's waiting batch (0 when none waits).
    pub deferred: f64,
    /// When the waiting batch is due (Unix ms, rounded up), if one waits.
    pub scheduled_at: Option<f64>,
    /// The record's first event (Unix ms).
    pub first_seen: f64,
    /// The record's latest event (Unix ms).
    pub last_seen: f64,
    /// `"idle"`, `"deferred"` (a batch waits) or `"processing"` (a batch is being
    /// processed or retried).
    pub state: String,
    /// Batches of the record being processed or retried.
    pub in_flight: f64,
    /// Failed rounds of the waiting batch.
    pub failed_rounds: f64,
    /// Details kept with the waiting batch.
    pub details: f64,
    /// Details of the waiting batch the caps left out.
    pub details_dropped: f64,
}

impl From<&RecordSnapshot> for StoredRecord {
    fn from(s: &RecordSnapshot) -> Self {
        let r = snapshot("stored", None, &s.view);
        let state = match s.state() {
            RecordState::Idle => "idle",
            RecordState::Deferred => "deferred",
            RecordState::Processing => "processing",
        };
        StoredRecord {
            category: s.view.category().to_string(),
            id: s.view.id().to_string(),
            total: r.total,
            deferred: r.deferred,
            scheduled_at: r.scheduled_at,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            state: state.into(),
            in_flight: f64::from(s.in_flight),
            failed_rounds: f64::from(s.failed_rounds),
            details: s.details as f64,
            details_dropped: s.details_dropped as f64,
        }
    }
}
