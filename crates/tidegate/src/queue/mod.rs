//! A durable work queue on Redis whose workers, across every process, share one global
//! rate (GCRA, checked in Redis in the same script that starts a job).
//!
//! - [`WorkQueue`]: push jobs (JSON payload, priority, group, delay), claim, complete,
//!   fail, stats, clear, retry the failed ones. Every state change is one atomic Lua
//!   script; every key of a queue shares the hash tag `{NAME}` (Redis Cluster works).
//! - [`Worker`]: runs an async handler per job, renews leases, retries with exponential
//!   backoff, scales between a minimum and a maximum number of concurrent jobs.
//! - [`autoscale`]: the deadline formula (a pure function) and the controller that sets
//!   a [`Worker`]'s concurrency from it.
//!
//! See `docs/QUEUE.md`.

pub mod autoscale;
mod worker;

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::PolicyError;
use crate::policy::{AlgorithmKind, Policy};
use crate::rate::Rate;
use crate::store::redis::{RedisStore, RedisStoreError};

pub use autoscale::{AutoscaleOptions, Autoscaler, Plan, PlanInput, RunReport, plan};
pub use worker::{
    Handler, HandlerFuture, JobError, RetryPolicy, Worker, WorkerHandle, WorkerOptions, WorkerStats,
};

/// The queue script: the Lua algorithms (for GCRA), then the queue's operations.
const QUEUE_LUA: &str = crate::store::redis::lua_script!("queue/queue.lua");

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_LUA));

/// Highest absolute priority (keeps every score exact in Lua's doubles).
pub const MAX_PRIORITY: i64 = 1_000_000_000;

/// Most jobs written by one script call of [`WorkQueue::push_many`].
const PUSH_CHUNK: usize = 2_000;

/// Most jobs one script call of [`WorkQueue::clear`] deletes (about 1-2 ms of Redis time).
pub const CLEAR_BATCH: usize = 1_000;

/// A job's id: its sequence number in the queue (1, 2, ...).
pub type JobId = u64;

/// A queue operation failed: names the field (or the queue) and the reason.
#[derive(Debug, Clone, Error)]
pub enum QueueError {
    /// The queue name cannot be used in a key.
    #[error("invalid queue name `{name}`: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A job was rejected before anything was written.
    #[error("invalid job{}: `{field}` {reason}", index_label(*.index))]
    InvalidJob {
        /// Position of the job in a batch (0-based), when pushing several.
        index: Option<usize>,
        /// The field at fault (`payload`, `priority`, `group`, `delay`).
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An option of the queue or of a worker cannot be used.
    #[error("invalid queue option `{field}`: {reason}")]
    Option {
        /// The option at fault.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The queue does not exist: nothing was ever pushed to it (nor a worker started).
    #[error("queue `{name}` does not exist (nothing was ever pushed to it)")]
    UnknownQueue {
        /// The queue's name.
        name: String,
    },
    /// Redis could not be reached or answered with an error.
    #[error(transparent)]
    Store(#[from] RedisStoreError),
    /// Redis answered something the queue did not expect.
    #[error("queue `{name}`: unexpected reply from Redis to `{operation}`: {reason}")]
    Reply {
        /// The queue's name.
        name: String,
        /// The script operation.
        operation: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

fn index_label(index: Option<usize>) -> String {
    index.map_or(String::new(), |i| format!(" #{}", i + 1))
}

/// Parses a queue rate: `20/1m`, `20/1m,burst=2` or `gcra:20/1m[,burst=N]`. Unlike a
/// policy, the burst defaults to 1, so starts are spaced evenly (`20/1m` = one start
/// every 3 s). Errors name the field at fault.
pub fn parse_rate(text: &str) -> Result<Rate, PolicyError> {
    let trimmed = text.trim();
    let body = trimmed.strip_prefix("gcra:").unwrap_or(trimmed);
    if let Some((name, _)) = body.split_once(':') {
        return Err(PolicyError::new(
            "algorithm",
            format!(
                "`{name}` cannot pace a queue: its rate is GCRA (write `20/1m` or `gcra:20/1m`)"
            ),
        )
        .in_policy(trimmed));
    }
    let with_burst = if body.contains("burst=") {
        format!("gcra:{body}")
    } else {
        format!("gcra:{body},burst=1")
    };
    let policy: Policy = with_burst.parse().map_err(|e: PolicyError| PolicyError {
        policy: Some(trimmed.to_string()),
        ..e
    })?;
    debug_assert_eq!(policy.kind(), AlgorithmKind::Gcra);
    let (limit, window, burst) = policy.parts();
    Rate::new(limit, Duration::from_micros(window), burst).map_err(|e| e.in_policy(trimmed))
}

/// Settings of a [`WorkQueue`] handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Longest any queue operation waits for Redis (default 2 s).
    pub timeout: Duration,
    /// How many completed jobs are kept (newest first) for inspection (default 1000;
    /// all completions are counted regardless).
    pub keep_completed: usize,
    /// How long a worker's heartbeat counts it as live in [`QueueStats`] (default 10 s).
    pub worker_ttl: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            keep_completed: 1_000,
            worker_ttl: Duration::from_secs(10),
        }
    }
}

/// A job to push: a JSON payload, a priority (higher first; FIFO within a priority), an
/// optional group (tenant) and an optional delay.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// What the handler receives.
    pub payload: serde_json::Value,
    /// Higher runs first (default 0), within `-MAX_PRIORITY..=MAX_PRIORITY`.
    pub priority: i64,
    /// The job's group: groups are served round-robin, each with its own rate if set.
    pub group: Option<String>,
    /// How long the job waits before it may start (default none).
    pub delay: Duration,
}

impl Job {
    /// A job with `payload`, priority 0, no group, no delay.
    pub fn new(payload: serde_json::Value) -> Self {
        Self {
            payload,
            priority: 0,
            group: None,
            delay: Duration::ZERO,
        }
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets the delay before the job may start.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Checks the job; errors name the field.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |field: &str, reason: String| QueueError::InvalidJob {
            index: None,
            field: field.into(),
            reason,
        };
        if self.priority.abs() > MAX_PRIORITY {
            return Err(bad(
                "priority",
                format!(
                    "{} is outside -{MAX_PRIORITY}..={MAX_PRIORITY}",
                    self.priority
                ),
            ));
        }
        if let Some(group) = &self.group {
            check_name(group).map_err(|reason| bad("group", format!("`{group}` {reason}")))?;
        }
        if self.delay > Duration::from_secs(10 * 365 * 86_400) {
            return Err(bad(
                "delay",
                format!("{:?} is longer than 10 years", self.delay),
            ));
        }
        Ok(())
    }
}

/// A name usable inside a key: non-empty, at most 200 bytes, no braces, no whitespace.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 200 {
        return Err(format!("is {} bytes long (at most 200)", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "must not contain {c:?} (no braces, whitespace or control characters)"
        ));
    }
    Ok(())
}

/// A job claimed by a worker: it is active, under a lease, until completed or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: JobId,
    /// Proves this claim holds the lease (`worker:attempt`).
    pub token: String,
    /// Which attempt this is (1 for the first run).
    pub attempt: u32,
    /// The payload pushed.
    pub payload: serde_json::Value,
    /// The job's group, if any.
    pub group: Option<String>,
    /// The job's priority.
    pub priority: i64,
    /// When the job was pushed (ms since the Unix epoch, server time).
    pub created_ms: u64,
    /// How long after the claim the job may start: its reserved slot of the global rate
    /// (zero unless the claim reserved one; see [`ClaimOptions::reserve`]).
    pub start_in: Duration,
}

/// What a claim got.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A job, now active under this worker's lease.
    Job(ClaimedJob),
    /// Jobs are waiting but the rate admits the next start only after this long.
    Wait(Duration),
    /// Nothing is waiting; the next delayed job is due after this long, if any.
    Empty {
        /// Time until the earliest delayed job is due.
        next_due: Option<Duration>,
    },
}

/// How a worker claims: its id, lease, attempts and the rates every worker must share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOptions {
    /// This worker's id (unique per process), recorded in each lease.
    pub worker_id: String,
    /// How long a claimed job stays this worker's without a renewal.
    pub lease: Duration,
    /// Attempts a job gets (recorded on the job; used when its lease expires).
    pub max_attempts: u32,
    /// The global rate of starts, shared by every worker of the queue.
    pub rate: Option<Rate>,
    /// The rate of starts of each group.
    pub group_rate: Option<Rate>,
    /// When the global rate's next start is at most this far away, claim the job now
    /// with that start reserved ([`ClaimedJob::start_in`]) instead of answering
    /// [`Claim::Wait`]; keeps the rate exact despite wake-up lateness. Zero: never.
    pub reserve: Duration,
}

/// What [`WorkQueue::fail`] did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOutcome {
    /// The job will run again (after its backoff).
    Retrying,
    /// The job is in the failed set (no attempts left, or not retryable).
    Failed,
    /// This worker no longer held the job's lease: nothing was changed.
    LeaseLost,
}

/// One past attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The attempt's number (1 for the first run).
    pub attempt: u32,
    /// When it started (ms, server time).
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// When it ended (ms, server time).
    pub ended_ms: u64,
    /// The error it ended with.
    pub error: String,
    /// The lease token of the worker that ran it.
    #[serde(default)]
    pub worker: Option<String>,
    /// The backoff before the next attempt, when one was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Whether the attempt ended because its lease expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// `Some(false)` when the error was marked as not retryable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// A job in the failed set (dead letter).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedJob {
    /// The job's id.
    pub id: JobId,
    /// Its payload.
    pub payload: serde_json::Value,
    /// Its group, if any.
    pub group: Option<String>,
    /// Its priority.
    pub priority: i64,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it failed (ms, server time).
    pub failed_ms: u64,
    /// Every attempt, oldest first.
    pub history: Vec<Attempt>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Waiting,
    /// Waiting for its delay or its retry backoff to pass.
    Delayed,
    /// Being processed under a lease.
    Active,
    /// In the failed set.
    Failed,
}

/// A job that is still in the queue (completed jobs are removed; see
/// [`WorkQueue::completed_jobs`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobInfo {
    /// Where it is.
    pub state: JobState,
    /// Its payload.
    pub payload: serde_json::Value,
    /// Its group, if any.
    pub group: Option<String>,
    /// Its priority.
    pub priority: i64,
    /// Attempts started so far.
    pub attempts: u32,
    /// The last error, if any.
    pub error: Option<String>,
    /// Every ended attempt, oldest first.
    pub history: Vec<Attempt>,
    /// How many times its lease expired.
    pub stalled: u64,
}

/// The deadline a `work` run with an autoscaler recorded, for monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeadlineInfo {
    /// When the run must be done (ms since the Unix epoch, server time).
    pub deadline_ms: u64,
    /// Jobs pending when the run started.
    pub total: u64,
}

/// Counts of a queue by state, with totals since the last clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Jobs waiting for a worker.
    pub waiting: u64,
    /// Jobs waiting for a delay or a retry backoff.
    pub delayed: u64,
    /// Jobs being processed.
    pub active: u64,
    /// Jobs in the failed set.
    pub failed: u64,
    /// Jobs completed (total).
    pub completed: u64,
    /// Leases that expired (total): jobs whose worker died or stalled.
    pub stalled: u64,
    /// Jobs pushed (total).
    pub pushed: u64,
    /// Failed attempts that were retried (total).
    pub retried: u64,
    /// Attempts started (total).
    pub started: u64,
    /// Live worker processes (heartbeat within the worker TTL).
    pub workers: u64,
    /// Concurrent job slots of those workers.
    pub slots: u64,
    /// Of those slots, how many are running a job.
    pub busy: u64,
    /// The deadline of the current autoscaled run, if one was recorded.
    pub deadline: Option<DeadlineInfo>,
    /// When the queue was created or last cleared (ms, server time).
    pub created_ms: u64,
    /// The server's time when the stats were read (ms).
    pub server_ms: u64,
}

impl QueueStats {
    /// Jobs not yet done: waiting + delayed + active.
    pub fn pending(&self) -> u64 {
        self.waiting + self.delayed + self.active
    }
}

/// A handle on one queue in Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkQueue {
    store: RedisStore,
    name: String,
    prefix: String,
    meta: String,
    options: QueueOptions,
}

impl WorkQueue {
    /// A handle on the queue `name` (keys `tidegate:queue:{NAME}:...`) through `store`.
    /// Nothing is written until a job is pushed or a worker starts.
    pub fn open(store: RedisStore, name: &str, options: QueueOptions) -> Result<Self, QueueError> {
        check_name(name).map_err(|reason| QueueError::Name {
            name: name.to_string(),
            reason,
        })?;
        if options.timeout.is_zero() {
            return Err(QueueError::Option {
                field: "timeout".into(),
                reason: "must be greater than zero".into(),
            });
        }
        let prefix = format!("tidegate:queue:{{{name}}}:");
        Ok(Self {
            meta: format!("{prefix}meta"),
            prefix,
            name: name.to_string(),
            store,
            options,
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix of every key of this queue (`tidegate:queue:{NAME}:`).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The store the queue talks through.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The handle's settings.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    async fn call(&self, operation: &'static str, args: &[String]) -> Result<Value, QueueError> {
        let mut invocation = SCRIPT.key(&self.meta);
        invocation.arg(operation).arg(&self.prefix);
        for a in args {
            invocation.arg(a);
        }
        Ok(self
            .store
            .run_script::<Value>(&invocation, self.options.timeout)
            .await?)
    }

    fn reply_error(&self, operation: &'static str, reason: impl Into<String>) -> QueueError {
        QueueError::Reply {
            name: self.name.clone(),
            operation,
            reason: reason.into(),
        }
    }

    /// Pushes one job; returns its id.
    pub async fn push(&self, job: Job) -> Result<JobId, QueueError> {
        let ids = self.push_many(std::slice::from_ref(&job)).await?;
        ids.first()
            .copied()
            .ok_or_else(|| self.reply_error("push", "no id returned"))
    }

    /// Pushes several jobs, in order. Every job is validated before anything is written
    /// (an invalid one fails the whole call, naming its position and field); up to 2000
    /// jobs are written atomically per script call.
    pub async fn push_many(&self, jobs: &[Job]) -> Result<Vec<JobId>, QueueError> {
        let mut encoded = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            job.validate().map_err(|e| match e {
                QueueError::InvalidJob { field, reason, .. } => QueueError::InvalidJob {
                    index: (jobs.len() > 1).then_some(i),
                    field,
                    reason,
                },
                other => other,
            })?;
            let payload =
                serde_json::to_string(&job.payload).map_err(|e| QueueError::InvalidJob {
                    index: (jobs.len() > 1).then_some(i),
                    field: "payload".into(),
                    reason: e.to_string(),
                })?;
            encoded.push([
                payload,
                job.priority.to_string(),
                job.group.clone().unwrap_or_default(),
                (job.delay.as_millis() as u64).to_string(),
            ]);
        }
        let mut ids = Vec::with_capacity(jobs.len());
        for chunk in encoded.chunks(PUSH_CHUNK) {
            let mut args = Vec::with_capacity(1 + 4 * chunk.len());
            args.push(chunk.len().to_string());
            for job in chunk {
                args.extend(job.iter().cloned());
            }
            let reply = self.call("push", &args).await?;
            let Value::Array(values) = reply else {
                return Err(self.reply_error("push", format!("{reply:?}")));
            };
            for v in &values {
                ids.push(int(v).ok_or_else(|| self.reply_error("push", format!("{v:?}")))? as u64);
            }
        }
        Ok(ids)
    }

    /// Claims the next job, if the rates admit a start now. Stalled jobs (expired
    /// leases) and due delayed jobs are moved back to waiting first, in the same script.
    pub async fn claim(&self, options: &ClaimOptions) -> Result<Claim, QueueError> {
        let reply = self.call("claim", &claim_args(options)).await?;
        self.parse_claim(&reply)
    }

    /// [`complete`](Self::complete) then [`claim`](Self::claim), atomically, in one
    /// round trip: what a busy worker does between two jobs.
    pub async fn complete_and_claim(
        &self,
        job: &ClaimedJob,
        options: &ClaimOptions,
    ) -> Result<(bool, Claim), QueueError> {
        let mut args = vec![
            job.id.to_string(),
            job.token.clone(),
            self.options.keep_completed.to_string(),
        ];
        args.extend(claim_args(options));
        let reply = self.call("complete_claim", &args).await?;
        match &reply {
            Value::Array(v) if v.len() == 2 => {
                Ok((int(&v[0]) == Some(1), self.parse_claim(&v[1])?))
            }
            other => Err(self.reply_error("complete_claim", format!("{other:?}"))),
        }
    }

    fn parse_claim(&self, reply: &Value) -> Result<Claim, QueueError> {
        let bad = |r: &Value| self.reply_error("claim", format!("{r:?}"));
        let Value::Array(v) = reply else {
            return Err(bad(reply));
        };
        match v.first().and_then(int) {
            Some(1) if v.len() >= 9 => {
                let payload_text = text(&v[4]).ok_or_else(|| bad(reply))?;
                let payload = serde_json::from_str(&payload_text)
                    .map_err(|e| self.reply_error("claim", format!("payload: {e}")))?;
                let group = text(&v[5]).filter(|g| !g.is_empty());
                Ok(Claim::Job(ClaimedJob {
                    id: int(&v[1]).ok_or_else(|| bad(reply))? as u64,
                    token: text(&v[2]).ok_or_else(|| bad(reply))?,
                    attempt: int(&v[3]).ok_or_else(|| bad(reply))? as u32,
                    payload,
                    group,
                    priority: int(&v[6]).unwrap_or(0),
                    created_ms: int(&v[7]).unwrap_or(0) as u64,
                    start_in: Duration::from_micros(int(&v[8]).unwrap_or(0).max(0) as u64),
                }))
            }
            Some(2) => {
                let us = v.get(1).and_then(int).ok_or_else(|| bad(reply))?;
                Ok(Claim::Wait(Duration::from_micros(us.max(0) as u64)))
            }
            Some(0) => {
                let ms = v.get(1).and_then(int).ok_or_else(|| bad(reply))?;
                Ok(Claim::Empty {
                    next_due: (ms >= 0).then(|| Duration::from_millis(ms as u64)),
                })
            }
            _ => Err(bad(reply)),
        }
    }

    /// Extends the lease of a claimed job; `false` if this claim no longer holds it.
    pub async fn renew(&self, job: &ClaimedJob, lease: Duration) -> Result<bool, QueueError> {
        let args = [
            job.id.to_string(),
            job.token.clone(),
            (lease.as_millis().max(1) as u64).to_string(),
        ];
        let reply = self.call("renew", &args).await?;
        Ok(int(&reply) == Some(1))
    }

    /// Marks a claimed job completed (counted; the newest `keep_completed` are kept);
    /// `false` if this claim no longer held its lease (nothing changed).
    pub async fn complete(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        let args = [
            job.id.to_string(),
            job.token.clone(),
            self.options.keep_completed.to_string(),
        ];
        let reply = self.call("complete", &args).await?;
        Ok(int(&reply) == Some(1))
    }

    /// Records a failed attempt: the job runs again after `backoff` if `retryable` and
    /// it has attempts left (of `max_attempts`), else it goes to the failed set.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        error: &str,
        retryable: bool,
        backoff: Duration,
        max_attempts: u32,
    ) -> Result<FailOutcome, QueueError> {
        let args = [
            job.id.to_string(),
            job.token.clone(),
            error.to_string(),
            if retryable { "1" } else { "0" }.to_string(),
            (backoff.as_millis() as u64).to_string(),
            max_attempts.max(1).to_string(),
        ];
        match int(&self.call("fail", &args).await?) {
            Some(1) => Ok(FailOutcome::Retrying),
            Some(2) => Ok(FailOutcome::Failed),
            Some(0) => Ok(FailOutcome::LeaseLost),
            other => Err(self.reply_error("fail", format!("{other:?}"))),
        }
    }

    /// Counts by state and totals; [`QueueError::UnknownQueue`] if nothing was ever
    /// pushed to the queue.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let args = [self.options.worker_ttl.as_secs().max(1).to_string()];
        let reply = self.call("stats", &args).await?;
        let Value::Array(v) = &reply else {
            return Err(self.reply_error("stats", format!("{reply:?}")));
        };
        let n: Vec<i64> = v.iter().map(|x| int(x).unwrap_or(-1)).collect();
        if n.first() == Some(&-1) {
            return Err(QueueError::UnknownQueue {
                name: self.name.clone(),
            });
        }
        if n.len() < 16 {
            return Err(self.reply_error("stats", format!("{reply:?}")));
        }
        let u = |i: usize| n[i].max(0) as u64;
        Ok(QueueStats {
            waiting: u(0),
            delayed: u(1),
            active: u(2),
            failed: u(3),
            completed: u(4),
            stalled: u(5),
            pushed: u(6),
            retried: u(7),
            started: u(8),
            created_ms: u(9),
            deadline: (n[10] >= 0).then(|| DeadlineInfo {
                deadline_ms: u(10),
                total: u(11),
            }),
            workers: u(12),
            slots: u(13),
            busy: u(14),
            server_ms: u(15),
        })
    }

    /// Whether the queue exists (something was pushed to it, or a worker started on it).
    pub async fn exists(&self) -> Result<bool, QueueError> {
        match self.stats().await {
            Ok(_) => Ok(true),
            Err(QueueError::UnknownQueue { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes every job (waiting, delayed, active, failed, completed) and resets the
    /// counters; returns how many jobs were removed. Workers may keep running. Deletes in
    /// script calls of at most [`CLEAR_BATCH`] jobs, so Redis (and every limiter sharing
    /// it) is never blocked for long; jobs pushed while it runs may be removed too.
    pub async fn clear(&self) -> Result<u64, QueueError> {
        self.clear_with_progress(|_| ()).await
    }

    /// [`clear`](Self::clear), calling `progress(removed so far)` after each batch.
    pub async fn clear_with_progress(
        &self,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, QueueError> {
        let mut removed = 0;
        loop {
            let reply = self.call("clear", &[CLEAR_BATCH.to_string()]).await?;
            let (n, done) = match &reply {
                Value::Array(v) if v.len() == 2 => (int(&v[0]), int(&v[1])),
                _ => (None, None),
            };
            let (Some(n), Some(done)) = (n, done) else {
                return Err(self.reply_error("clear", format!("{reply:?}")));
            };
            removed += n as u64;
            progress(removed);
            if done == 1 {
                return Ok(removed);
            }
        }
    }

    /// Moves up to `limit` failed jobs (all if `None`, oldest failure first) back to
    /// waiting with their attempts reset; returns how many.
    pub async fn retry_failed(&self, limit: Option<u64>) -> Result<u64, QueueError> {
        let mut moved = 0;
        loop {
            let chunk = limit.map_or(1_000, |l| (l - moved).min(1_000));
            if chunk == 0 {
                return Ok(moved);
            }
            let reply = self.call("retry_failed", &[chunk.to_string()]).await?;
            let n = int(&reply)
                .ok_or_else(|| self.reply_error("retry_failed", format!("{reply:?}")))?
                as u64;
            moved += n;
            if n < chunk {
                return Ok(moved);
            }
        }
    }

    /// Failed jobs with their errors and attempt history, oldest failure first.
    pub async fn failed_jobs(&self, offset: u64, count: u64) -> Result<Vec<FailedJob>, QueueError> {
        let reply = self
            .call("failed", &[offset.to_string(), count.to_string()])
            .await?;
        let Value::Array(rows) = &reply else {
            return Err(self.reply_error("failed", format!("{reply:?}")));
        };
        rows.iter()
            .map(|row| {
                let bad = || self.reply_error("failed", format!("{row:?}"));
                let Value::Array(f) = row else {
                    return Err(bad());
                };
                if f.len() < 8 {
                    return Err(bad());
                }
                Ok(FailedJob {
                    id: int(&f[0]).ok_or_else(bad)? as u64,
                    payload: json_of(&f[1]).ok_or_else(bad)?,
                    group: text(&f[2]).filter(|g| !g.is_empty()),
                    priority: int(&f[3]).unwrap_or(0),
                    attempts: int(&f[4]).unwrap_or(0) as u32,
                    error: text(&f[5]).unwrap_or_default(),
                    failed_ms: int(&f[6]).unwrap_or(0) as u64,
                    history: history_of(&f[7]),
                })
            })
            .collect()
    }

    /// A job still in the queue, or `None` once it completed (or never existed).
    pub async fn job(&self, id: JobId) -> Result<Option<JobInfo>, QueueError> {
        let reply = self.call("job", &[id.to_string()]).await?;
        let Value::Array(f) = &reply else {
            return Err(self.reply_error("job", format!("{reply:?}")));
        };
        if f.is_empty() {
            return Ok(None);
        }
        let bad = || self.reply_error("job", format!("{reply:?}"));
        if f.len() < 8 {
            return Err(bad());
        }
        let state = match text(&f[0]).as_deref() {
            Some("waiting") => JobState::Waiting,
            Some("delayed") => JobState::Delayed,
            Some("active") => JobState::Active,
            Some("failed") => JobState::Failed,
            _ => return Err(bad()),
        };
        Ok(Some(JobInfo {
            state,
            payload: json_of(&f[1]).ok_or_else(bad)?,
            group: text(&f[2]).filter(|g| !g.is_empty()),
            priority: int(&f[3]).unwrap_or(0),
            attempts: int(&f[4]).unwrap_or(0) as u32,
            error: text(&f[5]).filter(|e| !e.is_empty()),
            history: history_of(&f[6]),
            stalled: int(&f[7]).unwrap_or(0) as u64,
        }))
    }

    /// The newest `count` completed jobs (JSON: id, payload, group, priority, attempts,
    /// created_ms, started_ms, finished_ms), newest first.
    pub async fn completed_jobs(&self, count: u64) -> Result<Vec<serde_json::Value>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(format!("{}completed", self.prefix))
            .arg(0)
            .arg(count as i64 - 1);
        let rows: Vec<String> = self.store.command(cmd).await?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r)
                    .map_err(|e| self.reply_error("completed", format!("{e}: {r}")))
            })
            .collect()
    }

    /// Records a worker process as live (`slots` concurrent jobs, `busy` running), and
    /// optionally the deadline of its run, for [`QueueStats`] and monitors.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        slots: u64,
        busy: u64,
        deadline: Option<DeadlineInfo>,
    ) -> Result<(), QueueError> {
        let info = serde_json::json!({"slots": slots, "busy": busy}).to_string();
        let (set, at, total) = match deadline {
            Some(d) => ("1", d.deadline_ms.to_string(), d.total.to_string()),
            None => ("0", "0".into(), "0".into()),
        };
        self.call(
            "heartbeat",
            &[worker_id.to_string(), info, set.into(), at, total],
        )
        .await?;
        Ok(())
    }

    /// Removes a worker from the live workers (on a graceful stop).
    pub async fn leave(&self, worker_id: &str) -> Result<(), QueueError> {
        self.call("leave", &[worker_id.to_string()]).await?;
        Ok(())
    }
}

/// The script arguments of a claim.
fn claim_args(options: &ClaimOptions) -> Vec<String> {
    let rate_args = |r: &Option<Rate>| match r {
        Some(r) => [
            r.limit.to_string(),
            r.window.to_string(),
            r.burst.to_string(),
        ],
        None => ["0".into(), "0".into(), "0".into()],
    };
    let mut args = vec![
        options.worker_id.clone(),
        (options.lease.as_millis().max(1) as u64).to_string(),
        options.max_attempts.max(1).to_string(),
    ];
    args.extend(rate_args(&options.rate));
    args.extend(rate_args(&options.group_rate));
    args.push((options.reserve.as_micros() as u64).to_string());
    args
}

/// An integer reply (Lua numbers arrive as integers, numeric strings are accepted).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// A string reply.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn json_of(v: &Value) -> Option<serde_json::Value> {
    serde_json::from_str(&text(v)?).ok()
}

fn history_of(v: &Value) -> Vec<Attempt> {
    text(v)
        .and_then(|h| serde_json::from_str(&h).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_defaults_to_burst_one_and_accepts_the_gcra_prefix() {
        let r = parse_rate("20/1m").unwrap();
        assert_eq!((r.limit, r.window, r.burst), (20, 60_000_000, 1));
        let r = parse_rate("gcra:10/1s,burst=3").unwrap();
        assert_eq!((r.limit, r.window, r.burst), (10, 1_000_000, 3));
    }

    #[test]
    fn rate_takes_quotas_of_any_realistic_size() {
        let r = parse_rate("1000000/1d").unwrap();
        assert_eq!((r.limit, r.window, r.burst), (1_000_000, 86_400_000_000, 1));
        let r = parse_rate("gcra:3000000000/365d,burst=1000000").unwrap();
        assert_eq!((r.limit, r.burst), (3_000_000_000, 1_000_000));
    }

    #[test]
    fn rate_errors_name_the_field() {
        assert_eq!(parse_rate("0/1m").unwrap_err().field, "limit");
        assert_eq!(parse_rate("20/0s").unwrap_err().field, "window");
        assert_eq!(parse_rate("20/1m,burst=0").unwrap_err().field, "burst");
        assert_eq!(
            parse_rate("token_bucket:20/1m").unwrap_err().field,
            "algorithm"
        );
        assert_eq!(parse_rate("20").unwrap_err().field, "window");
    }

    #[test]
    fn job_validation_names_the_field() {
        let e = Job::new(serde_json::json!(1))
            .priority(MAX_PRIORITY + 1)
            .validate();
        assert!(matches!(e, Err(QueueError::InvalidJob { ref field, .. }) if field == "priority"));
        let e = Job::new(serde_json::json!(1)).group("a{b}").validate();
        assert!(matches!(e, Err(QueueError::InvalidJob { ref field, .. }) if field == "group"));
        assert!(
            Job::new(serde_json::json!(1))
                .group("tenant-1")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn queue_names_with_braces_are_rejected() {
        assert!(check_name("wallet-audit").is_ok());
        assert!(check_name("a}b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
    }
}
