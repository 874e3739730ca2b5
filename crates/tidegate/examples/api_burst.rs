//! API burst management: a token bucket lets each user burst 10 requests, refilling
//! 0.5 per second; requests beyond are kept and handed over in batches, never dropped.
//!
//! Run: `cargo run -p tidegate --example api_burst`

use std::time::Duration;

use serde_json::json;
use tidegate::tracker::{EventTracker, Strategy};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracker = EventTracker::builder()
        .strategy(Strategy::TokenBucket {
            bucket_size: 10,
            refill_rate: 0.5,
        })
        .processing_interval(Duration::from_millis(100))
        .processor(|deferred| async move {
            for r in &deferred {
                println!("handling {} deferred requests of {}", r.count, r.id);
            }
            Ok::<_, std::io::Error>(())
        })
        .build()?;

    let mut immediate = 0;
    for i in 0..25 {
        if matches!(
            tracker
                .track_event(
                    "api_request",
                    "user-42",
                    json!({ "path": "/orders", "n": i })
                )
                .await?,
            tidegate::tracker::TrackOutcome::Immediate(_)
        ) {
            immediate += 1;
        }
    }
    println!("{immediate} of 25 requests ran at once; the rest wait for a token");
    let report = tracker.shutdown().await; // deliver what is still deferred, now
    println!("delivered at shutdown: {} record(s)", report.delivered);
    Ok(())
}
