//! Log aggregation: up to 100 log lines per source go out immediately; beyond that they
//! are batched and written together every few hundred milliseconds, with a dead-letter
//! sink for batches the writer keeps refusing.
//!
//! Run: `cargo run -p tidegate --example log_aggregation`

use std::time::Duration;

use serde_json::json;
use tidegate::tracker::EventTracker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracker = EventTracker::builder()
        .limit(100)
        .defer_interval(Duration::from_millis(200))
        .processing_interval(Duration::from_millis(50))
        .max_details(1_000)
        .processor(|logs| async move {
            let lines: usize = logs.iter().map(|r| r.details.len()).sum();
            println!("bulk-indexed {lines} log lines from {} sources", logs.len());
            Ok::<_, std::io::Error>(())
        })
        .dead_letter(|letter| async move {
            eprintln!(
                "dead letter: {} records ({})",
                letter.records.len(),
                letter.error
            );
            Ok::<_, std::io::Error>(())
        })
        .build()?;

    for i in 0..1_000 {
        let source = if i % 2 == 0 { "api" } else { "worker" };
        tracker
            .track_event("log", source, json!({ "line": i }))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    println!("{:?}", tracker.stats());
    tracker.shutdown().await;
    Ok(())
}
