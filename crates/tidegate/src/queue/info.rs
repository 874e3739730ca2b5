//! What a queue reports: jobs by state, attempts, the failed set, counts.

use serde::{Deserialize, Serialize};

use super::JobId;

/// What [`WorkQueue::fail`] did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
#[non_exhaustive]
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
