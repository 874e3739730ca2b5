//! The JSON shapes tidegate writes: times in whole milliseconds (rounded up), decisions
//! (as `/v1/check` answers them and `tidegate replay` prints them), and delivered records as the tracker's sinks write them (so that other tools, like
//! `tidegate replay`, print the very same shape).

use serde::Serialize;
use serde_json::Value;
use tidegate::Decision;
use tidegate::tracker::{DeliveredRecord, Details};

/// Microseconds to whole milliseconds, rounded up: a client told to wait must never come
/// back early.
pub fn ms(us: u64) -> u64 {
    us.div_ceil(1_000)
}

/// A decision as JSON: allowed, limit, remaining, retry_after_ms (null when allowed),
/// reset_after_ms, and delay_ms for a shaping (leaky bucket) policy.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DecisionJson {
    /// Whether the request was admitted.
    pub allowed: bool,
    /// The limit of the policy that decided.
    pub limit: u64,
    /// What is left of it.
    pub remaining: u64,
    /// When a denied request may be retried, in ms; `None` when admitted.
    pub retry_after_ms: Option<u64>,
    /// When the limit is whole again, in ms.
    pub reset_after_ms: u64,
    /// How long to hold an admitted request first (shaping policies), in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl From<&Decision> for DecisionJson {
    fn from(d: &Decision) -> Self {
        Self {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            retry_after_ms: d.retry_after_us.map(ms),
            reset_after_ms: ms(d.reset_after_us),
            delay_ms: d.delay_us.map(ms),
        }
    }
}

/// One delivered record as the sinks write it: category, id, count, first/last seen (ms
/// on the tracker's clock: Unix time by default), details (their JSON text as kept, never
/// parsed again), details dropped, failed rounds.
#[derive(Serialize)]
struct RecordOut<'a> {
    category: &'a str,
    id: &'a str,
    count: u64,
    first_seen_ms: u64,
    last_seen_ms: u64,
    details: &'a [Details],
    details_dropped: u64,
    failed_rounds: u32,
}

impl<'a> From<&'a DeliveredRecord> for RecordOut<'a> {
    fn from(r: &'a DeliveredRecord) -> Self {
        Self {
            category: &r.category,
            id: &r.id,
            count: r.count,
            first_seen_ms: ms(r.first_seen_us),
            last_seen_ms: ms(r.last_seen_us),
            details: &r.details,
            details_dropped: r.details_dropped,
            failed_rounds: r.failed_rounds,
        }
    }
}

/// One delivered record as one line of JSON text (no newline).
pub fn record_text(r: &DeliveredRecord) -> String {
    serde_json::to_string(&RecordOut::from(r)).expect("a record always serialises")
}

/// One delivered record as a JSON value (for replays, which print small records).
pub fn record_json(r: &DeliveredRecord) -> Value {
    serde_json::to_value(RecordOut::from(r)).expect("a record always serialises")
}
