//! [`WorkQueue`]: the handle on one queue in Redis; every operation is one call of the
//! queue script.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};

use super::claim::claim_args;
use super::job::check_name;
use super::reply::{history_of, int, json_of, text};
use super::*;
use crate::store::redis::RedisStore;
use crate::store::redis::batcher::{self, BatchCall, Counters, Queued};

/// The queue script: the Lua algorithms (for GCRA), then the queue's operations.
const QUEUE_LUA: &str = crate::store::redis::lua_script!("queue/queue.lua");

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(QUEUE_LUA));

/// Most jobs written by one script call of [`WorkQueue::push_many`].
const PUSH_CHUNK: usize = 2_000;

/// Most concurrent pushes of one queue sent in one script call.
const PUSH_BATCH: usize = 64;

/// Batched push calls of one queue under way at once.
const PUSH_IN_FLIGHT: usize = 4;

/// Pushes of at most this many jobs share script calls (so one call writes at most
/// [`PUSH_CHUNK`] jobs); a larger push is a call of its own.
const PUSH_SHARED_JOBS: usize = PUSH_CHUNK / PUSH_BATCH;

/// One push's encoded jobs: payload, priority, group, delay ms each.
type EncodedJobs = Vec<[String; 4]>;

/// Concurrent pushes of one queue through the Redis batcher: their jobs go, in order,
/// into one `push` call, and each caller gets the ids of its own jobs.
#[derive(Debug)]
struct PushCall {
    store: RedisStore,
    name: String,
    meta: String,
    prefix: String,
    timeout: Duration,
}

impl PushCall {
    /// Writes `pushes` (each a caller's jobs, in order) in one script call; the ids of
    /// every job, in the same order.
    async fn push(&self, pushes: &[&[[String; 4]]]) -> Result<Vec<JobId>, QueueError> {
        let jobs: usize = pushes.iter().map(|p| p.len()).sum();
        let mut invocation = SCRIPT.key(&self.meta);
        invocation.arg("push").arg(&self.prefix).arg(jobs);
        for job in pushes.iter().flat_map(|p| p.iter()) {
            for a in job {
                invocation.arg(a);
            }
        }
        let reply: Value = self.store.run_script(&invocation, self.timeout).await?;
        let bad = |reason: String| QueueError::Reply {
            name: self.name.clone(),
            operation: "push",
            reason,
        };
        let Value::Array(values) = reply else {
            return Err(bad(format!("{reply:?}")));
        };
        if values.len() != jobs {
            return Err(bad(format!("{} ids for {jobs} jobs", values.len())));
        }
        values
            .iter()
            .map(|v| {
                int(v)
                    .map(|id| id as u64)
                    .ok_or_else(|| bad(format!("{v:?}")))
            })
            .collect()
    }
}

impl BatchCall for PushCall {
    type Request = EncodedJobs;
    type Answer = Result<Vec<JobId>, QueueError>;
    type Group = ();

    fn group(&self, _request: &EncodedJobs) {}

    async fn call(&self, requests: Vec<&EncodedJobs>) -> Vec<Self::Answer> {
        let pushes: Vec<&[[String; 4]]> = requests.iter().map(|r| r.as_slice()).collect();
        match self.push(&pushes).await {
            Ok(ids) => {
                let mut rest = ids.as_slice();
                requests
                    .iter()
                    .map(|r| {
                        let (mine, after) = rest.split_at(r.len());
                        rest = after;
                        Ok(mine.to_vec())
                    })
                    .collect()
            }
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }
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

/// A handle on one queue in Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkQueue {
    store: RedisStore,
    name: String,
    prefix: String,
    meta: String,
    options: QueueOptions,
    /// The batching task of small pushes, shared by clones, started on first use.
    pusher: Arc<OnceLock<mpsc::Sender<Queued<PushCall>>>>,
    /// Small pushes under way through this handle and its clones.
    pushing: Arc<AtomicUsize>,
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
            pusher: Arc::default(),
            pushing: Arc::default(),
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
    /// jobs are written atomically per script call. Small pushes made at the same time
    /// (of up to 31 jobs) share script calls: each still gets the ids of its own jobs,
    /// in its order.
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
        if encoded.is_empty() {
            return Ok(Vec::new());
        }
        if encoded.len() <= PUSH_SHARED_JOBS {
            return self.push_shared(encoded).await;
        }
        let call = self.push_call();
        let mut ids = Vec::with_capacity(jobs.len());
        for chunk in encoded.chunks(PUSH_CHUNK) {
            ids.extend(call.push(&[chunk]).await?);
        }
        Ok(ids)
    }

    fn push_call(&self) -> PushCall {
        PushCall {
            store: self.store.clone(),
            name: self.name.clone(),
            meta: self.meta.clone(),
            prefix: self.prefix.clone(),
            timeout: self.options.timeout,
        }
    }

    /// A small push: alone, it is its own call (no hand-over to the batching task); made
    /// while another is under way, it goes through the batcher and shares a script call
    /// with the pushes waiting at the same time.
    async fn push_shared(&self, jobs: EncodedJobs) -> Result<Vec<JobId>, QueueError> {
        struct Pushing<'a>(&'a AtomicUsize);
        impl Drop for Pushing<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let alone = self.pushing.fetch_add(1, Ordering::Relaxed) == 0;
        let _pushing = Pushing(&self.pushing);
        if alone {
            return self.push_call().push(&[&jobs]).await;
        }
        self.push_batched(jobs).await
    }

    /// A push through the batcher. Bounded by the queue's timeout from the caller's side
    /// too; a push still waiting to be sent when it gives up is never sent.
    async fn push_batched(&self, jobs: EncodedJobs) -> Result<Vec<JobId>, QueueError> {
        let pusher = self.pusher.get_or_init(|| {
            batcher::spawn(
                Arc::new(self.push_call()),
                PUSH_BATCH,
                PUSH_IN_FLIGHT,
                Arc::new(Counters::default()),
            )
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || self.reply_error("push", "the queue's batching task has stopped");
        pusher
            .send(Queued {
                request: jobs,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        match tokio::time::timeout(self.options.timeout, answer).await {
            Ok(answer) => answer.map_err(|_| stopped())?,
            Err(_) => Err(self.store.timeout_error(self.options.timeout).into()),
        }
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
