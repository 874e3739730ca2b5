//! A queue worker that counts how many times each job ran, for the tests that check
//! that no job is lost (and how many ran twice) across a Redis failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate::queue::{ClaimedJob, WorkQueue, Worker, WorkerHandle, WorkerOptions};

/// Runs of each job, by its payload's `n`.
pub type Runs = Arc<Mutex<BTreeMap<u64, u32>>>;

/// Starts a worker on `queue` with `concurrency` slots, a 2 s lease and short pauses,
/// whose handler records the job's `n` and takes `work` per job.
pub fn counting_worker(
    queue: &WorkQueue,
    concurrency: usize,
    work: Duration,
) -> (WorkerHandle, Runs) {
    let runs: Runs = Arc::default();
    let r = Arc::clone(&runs);
    let handler = move |job: ClaimedJob| {
        let r = Arc::clone(&r);
        async move {
            let n = job.payload["n"].as_u64().unwrap();
            *r.lock().unwrap().entry(n).or_default() += 1;
            tokio::time::sleep(work).await;
            Ok(())
        }
    };
    let worker = Worker::start(
        queue.clone(),
        WorkerOptions {
            worker_id: Some("w".into()),
            concurrency,
            lease: Duration::from_secs(2),
            error_pause: Duration::from_millis(100),
            idle_poll: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
        handler,
    )
    .unwrap();
    (worker, runs)
}

/// Waits (at most 30 s) until `queue` has nothing pending, stops `worker`, and checks
/// that every job `0..jobs` ran (none lost `across` the failure); returns how many ran
/// more than once.
pub async fn drained_and_none_lost(
    queue: &WorkQueue,
    worker: WorkerHandle,
    runs: &Runs,
    jobs: u64,
    across: &str,
) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while queue.stats().await.map_or(true, |s| s.pending() > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the queue did not drain {across}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    let runs = runs.lock().unwrap().clone();
    let missing: Vec<u64> = (0..jobs).filter(|n| !runs.contains_key(n)).collect();
    assert!(missing.is_empty(), "jobs lost {across}: {missing:?}");
    runs.values().filter(|&&c| c > 1).count()
}
