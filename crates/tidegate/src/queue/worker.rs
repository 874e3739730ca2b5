//! Workers: claim jobs under the shared rate, run an async handler per job, renew its
//! lease while it runs, retry failures with exponential backoff.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Claim, ClaimOptions, ClaimedJob, DeadlineInfo, FailOutcome, QueueError, WorkQueue};
use crate::Backoff;
use crate::rate::Rate;

/// Why a job's handler failed, and whether another attempt may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    message: String,
    retryable: bool,
}

impl JobError {
    /// A failure worth retrying (after the backoff, while attempts remain).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix: the job goes to the failed set at once.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// The error message recorded on the job.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may be made.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

/// The boxed future a [`Handler`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// Processes one job. Implemented for every `Fn(ClaimedJob) -> impl Future<Output =
/// Result<(), JobError>>`.
pub trait Handler: Send + Sync + 'static {
    /// Runs the job; `Ok` completes it.
    fn handle(&self, job: ClaimedJob) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn handle(&self, job: ClaimedJob) -> HandlerFuture {
        Box::pin(self(job))
    }
}

/// Exponential backoff between attempts: `base * factor^(attempt - 1)`, at most `max`,
/// then reduced by a random fraction of up to `jitter` (0 = exact delays).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts a job gets in total (default 3; 1 = no retry).
    pub max_attempts: u32,
    /// The delay after the first failed attempt (default 1 s).
    pub base: Duration,
    /// Growth per further attempt (default 2).
    pub factor: f64,
    /// The longest delay (default 5 min).
    pub max: Duration,
    /// Largest fraction (0..=1) taken off each delay at random, so retries of jobs that
    /// failed together spread out (default 0.1).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// The delays between attempts, as the one [`Backoff`] the tracker retries by too.
    pub fn schedule(&self) -> Backoff {
        Backoff {
            base: self.base,
            factor: self.factor,
            max: self.max,
            jitter: self.jitter,
        }
    }

    /// Checks the values; errors name the field.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |field: &str, reason: &str| QueueError::Option {
            field: format!("retry.{field}"),
            reason: reason.into(),
        };
        if self.max_attempts == 0 {
            return Err(bad("max_attempts", "must be at least 1"));
        }
        self.schedule()
            .validate()
            .map_err(|e| bad(e.field, e.reason))
    }

    /// The delay after failed attempt number `attempt` (1-based), with `random` in
    /// `0.0..1.0` choosing the jitter.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        self.schedule().delay(attempt, random)
    }
}

/// Settings of a [`Worker`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// This process's worker id (default `HOST-PID-RANDOM`).
    pub worker_id: Option<String>,
    /// Jobs run at once at start (default 1).
    pub concurrency: usize,
    /// Most jobs [`WorkerHandle::set_concurrency`] may allow at once (default: `concurrency`).
    pub max_concurrency: usize,
    /// How long a claimed job stays this worker's without renewal (default 30 s). A job
    /// whose worker died returns to waiting this long after its last renewal.
    pub lease: Duration,
    /// How often a running job's lease is renewed (default a third of the lease).
    pub renew_every: Option<Duration>,
    /// The global rate of starts, shared by every worker of the queue (default none).
    pub rate: Option<Rate>,
    /// The rate of starts of each group (default none).
    pub group_rate: Option<Rate>,
    /// How far ahead a start slot of the global rate may be reserved: a job claimed
    /// with a reserved slot waits in this worker (leased) until its slot, so starts keep
    /// the exact rate (default: a third of the lease, at most 5 s; zero: never).
    pub reserve: Option<Duration>,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// How long an idle slot sleeps when nothing is waiting (default 100 ms; shorter
    /// if a delayed job is due sooner).
    pub idle_poll: Duration,
    /// How long a slot waits after Redis failed (default 500 ms).
    pub error_pause: Duration,
    /// How often the process's heartbeat is written (default 1 s).
    pub heartbeat: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            worker_id: None,
            concurrency: 1,
            max_concurrency: 1,
            lease: Duration::from_secs(30),
            renew_every: None,
            rate: None,
            group_rate: None,
            reserve: None,
            retry: RetryPolicy::default(),
            idle_poll: Duration::from_millis(100),
            error_pause: Duration::from_millis(500),
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// Counters of a [`Worker`] since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct WorkerStats {
    /// Jobs completed.
    pub completed: u64,
    /// Jobs moved to the failed set by this worker.
    pub failed: u64,
    /// Failed attempts scheduled for a retry.
    pub retried: u64,
    /// Jobs whose lease this worker lost before finishing (their result was dropped).
    pub lease_lost: u64,
    /// Jobs running now.
    pub busy: u64,
    /// Concurrency allowed now.
    pub concurrency: u64,
    /// Attempts finished (completed or failed) and their total handler time, in µs.
    pub finished: u64,
    /// Total handler time of the finished attempts, in µs.
    pub processing_us: u64,
    /// Redis errors met while claiming or reporting.
    pub redis_errors: u64,
}

impl WorkerStats {
    /// The mean handler time of finished attempts, if any finished.
    pub fn avg_processing(&self) -> Option<Duration> {
        (self.finished > 0).then(|| Duration::from_micros(self.processing_us / self.finished))
    }
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    lease_lost: AtomicU64,
    busy: AtomicU64,
    finished: AtomicU64,
    processing_us: AtomicU64,
    redis_errors: AtomicU64,
}

/// (target concurrency, stopping)
type Control = (usize, bool);

struct Shared {
    queue: WorkQueue,
    options: WorkerOptions,
    claim: ClaimOptions,
    handler: Arc<dyn Handler>,
    control: watch::Sender<Control>,
    counters: Counters,
    deadline: Mutex<Option<DeadlineInfo>>,
    busy_slots: AtomicUsize,
}

/// Starts workers: see [`Worker::start`].
#[derive(Debug, Clone, Copy)]
pub struct Worker;

impl Worker {
    /// Starts `options.max_concurrency` job slots on the current tokio runtime, of which
    /// `options.concurrency` claim jobs, plus a heartbeat; returns the handle that scales
    /// and stops them.
    pub fn start(
        queue: WorkQueue,
        options: WorkerOptions,
        handler: impl Handler,
    ) -> Result<WorkerHandle, QueueError> {
        options.retry.validate()?;
        let bad = |field: &str, reason: &str| QueueError::Option {
            field: field.into(),
            reason: reason.into(),
        };
        let max = options.max_concurrency.max(options.concurrency);
        if max == 0 {
            return Err(bad("max_concurrency", "must be at least 1"));
        }
        if max > 10_000 {
            return Err(bad("max_concurrency", "must be at most 10000"));
        }
        if options.lease < Duration::from_millis(100) {
            return Err(bad("lease", "must be at least 100 ms"));
        }
        if options
            .renew_every
            .is_some_and(|every| every.is_zero() || every >= options.lease)
        {
            return Err(bad(
                "renew_every",
                "must be greater than zero and shorter than the lease",
            ));
        }
        if options.idle_poll.is_zero() {
            return Err(bad("idle_poll", "must be greater than zero"));
        }
        let worker_id = options.worker_id.clone().unwrap_or_else(default_worker_id);
        if worker_id.is_empty() || worker_id.contains(char::is_whitespace) {
            return Err(bad("worker_id", "must be non-empty, without whitespace"));
        }
        let claim = ClaimOptions {
            worker_id: worker_id.clone(),
            lease: options.lease,
            max_attempts: options.retry.max_attempts,
            rate: options.rate,
            group_rate: options.group_rate,
            reserve: options
                .reserve
                .unwrap_or_else(|| (options.lease / 3).min(Duration::from_secs(5)))
                .min(options.lease / 3),
        };
        let (control, _) = watch::channel((options.concurrency.min(max), false));
        let options = WorkerOptions {
            worker_id: Some(worker_id),
            max_concurrency: max,
            ..options
        };
        let shared = Arc::new(Shared {
            queue,
            options,
            claim,
            handler: Arc::new(handler),
            control,
            counters: Counters::default(),
            deadline: Mutex::new(None),
            busy_slots: AtomicUsize::new(0),
        });
        let mut tasks = Vec::with_capacity(max + 1);
        for slot in 0..max {
            tasks.push(tokio::spawn(run_slot(Arc::clone(&shared), slot)));
        }
        tasks.push(tokio::spawn(run_heartbeat(Arc::clone(&shared))));
        Ok(WorkerHandle {
            shared,
            tasks: Mutex::new(tasks),
        })
    }
}

/// Scales and stops a running [`Worker`]. Dropping it without [`stop`](Self::stop)
/// aborts the slots (running jobs are then redelivered after their lease).
pub struct WorkerHandle {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("worker_id", &self.shared.claim.worker_id)
            .field("concurrency", &self.concurrency())
            .finish()
    }
}

impl WorkerHandle {
    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.shared.claim.worker_id
    }

    /// The queue it works on.
    pub fn queue(&self) -> &WorkQueue {
        &self.shared.queue
    }

    /// Most concurrent jobs it can be scaled to.
    pub fn max_concurrency(&self) -> usize {
        self.shared.options.max_concurrency
    }

    /// The options it runs with.
    pub fn options(&self) -> &WorkerOptions {
        &self.shared.options
    }

    /// Jobs allowed at once now.
    pub fn concurrency(&self) -> usize {
        self.shared.control.borrow().0
    }

    /// Allows `n` jobs at once (at most `max_concurrency`); slots above `n` finish their
    /// current job and then idle. Returns the concurrency set.
    pub fn set_concurrency(&self, n: usize) -> usize {
        let n = n.min(self.shared.options.max_concurrency);
        self.shared.control.send_modify(|c| c.0 = n);
        n
    }

    /// Records the deadline of the current run in the heartbeat (for monitors).
    pub fn set_deadline(&self, deadline: Option<DeadlineInfo>) {
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    /// Counters since start.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.shared.counters;
        WorkerStats {
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            lease_lost: c.lease_lost.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            concurrency: self.concurrency() as u64,
            finished: c.finished.load(Ordering::Relaxed),
            processing_us: c.processing_us.load(Ordering::Relaxed),
            redis_errors: c.redis_errors.load(Ordering::Relaxed),
        }
    }

    /// Graceful stop: no new claims; running jobs finish (and are completed or failed);
    /// the worker leaves the live list. Returns the final counters.
    pub async fn stop(&self) -> WorkerStats {
        self.shared.control.send_modify(|c| c.1 = true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        let _ = self.shared.queue.leave(&self.shared.claim.worker_id).await;
        self.stats()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| {
            h.trim()
                .replace(|c: char| c.is_whitespace() || c == ':', "-")
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        random_u64() & 0xffff
    )
}

/// A random number: a counter hashed with ahash's random per-process keys (as the tracker's
/// retry jitter does); good enough for jitter and worker ids.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    ahash::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleeps `d`, or less if the control changes (scale or stop); returns whether it changed.
async fn pause(control: &mut watch::Receiver<Control>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = control.changed() => true,
    }
}

async fn run_slot(shared: Arc<Shared>, slot: usize) {
    let mut control = shared.control.subscribe();
    // The claim made together with the previous job's completion, if any.
    let mut next: Option<Claim> = None;
    loop {
        let claim = match next.take() {
            // Already leased to this worker: run it, even when stopping or scaled down.
            Some(Claim::Job(job)) => Ok(Claim::Job(job)),
            other => {
                let (target, stopping) = *control.borrow_and_update();
                if stopping {
                    return;
                }
                if slot >= target {
                    if control.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                match other {
                    Some(claim) => Ok(claim),
                    None => shared.queue.claim(&shared.claim).await,
                }
            }
        };
        match claim {
            Ok(Claim::Job(job)) => next = run_job(&shared, job, slot).await,
            Ok(Claim::Wait(d)) => {
                pause(&mut control, d).await;
            }
            Ok(Claim::Empty { next_due }) => {
                let d = next_due.map_or(shared.options.idle_poll, |due| {
                    due.min(shared.options.idle_poll)
                });
                pause(&mut control, d.max(Duration::from_millis(1))).await;
            }
            Err(e) => {
                shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, queue = shared.queue.name(), "tidegate queue: claim failed");
                pause(&mut control, shared.options.error_pause).await;
            }
        }
    }
}

/// Runs one job and records its outcome; after a success, while this slot stays active,
/// the next claim is made in the same call and returned.
async fn run_job(shared: &Arc<Shared>, job: ClaimedJob, slot: usize) -> Option<Claim> {
    let c = &shared.counters;
    c.busy.fetch_add(1, Ordering::Relaxed);
    shared.busy_slots.fetch_add(1, Ordering::Relaxed);
    let lease = shared.options.lease;
    let every = shared.options.renew_every.unwrap_or(lease / 3);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if !job.start_in.is_zero() {
        // The job's reserved start slot (at most a third of the lease away).
        tokio::time::sleep(job.start_in).await;
    }
    let started = Instant::now();
    let mut running = tokio::spawn(shared.handler.handle(job.clone()));
    let mut lost = false;
    let result = loop {
        tokio::select! {
            r = &mut running => break r,
            _ = renew.tick() => {
                match shared.queue.renew(&job, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if !lost {
                            tracing::warn!(job = job.id, queue = shared.queue.name(), "tidegate queue: lease lost while the job runs");
                        }
                        lost = true;
                    }
                    Err(e) => {
                        c.redis_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, job = job.id, "tidegate queue: lease renewal failed");
                    }
                }
            }
        }
    };
    let elapsed = started.elapsed();
    c.finished.fetch_add(1, Ordering::Relaxed);
    c.processing_us
        .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    let result = match result {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(JobError::retryable("the handler panicked")),
        Err(_) => Err(JobError::retryable("the handler was cancelled")),
    };
    // Report the outcome; a Redis error is retried a few times, then the lease decides.
    let mut next = None;
    for attempt in 0..3 {
        let chain = {
            let (target, stopping) = *shared.control.borrow();
            !stopping && slot < target
        };
        let outcome = match &result {
            Ok(()) if chain => shared
                .queue
                .complete_and_claim(&job, &shared.claim)
                .await
                .map(|(held, claim)| {
                    next = Some(claim);
                    if held {
                        c.completed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.lease_lost.fetch_add(1, Ordering::Relaxed);
                    }
                }),
            Ok(()) => shared.queue.complete(&job).await.map(|held| {
                if held {
                    c.completed.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.lease_lost.fetch_add(1, Ordering::Relaxed);
                }
            }),
            Err(e) => {
                let retry = &shared.options.retry;
                let backoff = retry.backoff(job.attempt, random_unit());
                shared
                    .queue
                    .fail(
                        &job,
                        e.message(),
                        e.is_retryable(),
                        backoff,
                        retry.max_attempts,
                    )
                    .await
                    .map(|outcome| match outcome {
                        FailOutcome::Retrying => {
                            c.retried.fetch_add(1, Ordering::Relaxed);
                        }
                        FailOutcome::Failed => {
                            c.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        FailOutcome::LeaseLost => {
                            c.lease_lost.fetch_add(1, Ordering::Relaxed);
                        }
                    })
            }
        };
        match outcome {
            Ok(()) => break,
            Err(e) => {
                c.redis_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, job = job.id, attempt, "tidegate queue: could not record the job's outcome");
                tokio::time::sleep(shared.options.error_pause).await;
            }
        }
    }
    c.busy.fetch_sub(1, Ordering::Relaxed);
    shared.busy_slots.fetch_sub(1, Ordering::Relaxed);
    next
}

async fn run_heartbeat(shared: Arc<Shared>) {
    let mut control = shared.control.subscribe();
    loop {
        let (target, stopping) = *control.borrow_and_update();
        if stopping {
            return;
        }
        let deadline = *shared.deadline.lock().unwrap_or_else(|p| p.into_inner());
        let busy = shared.busy_slots.load(Ordering::Relaxed) as u64;
        if let Err(e) = shared
            .queue
            .heartbeat(&shared.claim.worker_id, target as u64, busy, deadline)
            .await
        {
            tracing::debug!(error = %e, "tidegate queue: heartbeat failed");
        }
        pause(&mut control, shared.options.heartbeat).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_max() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            factor: 3.0,
            max: Duration::from_secs(2),
            jitter: 0.0,
        };
        let d: Vec<u128> = (1..=5).map(|a| p.backoff(a, 0.7).as_millis()).collect();
        assert_eq!(d, vec![100, 300, 900, 2000, 2000]);
    }

    #[test]
    fn jitter_only_shortens_the_delay_by_at_most_its_fraction() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(p.backoff(2, 1.0), Duration::from_secs(1));
        for _ in 0..1000 {
            let d = p.backoff(2, random_unit());
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
    }

    #[test]
    fn invalid_retry_settings_name_the_field() {
        let bad = RetryPolicy {
            factor: 0.5,
            ..RetryPolicy::default()
        };
        assert!(
            matches!(bad.validate(), Err(QueueError::Option { field, .. }) if field == "retry.factor")
        );
        let bad = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(
            matches!(bad.validate(), Err(QueueError::Option { field, .. }) if field == "retry.max_attempts")
        );
    }
}
