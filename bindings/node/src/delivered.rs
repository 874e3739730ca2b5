//! Delivered batches as the JSON text the JavaScript side parses into records.

use serde_json::{Value, json};
use tidegate::tracker::{DeliveredRecord, RecordView};

/// Microseconds as whole milliseconds (rounded down).
fn ms(us: u64) -> u64 {
    us / 1_000
}

/// One delivered record: `category`, `id`, `count`, `details` (the events' details,
/// oldest first), `detailsDropped`, `firstEventTime` / `lastEventTime` (Unix ms),
/// `failedRounds`.
pub(crate) fn record_value(r: &DeliveredRecord) -> Value {
    json!({
        "category": r.category,
        "id": r.id,
        "count": r.count,
        "details": r.details,
        "detailsDropped": r.details_dropped,
        "firstEventTime": ms(r.first_seen_us),
        "lastEventTime": ms(r.last_seen_us),
        "failedRounds": r.failed_rounds,
    })
}

/// A batch as a JSON array of records.
pub(crate) fn batch_value(records: &[DeliveredRecord]) -> Value {
    Value::Array(records.iter().map(record_value).collect())
}

/// A record snapshot (`config_updated`): `category`, `id`, `count` (events tracked),
/// `deferredCount`, `scheduledSendAt`, `firstEventTime`, `lastEventTime` (Unix ms).
pub(crate) fn view_value(r: &RecordView) -> Value {
    json!({
        "category": r.category(),
        "id": r.id(),
        "count": r.total,
        "deferred": r.deferred > 0,
        "deferredCount": r.deferred,
        "scheduledSendAt": r.scheduled_at_ms(),
        "firstEventTime": ms(r.first_seen_us),
        "lastEventTime": ms(r.last_seen_us),
    })
}
