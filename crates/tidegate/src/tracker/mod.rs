//! The event tracker: defer, aggregate and batch events over the limit, never lose one.
//!
//! `track_event(category, id, details)` answers `Immediate` while the record's strategy
//! admits, otherwise adds the event to the record's deferred batch (`Deferred`). On each
//! tick, due batches are claimed and handed to the async processor, at most
//! `max_batch_size` records per call; failures are retried with exponential backoff,
//! then deferred again, and after `dead_letter_after` failed rounds handed to the
//! dead-letter sink. Semantics: `docs/TRACKER.md`.

mod budget;
mod details;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod spec;
mod store;
mod strategy;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::broadcast;

pub use details::Details;
pub use record::{
    DeadLetter, DeliveredRecord, IgnoreReason, RecordKey, RecordView, TrackOutcome, TrackerEvent,
};
pub use spec::TrackerSpec;
pub use store::TrackerStore;
pub use strategy::Strategy;

use crate::error::PolicyError;
use crate::time::{Clock, SystemClock, duration_to_micros, micros_to_duration};
use memory::{Bounds, MemoryRecords, RecordSettings};
use store::{Claimed, Reconfigured, Records};
use strategy::{Gate, defer_micros};

/// Compare-and-set attempts of `update_config` against concurrent updates of a record.
const UPDATE_ATTEMPTS: usize = 16;

/// Default most records of a tracker.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Default largest detail kept (bytes of JSON text).
pub const DEFAULT_MAX_DETAIL_BYTES: usize = 8 * 1024;

/// Default most detail bytes kept per deferred batch.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 256 * 1024;

/// Default memory budget of the in-memory tracker (records and details).
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Record slots the purge of idle records looks at per tick (bounded work per tick).
const PURGE_BUDGET: usize = 4_096;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Processor = Arc<dyn Fn(Vec<DeliveredRecord>) -> BoxFuture<Result<(), String>> + Send + Sync>;
type DeadLetterSink = Arc<dyn Fn(DeadLetter) -> BoxFuture<Result<(), String>> + Send + Sync>;

/// A tracker call with an invalid argument or setting.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrackError {
    /// An argument of `track_event` or `update_config` is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument or setting at fault.
        field: String,
        /// Why.
        reason: String,
    },
    /// The tracker was shut down.
    #[error("the tracker is shut down")]
    ShutDown,
    /// The shared store (Redis) failed or did not answer in time; nothing was changed
    /// by this call unless the store applied it before the answer was lost.
    #[error("tracker store: {0}")]
    Store(String),
}

impl From<PolicyError> for TrackError {
    fn from(e: PolicyError) -> Self {
        Self::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> TrackError {
    TrackError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A change to one record's settings (`update_config`); `None` keeps a value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConfigPatch {
    /// Events per record before deferral (simple counter, sliding window).
    pub limit: Option<u64>,
    /// Deferral of a new batch.
    pub defer_interval: Option<Duration>,
    /// The strategy (with its own parameters).
    pub strategy: Option<Strategy>,
}

/// Settings shared by every record (each may be changed per record with `update_config`).
#[derive(Debug, Clone, Copy)]
struct Defaults {
    strategy: Strategy,
    limit: u64,
    defer_interval: Duration,
}

impl Defaults {
    fn settings(&self) -> Result<RecordSettings, TrackError> {
        Ok(RecordSettings {
            strategy: self.strategy,
            limit: self.limit,
            gate: Gate::new(self.strategy, self.limit)?,
            defer_us: defer_micros("defer_interval", self.defer_interval)?,
        })
    }
}

/// Builds an [`EventTracker`].
pub struct TrackerBuilder {
    defaults: Defaults,
    expire_time: Duration,
    max_keys: usize,
    processing_interval: Duration,
    max_batch_size: usize,
    max_retries: u32,
    retry_delay: Duration,
    jitter: Duration,
    dead_letter_after: u32,
    max_details: usize,
    max_detail_bytes: usize,
    max_batch_bytes: usize,
    max_memory_bytes: usize,
    processor: Option<Processor>,
    dead_letter: Option<DeadLetterSink>,
    clock: Arc<dyn Clock>,
    manual_ticks: bool,
    store: TrackerStore,
    lease: Duration,
}

impl std::fmt::Debug for TrackerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerBuilder")
            .field("defaults", &self.defaults)
            .field("processing_interval", &self.processing_interval)
            .finish_non_exhaustive()
    }
}

impl Default for TrackerBuilder {
    fn default() -> Self {
        Self {
            defaults: Defaults {
                strategy: Strategy::SimpleCounter,
                limit: 5,
                defer_interval: Duration::from_secs(3_600),
            },
            expire_time: Duration::from_secs(86_400),
            max_keys: DEFAULT_MAX_KEYS,
            processing_interval: Duration::from_secs(1),
            max_batch_size: 100,
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            jitter: Duration::ZERO,
            dead_letter_after: 3,
            max_details: 100,
            max_detail_bytes: DEFAULT_MAX_DETAIL_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            processor: None,
            dead_letter: None,
            clock: Arc::new(SystemClock),
            manual_ticks: false,
            store: TrackerStore::Memory,
            lease: Duration::from_secs(30),
        }
    }
}

impl TrackerBuilder {
    /// Events per record before deferral (default 5; simple counter and sliding window).
    pub fn limit(mut self, limit: u64) -> Self {
        self.defaults.limit = limit;
        self
    }

    /// How long a new deferred batch waits (default 1 h).
    pub fn defer_interval(mut self, d: Duration) -> Self {
        self.defaults.defer_interval = d;
        self
    }

    /// Idle records (no event for this long, nothing waiting) are purged (default 24 h).
    pub fn expire_time(mut self, d: Duration) -> Self {
        self.expire_time = d;
        self
    }

    /// Most records held (default [`DEFAULT_MAX_KEYS`], at least 1); an event that would
    /// create a record beyond is `Ignored { reason: KeyLimitReached }`.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }

    /// How often due batches are claimed and processed (default 1 s).
    pub fn processing_interval(mut self, d: Duration) -> Self {
        self.processing_interval = d;
        self
    }

    /// Most records per processor call (default 100).
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n;
        self
    }

    /// Retries of a failed processor call per round (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// First retry delay; each further retry waits twice as long (default 1 s).
    pub fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// Up to this much random time added to each retry delay (default none).
    pub fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }

    /// Failed rounds after which a batch goes to the dead-letter sink (default 3; only
    /// with a sink — without one, records stay deferred and are tried again).
    pub fn dead_letter_after(mut self, rounds: u32) -> Self {
        self.dead_letter_after = rounds;
        self
    }

    /// Most details kept per deferred batch (default 100); the rest are counted.
    pub fn max_details(mut self, n: usize) -> Self {
        self.max_details = n;
        self
    }

    /// Largest detail kept, in bytes of compact JSON text (default
    /// [`DEFAULT_MAX_DETAIL_BYTES`]); a larger one is counted in `details_dropped` and
    /// the event is tracked without it.
    pub fn max_detail_bytes(mut self, n: usize) -> Self {
        self.max_detail_bytes = n;
        self
    }

    /// Most detail bytes kept per deferred batch (default [`DEFAULT_MAX_BATCH_BYTES`]);
    /// further details are counted in `details_dropped`. Memory store only.
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.max_batch_bytes = n;
        self
    }

    /// Memory budget of the in-memory records and their details (default
    /// [`DEFAULT_MAX_MEMORY_BYTES`]): once used up, a new record is `Ignored { reason:
    /// MemoryLimitReached }` and further details are counted in `details_dropped`
    /// (events of existing records are still counted and deferred). Memory store only.
    pub fn max_memory_bytes(mut self, n: usize) -> Self {
        self.max_memory_bytes = n;
        self
    }

    /// The strategy (default simple counter).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.defaults.strategy = strategy;
        self
    }

    /// The async processor of due batches (required).
    pub fn processor<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(Vec<DeliveredRecord>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        self.processor = Some(Arc::new(move |batch| {
            let fut = f(batch);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }));
        self
    }

    /// Where batches that keep failing go (see `dead_letter_after`).
    pub fn dead_letter<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(DeadLetter) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        self.dead_letter = Some(Arc::new(move |batch| {
            let fut = f(batch);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }));
        self
    }

    /// The clock (default [`SystemClock`]: µs since the Unix epoch, so `scheduled_at`
    /// and first/last seen times are wall-clock times).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where records live (default [`TrackerStore::Memory`]); with
    /// [`TrackerStore::Redis`], every tracker with the same store and name shares them.
    pub fn store(mut self, store: TrackerStore) -> Self {
        self.store = store;
        self
    }

    /// How long a batch claimed from a shared store stays with this instance without a
    /// renewal (default 30 s); renewed every tick while the batch waits for a retry. If
    /// the instance dies, another one delivers the batch once the lease expires. Must be
    /// longer than `processing_interval` plus the longest processor call.
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }

    /// Do not start the processing loop; the caller drives [`EventTracker::tick`]
    /// (tests, replays on a virtual clock).
    pub fn manual_ticks(mut self) -> Self {
        self.manual_ticks = true;
        self
    }

    /// The tracker; starts its processing loop on the current tokio runtime unless
    /// `manual_ticks`. Every setting is checked; an error names it.
    pub fn build(self) -> Result<EventTracker, TrackError> {
        let default_settings = self.defaults.settings()?;
        if self.processing_interval.is_zero() {
            return Err(invalid("processing_interval", "must be greater than zero"));
        }
        if self.expire_time.is_zero() {
            return Err(invalid("expire_time", "must be greater than zero"));
        }
        if self.max_batch_size == 0 {
            return Err(invalid("max_batch_size", "must be at least 1"));
        }
        if self.max_keys == 0 {
            return Err(invalid(
                "max_keys",
                format!("must be at least 1 (the default is {DEFAULT_MAX_KEYS})"),
            ));
        }
        if self.max_memory_bytes < 64 * 1024 {
            return Err(invalid(
                "max_memory_bytes",
                "must be at least 65536 (64 KiB)",
            ));
        }
        if self.dead_letter_after == 0 {
            return Err(invalid("dead_letter_after", "must be at least 1"));
        }
        let processor = self.processor.ok_or_else(|| {
            invalid(
                "processor",
                "is required: deferred batches must go somewhere",
            )
        })?;
        let records = match self.store {
            TrackerStore::Memory => Records::Memory(MemoryRecords::new(Bounds {
                max_keys: self.max_keys,
                max_details: self.max_details,
                max_detail_bytes: self.max_detail_bytes,
                max_batch_bytes: self.max_batch_bytes,
                max_memory_bytes: self.max_memory_bytes,
            })),
            #[cfg(feature = "redis")]
            TrackerStore::Redis { store, name } => {
                if name.is_empty() {
                    return Err(invalid("store.name", "must not be empty"));
                }
                if self.lease <= self.processing_interval {
                    return Err(invalid(
                        "lease",
                        format!(
                            "{:?} must be longer than processing_interval ({:?}), or live instances would lose their batches",
                            self.lease, self.processing_interval
                        ),
                    ));
                }
                Records::Redis(redis::RedisRecords::new(
                    store,
                    &name,
                    self.max_keys,
                    self.max_details,
                    self.max_detail_bytes,
                    self.lease,
                ))
            }
        };
        let (events, _) = broadcast::channel(4_096);
        let tracker = EventTracker {
            inner: Arc::new(Inner {
                records,
                default_settings,
                expire_us: duration_to_micros(self.expire_time),
                processing_interval: self.processing_interval,
                max_batch_size: self.max_batch_size,
                max_retries: self.max_retries,
                retry_delay: self.retry_delay,
                jitter: self.jitter,
                dead_letter_after: self.dead_letter_after,
                processor,
                dead_letter: self.dead_letter,
                clock: self.clock,
                events,
                retries: Mutex::new(BTreeMap::new()),
                retry_seq: AtomicU64::new(0),
                tick_lock: tokio::sync::Mutex::new(()),
                stopped: AtomicBool::new(false),
                loop_task: Mutex::new(None),
                counters: Counters::default(),
            }),
        };
        if !self.manual_ticks {
            tracker.start_loop()?;
        }
        Ok(tracker)
    }
}

/// A batch in flight between processor attempts.
struct RetryBatch {
    batch: Claimed,
    /// Processor calls made in this round.
    attempts: u32,
}

/// Counters of a tracker, read with [`EventTracker::stats`].
#[derive(Debug, Default)]
struct Counters {
    immediate: AtomicU64,
    deferred: AtomicU64,
    ignored: AtomicU64,
    processed_records: AtomicU64,
    processed_events: AtomicU64,
    failed_rounds: AtomicU64,
    dead_lettered: AtomicU64,
    taken_over: AtomicU64,
}

/// A snapshot of the tracker's counters and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TrackerStats {
    /// Records held.
    pub records: usize,
    /// Deferred batches waiting for their due time.
    pub waiting: usize,
    /// Batches between processor attempts.
    pub retrying: usize,
    /// Events answered immediate.
    pub immediate: u64,
    /// Events deferred.
    pub deferred: u64,
    /// Events ignored (`max_keys`, `max_memory_bytes`).
    pub ignored: u64,
    /// Records delivered to the processor successfully.
    pub processed_records: u64,
    /// Events in those records.
    pub processed_events: u64,
    /// Rounds in which every attempt failed.
    pub failed_rounds: u64,
    /// Records handed to the dead-letter sink.
    pub dead_lettered: u64,
    /// Batches this instance took over from another whose lease expired (Redis).
    pub taken_over: u64,
    /// Details left out by a byte bound (`max_detail_bytes`, and for memory
    /// `max_batch_bytes` and `max_memory_bytes`); also counted in each record's
    /// `details_dropped` (memory store).
    pub details_dropped_by_size: u64,
    /// Bytes of the memory budget in use (memory store; 0 for Redis).
    pub memory_bytes: usize,
}

struct Inner {
    records: Records,
    default_settings: RecordSettings,
    expire_us: u64,
    processing_interval: Duration,
    max_batch_size: usize,
    max_retries: u32,
    retry_delay: Duration,
    jitter: Duration,
    dead_letter_after: u32,
    processor: Processor,
    dead_letter: Option<DeadLetterSink>,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<TrackerEvent>,
    retries: Mutex<BTreeMap<(u64, u64), RetryBatch>>,
    retry_seq: AtomicU64,
    tick_lock: tokio::sync::Mutex<()>,
    stopped: AtomicBool,
    loop_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    counters: Counters,
}

/// What [`EventTracker::shutdown`] did with the batches still pending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShutdownReport {
    /// Records delivered to the processor.
    pub delivered: usize,
    /// Records handed to the dead-letter sink.
    pub dead_lettered: usize,
    /// Records neither could take: persist them yourself (memory store only).
    pub undelivered: Vec<DeliveredRecord>,
    /// Records left waiting in the shared store for another instance (Redis).
    pub persisted: usize,
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
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTracker")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventTracker {
    /// Starts building a tracker.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    fn start_loop(&self) -> Result<(), TrackError> {
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
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(TrackError::ShutDown);
        }
        if category.is_empty() {
            return Err(invalid("category", "must not be empty"));
        }
        if id.is_empty() {
            return Err(invalid("id", "must not be empty"));
        }
        let outcome = self
            .inner
            .records
            .track(category, id, details, now, &self.inner.default_settings)
            .await?;
        let c = &self.inner.counters;
        match &outcome {
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
        Ok(outcome)
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
            let limit = patch.limit.unwrap_or(current.limit);
            let strategy = patch.strategy.unwrap_or(current.strategy);
            let settings = RecordSettings {
                strategy,
                limit,
                gate: Gate::new(strategy, limit)?,
                defer_us: match patch.defer_interval {
                    Some(d) => defer_micros("defer_interval", d)?,
                    None => current.defer_us,
                },
            };
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
        Err(TrackError::Store(format!(
            "the settings of ({category}, {id}) changed under {UPDATE_ATTEMPTS} attempts of update_config in a row"
        )))
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
            Ok(()) => {
                if let Err(e) = inner.records.processed(&retry.batch).await {
                    self.store_failed("settling a processed batch", &e);
                }
                let c = &inner.counters;
                c.processed_records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                c.processed_events
                    .fetch_add(records.iter().map(|r| r.count).sum(), Ordering::Relaxed);
                self.emit(|| TrackerEvent::Processed(events));
            }
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
                inner.counters.failed_rounds.fetch_add(1, Ordering::Relaxed);
                self.emit(|| TrackerEvent::ProcessFailed {
                    error: error.clone(),
                    events: Arc::clone(&events),
                    attempts: retry.attempts,
                });
                let rounds = records
                    .iter()
                    .map(|r| r.failed_rounds + 1)
                    .max()
                    .unwrap_or(1);
                if let Some(sink) = &inner.dead_letter
                    && rounds >= inner.dead_letter_after
                {
                    let letter = DeadLetter {
                        records: records.clone(),
                        error,
                        attempts: retry.attempts,
                    };
                    match sink(letter).await {
                        Ok(()) => {
                            inner
                                .counters
                                .dead_lettered
                                .fetch_add(records.len() as u64, Ordering::Relaxed);
                            if let Err(e) = inner.records.dead_lettered(&retry.batch).await {
                                self.store_failed("settling a dead-lettered batch", &e);
                            }
                            return;
                        }
                        Err(e) => {
                            self.emit(|| {
                                TrackerEvent::Error(format!("dead-letter sink failed: {e}"))
                            });
                        }
                    }
                }
                if let Err(e) = inner.records.defer_again(retry.batch, now).await {
                    self.store_failed("deferring a failed batch again", &e);
                }
            }
        }
    }

    /// `retry_delay × 2^(attempt-1)` plus up to `jitter`.
    fn retry_delay(&self, attempt: u32) -> Duration {
        let inner = &*self.inner;
        let base = inner.retry_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        if inner.jitter.is_zero() {
            return base;
        }
        let seq = inner.retry_seq.load(Ordering::Relaxed);
        let random = ahash::RandomState::new().hash_one(seq);
        let jitter_us = duration_to_micros(inner.jitter);
        base + micros_to_duration(random % (jitter_us + 1))
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
            if delivered {
                if let Err(e) = inner.records.processed(&batch).await {
                    self.store_failed("settling a processed batch", &e);
                }
                report.delivered += batch.records.len();
                let events: Arc<[DeliveredRecord]> = batch.records.into();
                self.emit(|| TrackerEvent::Processed(events));
                continue;
            }
            if let Some(sink) = &inner.dead_letter {
                let letter = DeadLetter {
                    records: batch.records.clone(),
                    error: last_error.clone(),
                    attempts: inner.max_retries + 1,
                };
                if sink(letter).await.is_ok() {
                    report.dead_lettered += batch.records.len();
                    if let Err(e) = inner.records.dead_lettered(&batch).await {
                        self.store_failed("settling a dead-lettered batch", &e);
                    }
                    continue;
                }
            }
            if inner.records.is_shared() {
                let n = batch.records.len();
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
