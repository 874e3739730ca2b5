//! What `trackEvent` answers, as the JavaScript wrapper receives it.

use napi::bindgen_prelude::Float64Array;
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

/// Slots of the numbers `trackNow` writes: total, deferred, scheduled at (`NaN`
/// when no batch waits), first seen, last seen.
pub(crate) const RECORD_SLOTS: usize = 5;

/// The record's numbers into `out` (see [`RECORD_SLOTS`]): one `trackEvent` answer
/// without building an object across the boundary.
pub(crate) fn write_record(r: &RecordView, out: &mut [f64]) {
    out[0] = r.total as f64;
    out[1] = r.deferred as f64;
    out[2] = r.scheduled_at_ms().map_or(f64::NAN, |v| v as f64);
    out[3] = (r.first_seen_us / 1_000) as f64;
    out[4] = (r.last_seen_us / 1_000) as f64;
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

/// Numbers per event in a [`TrackBatch`]: the kind (0 immediate, 1 deferred, 2 ignored,
/// 3 failed), then the record's [`RECORD_SLOTS`].
pub(crate) const BATCH_SLOTS: usize = 1 + RECORD_SLOTS;

/// The answers of one `trackBatch` call, in the events' order.
#[napi(object)]
pub struct TrackBatch {
    /// [`BATCH_SLOTS`] numbers per event: the kind (0 immediate, 1 deferred, 2 ignored,
    /// 3 failed), then total, deferred, scheduled at (`NaN` when none), first seen, last
    /// seen (Unix ms; `NaN` for a failed event).
    pub slots: Float64Array,
    /// Per ignored or failed event, in order: the reason, or the error's message.
    pub texts: Vec<String>,
    /// Per failed event, in order: the error's code (`InvalidArg`, `GenericFailure`...).
    pub codes: Vec<String>,
}

impl TrackBatch {
    /// The batch's answers from each event's outcome.
    pub(crate) fn from_outcomes(outcomes: Vec<napi::Result<TrackOutcome>>) -> Self {
        let mut slots = vec![f64::NAN; outcomes.len() * BATCH_SLOTS];
        let mut texts = Vec::new();
        let mut codes = Vec::new();
        for (outcome, out) in outcomes.iter().zip(slots.chunks_exact_mut(BATCH_SLOTS)) {
            match outcome {
                Ok(TrackOutcome::Immediate(r)) => {
                    out[0] = 0.0;
                    write_record(r, &mut out[1..]);
                }
                Ok(TrackOutcome::Deferred(r)) => {
                    out[0] = 1.0;
                    write_record(r, &mut out[1..]);
                }
                Ok(other) => {
                    out[0] = 2.0;
                    texts.push(TrackResult::from(other).reason.unwrap_or_default());
                    write_record(other.record(), &mut out[1..]);
                }
                Err(e) => {
                    out[0] = 3.0;
                    texts.push(e.reason.clone());
                    codes.push(e.status.as_ref().to_string());
                }
            }
        }
        Self {
            slots: Float64Array::new(slots),
            texts,
            codes,
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
