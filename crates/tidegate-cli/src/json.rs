//! JSON shapes the command prints and serves: times in whole milliseconds, delivered records.

use serde_json::{Value, json};
use tidegate::tracker::DeliveredRecord;

/// Microseconds to whole milliseconds, rounded up: a client told to wait must never come
/// back early.
pub fn ms(us: u64) -> u64 {
    us.div_ceil(1_000)
}

/// One delivered record: category, id, count, first/last seen (ms on the tracker's clock:
/// Unix time by default), details, details dropped, failed rounds.
pub fn record_json(r: &DeliveredRecord) -> Value {
    json!({
        "category": r.category,
        "id": r.id,
        "count": r.count,
        "first_seen_ms": ms(r.first_seen_us),
        "last_seen_ms": ms(r.last_seen_us),
        "details": r.details,
        "details_dropped": r.details_dropped,
        "failed_rounds": r.failed_rounds,
    })
}
