//! One snapshot of the dashboard: `/admin/stats` (uptime, store, policies, tracker),
//! plus the server's clock, the Redis round trip and each watched queue's counts.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tidegate::queue::{QueueError, WorkQueue};

use super::routes::Watch;

/// Longest the snapshot waits for Redis to answer `PING`.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The snapshot as JSON: every field of `/admin/stats`, with `t_ms` (the server's Unix
/// time in ms), `store.ping_ms` or `store.ping_error` (Redis), and `queues`.
pub(super) async fn snapshot(watch: &Watch) -> Value {
    let mut v = crate::app::stats(&watch.app);
    v["t_ms"] = json!(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    );
    if let Some(store) = &watch.app.policies.redis {
        let start = Instant::now();
        match tokio::time::timeout(PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => {
                v["store"]["ping_ms"] = json!(start.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(Err(e)) => v["store"]["ping_error"] = json!(e.to_string()),
            Err(_) => {
                v["store"]["ping_error"] =
                    json!(format!("Redis did not answer PING within {PING_TIMEOUT:?}"));
            }
        }
    }
    // Every queue at once: one slow queue does not delay the others.
    let tasks: Vec<_> = watch
        .queues
        .iter()
        .map(|q| tokio::spawn(queue(q.clone())))
        .collect();
    let mut queues = Vec::with_capacity(tasks.len());
    for (task, q) in tasks.into_iter().zip(&watch.queues) {
        queues.push(task.await.unwrap_or_else(
            |e| json!({"name": q.name(), "state": "error", "error": e.to_string()}),
        ));
    }
    v["queues"] = Value::Array(queues);
    v
}

/// One queue: `{"name", "state": "ok", "stats": {...}, "pending"}`, or
/// `"state": "unknown"` (nothing pushed yet), or `"state": "error"` with `error`.
async fn queue(q: WorkQueue) -> Value {
    match q.stats().await {
        Ok(s) => json!({"name": q.name(), "state": "ok", "pending": s.pending(), "stats": s}),
        Err(QueueError::UnknownQueue { .. }) => json!({"name": q.name(), "state": "unknown"}),
        Err(e) => json!({"name": q.name(), "state": "error", "error": e.to_string()}),
    }
}
