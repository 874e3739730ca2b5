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
