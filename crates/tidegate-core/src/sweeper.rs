//! One background thread (`tidegate-sweep`) sweeps the expired states of every
//! [`Limiter`](crate::Limiter) of the process, however many there are.
//!
//! Each limiter registers a job with its sweep interval; the thread runs each job's next
//! shard when it is due (a full pass of a store is spread over its interval), in bounded
//! steps that hold one shard lock at a time. A job holds only a weak reference to its
//! store and is dropped with it; an empty store is looked at once per interval.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// What one sweep step of a job found.
pub(crate) enum Step {
    /// The store is gone: forget the job.
    Dropped,
    /// The store holds no key: nothing to do until its next pass.
    Empty,
    /// One shard was swept; the store has `shards` shards.
    Swept { shards: usize },
}

/// A store to sweep: [`step`](SweepJob::step) sweeps its next shard.
pub(crate) trait SweepJob: Send {
    fn step(&mut self) -> Step;
}

struct Scheduled {
    at: Instant,
    seq: u64,
    interval: Duration,
    job: Box<dyn SweepJob>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Registry {
    new_jobs: Mutex<Vec<Scheduled>>,
    wake: Condvar,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Hands `job` to the process's sweeper thread (started on first use), to be swept
/// once per `interval`.
pub(crate) fn register(job: Box<dyn SweepJob>, interval: Duration) {
    let registry = REGISTRY.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("tidegate-sweep".into())
            .spawn(run);
        if let Err(e) = spawned {
            // Without the sweeper the stores still work: full stores evict expired states.
            eprintln!("tidegate: could not start the sweeper thread: {e}");
        }
        Registry {
            new_jobs: Mutex::new(Vec::new()),
            wake: Condvar::new(),
        }
    });
    let mut new_jobs = registry
        .new_jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    new_jobs.push(Scheduled {
        at: Instant::now(),
        seq: 0,
        interval: interval.max(Duration::from_millis(1)),
        job,
    });
    registry.wake.notify_one();
}

/// The sweeper thread: runs the due jobs, then sleeps until the next one is due or a
/// job is registered.
fn run() {
    let registry = loop {
        // `register` sets the registry right after spawning this thread.
        if let Some(r) = REGISTRY.get() {
            break r;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut queue: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        {
            let mut new_jobs = registry
                .new_jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if new_jobs.is_empty() {
                let wait = match queue.peek() {
                    Some(Reverse(next)) => next.at.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3_600),
                };
                if !wait.is_zero() {
                    new_jobs = registry
                        .wake
                        .wait_timeout(new_jobs, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            for mut job in new_jobs.drain(..) {
                seq += 1;
                job.seq = seq;
                queue.push(Reverse(job));
            }
        }
        let now = Instant::now();
        while let Some(Reverse(next)) = queue.peek() {
            if next.at > now {
                break;
            }
            let Reverse(mut due) = queue.pop().expect("peeked");
            let wait = match due.job.step() {
                Step::Dropped => continue,
                Step::Empty => due.interval,
                Step::Swept { shards } => due.interval / shards.max(1) as u32,
            };
            due.at = now + wait;
            seq += 1;
            due.seq = seq;
            queue.push(Reverse(due));
        }
    }
}
