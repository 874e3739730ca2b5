//! Alert de-duplication: the first occurrence of an error alerts at once; the rest are
//! summarised in one message per error code after the deferral.
//!
//! Run: `cargo run -p tidegate --example alert_dedup`

use std::time::Duration;

use serde_json::json;
use tidegate::tracker::{EventTracker, TrackOutcome};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracker = EventTracker::builder()
        .limit(1) // notify immediately on the first error
        .defer_interval(Duration::from_millis(300)) // batch the rest (5 min in production)
        .processing_interval(Duration::from_millis(100))
        .processor(|batch| async move {
            for r in &batch {
                println!(
                    "summary: {} more occurrences of {} between {} and {} µs",
                    r.count, r.id, r.first_seen_us, r.last_seen_us
                );
            }
            Ok::<_, std::io::Error>(())
        })
        .build()?;

    for (i, code) in [
        "ECONNRESET",
        "ECONNRESET",
        "ETIMEDOUT",
        "ECONNRESET",
        "ECONNRESET",
    ]
    .iter()
    .enumerate()
    {
        match tracker
            .track_event("system_error", code, json!({ "request": i }))
            .await?
        {
            TrackOutcome::Immediate(_) => println!("alert now: {code}"),
            TrackOutcome::Deferred(r) => println!("deferred: {code} ({} waiting)", r.deferred),
            TrackOutcome::Ignored { reason, .. } => println!("ignored: {code} ({reason:?})"),
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // the summary arrives
    tracker.shutdown().await;
    Ok(())
}
