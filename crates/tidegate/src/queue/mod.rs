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
mod claim;
mod client;
mod error;
mod info;
mod job;
mod rate;
mod reply;
mod worker;

pub use autoscale::{AutoscaleOptions, Autoscaler, Plan, PlanInput, RunReport, plan};
pub use claim::{Claim, ClaimOptions, ClaimedJob};
pub use client::{QueueOptions, WorkQueue};
pub use error::QueueError;
pub use info::{Attempt, DeadlineInfo, FailOutcome, FailedJob, JobInfo, JobState, QueueStats};
pub use job::{Job, check_name};
pub use rate::parse_rate;
pub use worker::{
    Handler, HandlerFuture, JobError, RetryPolicy, Worker, WorkerHandle, WorkerOptions, WorkerStats,
};

/// Highest absolute priority (keeps every score exact in Lua's doubles).
pub const MAX_PRIORITY: i64 = 1_000_000_000;

/// Most jobs one script call of [`WorkQueue::clear`] deletes (about 1-2 ms of Redis time).
pub const CLEAR_BATCH: usize = 1_000;

/// A job's id: its sequence number in the queue (1, 2, ...).
pub type JobId = u64;
