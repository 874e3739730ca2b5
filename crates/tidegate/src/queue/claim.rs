//! Claiming a job: what a worker asks for and what it gets.

use std::time::Duration;

use super::JobId;
use crate::rate::Rate;

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
#[non_exhaustive]
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

/// The script arguments of a claim.
pub(super) fn claim_args(options: &ClaimOptions) -> Vec<String> {
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
