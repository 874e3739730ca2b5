//! [`EventTracker`]: tracking, ticks (claim, deliver, retry, dead-letter) and shutdown.

use super::*;

/// A batch in flight between processor attempts.
pub(super) struct RetryBatch {
    pub(super) batch: Claimed,
    /// Processor calls made in this round.
    pub(super) attempts: u32,
}

pub(super) struct Inner {
    pub(super) records: Records,
    pub(super) default_settings: RecordSettings,
    pub(super) expire_us: u64,
    pub(super) processing_interval: Duration,
    pub(super) max_batch_size: usize,
    pub(super) max_retries: u32,
    pub(super) backoff: Backoff,
    pub(super) dead_letter_after: u32,
    pub(super) processor: Processor,
    pub(super) dead_letter: Option<DeadLetterSink>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) events: broadcast::Sender<TrackerEvent>,
    pub(super) retries: Mutex<BTreeMap<(u64, u64), RetryBatch>>,
    pub(super) retry_seq: AtomicU64,
    pub(super) tick_lock: tokio::sync::Mutex<()>,
    pub(super) stopped: AtomicBool,
    pub(super) loop_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) counters: Counters,
}

/// Tracks events per `(category, id)`, deferring those over the limit for batch
/// processing. Cheap to clone; clones share everything.
///
/// ```
/// use std::time::Duration;
/// use tidegate::tracker::{EventTracker, TrackOutcome};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = EventTracker::builder()
///     .limit(1)                                 // the first error alerts at once
///     .defer_interval(Duration::from_secs(300)) // the rest are summarised after 5 min
///     .processor(|batch| async move {
///         for r in &batch {
///             println!("{} more occurrences of {}", r.count, r.id);
///         }
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let first = tracker.track_event("system_error", "ECONNRESET", serde_json::json!({"host": "a"})).await?;
/// assert!(matches!(first, TrackOutcome::Immediate(_)));
/// let second = tracker.track_event("system_error", "ECONNRESET", serde_json::json!({"host": "b"})).await?;
/// assert!(matches!(second, TrackOutcome::Deferred(_)));
/// tracker.shutdown().await; // delivers the deferred batch now
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EventTracker {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for EventTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTracker")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventTracker {
    /// Starts building a tracker.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    pub(super) fn start_loop(&self) -> Result<(), TrackError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            invalid(
                "runtime",
                "the processing loop needs a tokio runtime: build the tracker inside one, or use manual_ticks()",
            )
        })?;
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.processing_interval;
        let task = handle.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.stopped.load(Ordering::Acquire) {
                    return;
                }
                EventTracker { inner }.tick().await;
            }
        });
        *lock(&self.inner.loop_task) = Some(task);
        Ok(())
    }

    /// Subscribes to lifecycle events (`immediate`, `deferred`, `ignored`, `processed`,
    /// `retry`, `process_failed`, `config_updated`, `error`). A slow subscriber misses
    /// the oldest events rather than slowing the tracker.
    pub fn subscribe(&self) -> broadcast::Receiver<TrackerEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: impl FnOnce() -> TrackerEvent) {
        if self.inner.events.receiver_count() > 0 {
            let _ = self.inner.events.send(event());
        }
    }

    /// Tracks one event of the record `(category, id)`; `details` may be any JSON value
    /// (a `serde_json::Value`, or [`Details`] from JSON text; `null` for none) and is
    /// kept with the deferred batch as compact JSON text, within the byte bounds.
    ///
    /// Async because a shared store (Redis) answers over the network; with the memory
    /// store it completes at once.
    pub async fn track_event(
        &self,
        category: &str,
        id: &str,
        details: impl Into<Details>,
    ) -> Result<TrackOutcome, TrackError> {
        self.track_event_at(category, id, details, self.inner.clock.now_micros())
            .await
    }

    /// [`track_event`](Self::track_event) at an explicit time (µs on the tracker's clock).
    pub async fn track_event_at(
        &self,
        category: &str,
        id: &str,
        details: impl Into<Details>,
        now: u64,
    ) -> Result<TrackOutcome, TrackError> {
        let details = details.into();
        self.check(category, id)?;
        let outcome = self
            .inner
            .records
            .track(category, id, details, now, &self.inner.default_settings)
            .await?;
        self.account(&outcome);
        Ok(outcome)
    }

    /// Tracks many events at once, each as [`track_event`](Self::track_event) would, at
    /// one time: the answers come in the events' order, each its own (an invalid event
    /// fails alone). Through Redis the events go to the store together, sharing script
    /// calls and one timeout, which costs less per event than as many `track_event`
    /// calls awaited side by side.
    pub async fn track_events<C: AsRef<str>, I: AsRef<str>>(
        &self,
        events: &[(C, I, Details)],
    ) -> Vec<Result<TrackOutcome, TrackError>> {
        let now = self.inner.clock.now_micros();
        let mut out: Vec<Option<Result<TrackOutcome, TrackError>>> =
            Vec::with_capacity(events.len());
        let mut valid = Vec::with_capacity(events.len());
        for (category, id, details) in events {
            let (category, id) = (category.as_ref(), id.as_ref());
            match self.check(category, id) {
                Ok(()) => {
                    valid.push((category, id, details));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let mut tracked = self
            .inner
            .records
            .track_many(&valid, now, &self.inner.default_settings)
            .await
            .into_iter();
        out.into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    let outcome = tracked.next().expect("one answer per valid event");
                    if let Ok(o) = &outcome {
                        self.account(o);
                    }
                    outcome
                })
            })
            .collect()
    }

    /// Refuses an event of a shut-down tracker or with an empty category or id.
    fn check(&self, category: &str, id: &str) -> Result<(), TrackError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(TrackError::ShutDown);
        }
        if category.is_empty() {
            return Err(invalid("category", "must not be empty"));
        }
        if id.is_empty() {
            return Err(invalid("id", "must not be empty"));
        }
        Ok(())
    }

    /// Counts a tracked event's outcome and tells the event listeners.
    fn account(&self, outcome: &TrackOutcome) {
        let c = &self.inner.counters;
        match outcome {
            TrackOutcome::Immediate(r) => {
                c.immediate.fetch_add(1, Ordering::Relaxed);
                self.emit(|| TrackerEvent::Immediate(r.clone()));
            }
            TrackOutcome::Deferred(r) => {
                c.deferred.fetch_add(1, Ordering::Relaxed);
                self.emit(|| TrackerEvent::Deferred(r.clone()));
            }
            TrackOutcome::Ignored { reason, record } => {
                c.ignored.fetch_add(1, Ordering::Relaxed);
                self.emit(|| TrackerEvent::Ignored {
                    reason: *reason,
                    record: record.clone(),
                });
            }
        }
    }

    /// Changes one record's settings. `Ok(false)` when the record does not exist; invalid
    /// values are errors and change nothing. Concurrent updates of one record (from this
    /// or another instance) each keep what the others changed: the patch is applied to
    /// the settings it read, and read again if they changed meanwhile.
    pub async fn update_config(
        &self,
        category: &str,
        id: &str,
        patch: ConfigPatch,
    ) -> Result<bool, TrackError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(current) = self.inner.records.settings(category, id).await? else {
                return Ok(false);
            };
            let settings = current.patched(&patch)?;
            match self
                .inner
                .records
                .reconfigure(category, id, &current, &settings)
                .await?
            {
                Reconfigured::Done(view) => {
                    self.emit(|| TrackerEvent::ConfigUpdated(view));
                    return Ok(true);
                }
                Reconfigured::Missing => return Ok(false),
                Reconfigured::Changed => continue,
            }
        }
        Err(TrackError::Store(StoreError::Contended {
            category: category.to_string(),
            id: id.to_string(),
            attempts: UPDATE_ATTEMPTS,
        }))
    }

    /// The record `(category, id)` as the store holds it, or `None`: read only, nothing
    /// changes. With Redis it is read from Redis now, so it shows what every instance
    /// sharing the tracker (and `tidegate serve` with the same tracker name) tracked.
    pub async fn record(
        &self,
        category: &str,
        id: &str,
    ) -> Result<Option<RecordSnapshot>, TrackError> {
        self.inner.records.snapshot(category, id).await
    }

    /// The records whose deferred batch waits, earliest due first, at most `limit`
    /// (read only; with Redis, every instance's, read now). A batch being processed or
    /// retried is not waiting and is not listed.
    pub async fn waiting_records(&self, limit: usize) -> Result<Vec<RecordSnapshot>, TrackError> {
        self.inner.records.waiting_records(u64::MAX, limit).await
    }

    /// The records whose deferred batch is due at `now` (µs on the tracker's clock) and
    /// waits for a tick to claim it, earliest first, at most `limit`; nothing is
    /// claimed.
    pub async fn due_records_at(
        &self,
        now: u64,
        limit: usize,
    ) -> Result<Vec<RecordSnapshot>, TrackError> {
        self.inner.records.waiting_records(now, limit).await
    }

    /// [`due_records_at`](Self::due_records_at) the clock's time.
    pub async fn due_records(&self, limit: usize) -> Result<Vec<RecordSnapshot>, TrackError> {
        self.due_records_at(self.inner.clock.now_micros(), limit)
            .await
    }

    /// Forgets the record `(category, id)` so that its next event is decided as the
    /// first of a new record (with the simple counter: immediate). Nothing is lost: a
    /// batch of it that waits is claimed by this instance and handed to the processor
    /// on the next tick, through the same retries, failed rounds and dead letters as any
    /// due batch; a record with a batch being processed is kept, with no events counted,
    /// until that batch is settled. `Ok(false)` when the record does not exist.
    pub async fn reset_record(&self, category: &str, id: &str) -> Result<bool, TrackError> {
        self.reset_record_at(category, id, self.inner.clock.now_micros())
            .await
    }

    /// [`reset_record`](Self::reset_record) at an explicit time (µs on the tracker's
    /// clock): a batch it takes out is delivered by the first tick at or after `now`.
    pub async fn reset_record_at(
        &self,
        category: &str,
        id: &str,
        now: u64,
    ) -> Result<bool, TrackError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(TrackError::ShutDown);
        }
        let Some(claimed) = self.inner.records.reset(category, id, now).await? else {
            return Ok(false);
        };
        if let Some(batch) = claimed {
            let seq = self.inner.retry_seq.fetch_add(1, Ordering::Relaxed);
            lock(&self.inner.retries).insert((now, seq), RetryBatch { batch, attempts: 0 });
        }
        Ok(true)
    }

    /// The counters and gauges.
    pub fn stats(&self) -> TrackerStats {
        let c = &self.inner.counters;
        TrackerStats {
            records: self.inner.records.len(),
            waiting: self.inner.records.waiting(),
            retrying: lock(&self.inner.retries).len(),
            immediate: c.immediate.load(Ordering::Relaxed),
            deferred: c.deferred.load(Ordering::Relaxed),
            ignored: c.ignored.load(Ordering::Relaxed),
            processed_records: c.processed_records.load(Ordering::Relaxed),
            processed_events: c.processed_events.load(Ordering::Relaxed),
            failed_rounds: c.failed_rounds.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            taken_over: c.taken_over.load(Ordering::Relaxed),
            details_dropped_by_size: self.inner.records.dropped_by_size(),
            memory_bytes: self.inner.records.memory_bytes(),
        }
    }

    /// Whether anything is deferred or retrying (for Redis, as of the latest tick).
    pub fn has_pending(&self) -> bool {
        let s = self.stats();
        s.waiting > 0 || s.retrying > 0
    }

    /// When the next batch (deferred or retrying) is due, µs on the tracker's clock
    /// (with Redis, read from Redis now: any instance's batches).
    pub async fn next_due_micros(&self) -> Result<Option<u64>, TrackError> {
        let retry = lock(&self.inner.retries).keys().next().map(|&(t, _)| t);
        Ok(match (self.inner.records.next_due().await?, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Deletes every record, waiting batch and claim of this tracker from its store
    /// (with Redis: for every instance sharing it). Nothing is delivered: for tests,
    /// replays and starting over. Returns how many records (Redis: keys) were deleted.
    pub async fn clear(&self) -> Result<usize, TrackError> {
        let _one_at_a_time = self.inner.tick_lock.lock().await;
        lock(&self.inner.retries).clear();
        self.inner.records.clear().await
    }

    /// Reports a store failure to subscribers and the log.
    fn store_failed(&self, what: &str, e: &TrackError) {
        tracing::warn!(error = %e, "tidegate tracker: {what} failed");
        self.emit(|| TrackerEvent::Error(format!("{what}: {e}")));
    }

    /// One processing round at the clock's time: purges a slice of idle records, then
    /// processes every due retry and every due deferred batch.
    pub async fn tick(&self) {
        let now = self.inner.clock.now_micros();
        self.tick_at(now).await;
    }

    /// [`tick`](Self::tick) at an explicit time (µs on the tracker's clock).
    pub async fn tick_at(&self, now: u64) {
        let _one_at_a_time = self.inner.tick_lock.lock().await;
        let inner = &*self.inner;
        if inner.records.is_shared() {
            let held: Vec<String> = lock(&inner.retries)
                .values()
                .filter_map(|b| b.batch.claim.clone())
                .collect();
            if let Err(e) = inner.records.renew(now, &held).await {
                self.store_failed("renewing leases", &e);
            }
        }
        if let Err(e) = inner
            .records
            .purge_step(now, inner.expire_us, PURGE_BUDGET)
            .await
        {
            self.store_failed("purging idle records", &e);
        }
        let due_retries: Vec<RetryBatch> = {
            let mut retries = lock(&self.inner.retries);
            let later = retries.split_off(&(now.saturating_add(1), 0));
            std::mem::replace(&mut *retries, later)
                .into_values()
                .collect()
        };
        for batch in due_retries {
            self.attempt(batch, now).await;
        }
        match inner.records.claim_due(now, inner.max_batch_size).await {
            Ok((batches, taken_over)) => {
                inner
                    .counters
                    .taken_over
                    .fetch_add(taken_over, Ordering::Relaxed);
                for batch in batches {
                    self.attempt(RetryBatch { batch, attempts: 0 }, now).await;
                }
            }
            Err(e) => self.store_failed("claiming due batches", &e),
        }
        if let Err(e) = inner.records.refresh().await {
            self.store_failed("reading the record counts", &e);
        }
    }

    /// One processor call for `batch`; schedules a retry, defers again or dead-letters.
    async fn attempt(&self, mut retry: RetryBatch, now: u64) {
        let inner = &*self.inner;
        retry.attempts += 1;
        let records = &retry.batch.records;
        let result = (inner.processor)(records.clone()).await;
        let events: Arc<[DeliveredRecord]> = records.clone().into();
        match result {
            Ok(()) => self.delivered(&retry.batch, events).await,
            Err(_) if retry.attempts <= inner.max_retries => {
                let delay = self.retry_delay(retry.attempts);
                self.emit(|| TrackerEvent::Retry {
                    attempt: retry.attempts,
                    max_retries: inner.max_retries,
                    delay,
                    events,
                });
                let at = now + duration_to_micros(delay);
                let seq = inner.retry_seq.fetch_add(1, Ordering::Relaxed);
                lock(&inner.retries).insert((at, seq), retry);
            }
            Err(error) => {
                let failed = self
                    .round_failed(retry.batch, events, error, retry.attempts, false)
                    .await;
                if let Some(batch) = failed
                    && let Err(e) = inner.records.defer_again(batch, now).await
                {
                    self.store_failed("deferring a failed batch again", &e);
                }
            }
        }
    }

    /// A round in which every processor attempt failed, by a tick (after its retries) or
    /// by shutdown: counted and emitted, then handed to the dead-letter sink once the
    /// batch has failed `dead_letter_after` rounds (at shutdown, `last_round`, at once).
    /// The one path of every failed round; the batch comes back when no sink took it.
    async fn round_failed(
        &self,
        batch: Claimed,
        events: Arc<[DeliveredRecord]>,
        error: String,
        attempts: u32,
        last_round: bool,
    ) -> Option<Claimed> {
        let inner = &*self.inner;
        inner.counters.failed_rounds.fetch_add(1, Ordering::Relaxed);
        self.emit(|| TrackerEvent::ProcessFailed {
            error: error.clone(),
            events,
            attempts,
        });
        let rounds = batch
            .records
            .iter()
            .map(|r| r.failed_rounds + 1)
            .max()
            .unwrap_or(1);
        if (last_round || rounds >= inner.dead_letter_after)
            && self.dead_lettered(&batch, error, attempts).await
        {
            return None;
        }
        Some(batch)
    }

    /// A batch the processor took: settled in the store, counted, emitted. The one path
    /// of every delivery, by a tick or by shutdown.
    async fn delivered(&self, batch: &Claimed, events: Arc<[DeliveredRecord]>) {
        let inner = &*self.inner;
        if let Err(e) = inner.records.processed(batch).await {
            self.store_failed("settling a processed batch", &e);
        }
        let c = &inner.counters;
        c.processed_records
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        c.processed_events.fetch_add(
            batch.records.iter().map(|r| r.count).sum(),
            Ordering::Relaxed,
        );
        self.emit(|| TrackerEvent::Processed(events));
    }

    /// Hands a batch that kept failing to the dead-letter sink, if there is one; true
    /// when the sink took it (then it is settled and counted). The one path of every
    /// dead letter, by a tick or by shutdown.
    async fn dead_lettered(&self, batch: &Claimed, error: String, attempts: u32) -> bool {
        let inner = &*self.inner;
        let Some(sink) = &inner.dead_letter else {
            return false;
        };
        let letter = DeadLetter {
            records: batch.records.clone(),
            error,
            attempts,
        };
        if let Err(e) = sink(letter).await {
            self.emit(|| TrackerEvent::Error(format!("dead-letter sink failed: {e}")));
            return false;
        }
        inner
            .counters
            .dead_lettered
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        if let Err(e) = inner.records.dead_lettered(batch).await {
            self.store_failed("settling a dead-lettered batch", &e);
        }
        true
    }

    /// The retry schedule's delay after failed attempt `attempt`, its jitter drawn from
    /// the retry sequence number.
    fn retry_delay(&self, attempt: u32) -> Duration {
        let inner = &*self.inner;
        let seq = inner.retry_seq.load(Ordering::Relaxed);
        let random = ahash::RandomState::new().hash_one(seq) >> 11;
        inner
            .backoff
            .delay(attempt, random as f64 / (1u64 << 53) as f64)
    }

    /// Stops the processing loop and processes what is pending now: each batch gets
    /// `1 + max_retries` immediate attempts; what still fails goes to the dead-letter
    /// sink. With the memory store every waiting batch is processed, due or not, and what
    /// nothing took is returned for the caller to persist; with Redis, waiting batches
    /// stay in Redis for the other instances and failed batches held here are put back.
    pub async fn shutdown(&self) -> ShutdownReport {
        let inner = &*self.inner;
        inner.stopped.store(true, Ordering::Release);
        let task = lock(&inner.loop_task).take();
        let _one_at_a_time = inner.tick_lock.lock().await;
        if let Some(task) = task {
            task.abort();
        }
        let mut batches: Vec<Claimed> = std::mem::take(&mut *lock(&inner.retries))
            .into_values()
            .map(|b| b.batch)
            .collect();
        if !inner.records.is_shared() {
            match inner
                .records
                .claim_due(u64::MAX, inner.max_batch_size)
                .await
            {
                Ok((due, _)) => batches.extend(due),
                Err(e) => self.store_failed("claiming pending batches", &e),
            }
        }
        let now = inner.clock.now_micros();
        let mut report = ShutdownReport::default();
        for batch in batches {
            let mut last_error = String::new();
            let mut delivered = false;
            for _ in 0..=inner.max_retries {
                match (inner.processor)(batch.records.clone()).await {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(e) => last_error = e,
                }
            }
            let n = batch.records.len();
            let events: Arc<[DeliveredRecord]> = batch.records.clone().into();
            if delivered {
                report.delivered += n;
                self.delivered(&batch, events).await;
                continue;
            }
            let failed = self
                .round_failed(batch, events, last_error, inner.max_retries + 1, true)
                .await;
            let Some(batch) = failed else {
                report.dead_lettered += n;
                continue;
            };
            if inner.records.is_shared() {
                match inner.records.defer_again(batch, now).await {
                    Ok(()) => report.persisted += n,
                    // The claim's lease expires and another instance takes it over.
                    Err(e) => self.store_failed("putting a failed batch back", &e),
                }
            } else {
                report.undelivered.extend(batch.records);
            }
        }
        report
    }
}
