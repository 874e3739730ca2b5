//! [`TrackerBuilder`]: an [`EventTracker`]'s settings, checked when it is built.

use super::*;

/// Builds an [`EventTracker`].
pub struct TrackerBuilder {
    pub(super) defaults: Defaults,
    pub(super) expire_time: Duration,
    pub(super) max_keys: usize,
    pub(super) processing_interval: Duration,
    pub(super) max_batch_size: usize,
    pub(super) max_retries: u32,
    pub(super) backoff: Backoff,
    pub(super) dead_letter_after: u32,
    pub(super) max_details: usize,
    pub(super) max_detail_bytes: usize,
    pub(super) max_batch_bytes: usize,
    pub(super) max_memory_bytes: usize,
    pub(super) processor: Option<Processor>,
    pub(super) dead_letter: Option<DeadLetterSink>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) manual_ticks: bool,
    pub(super) store: TrackerStore,
    pub(super) lease: Duration,
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
            backoff: Backoff::doubling(Duration::from_secs(1), DEFAULT_MAX_RETRY_DELAY),
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

    /// First retry delay; each further retry waits twice as long, up to
    /// `max_retry_delay` (default 1 s).
    pub fn retry_delay(mut self, d: Duration) -> Self {
        self.backoff.base = d;
        self
    }

    /// The longest retry delay (default 5 min).
    pub fn max_retry_delay(mut self, d: Duration) -> Self {
        self.backoff.max = d;
        self
    }

    /// Largest fraction (0..=1) taken off each retry delay at random, so that batches
    /// that failed together are retried apart (default 0: exact delays).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.backoff.jitter = fraction;
        self
    }

    /// The whole retry schedule at once (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
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
        if let Err(e) = self.backoff.validate() {
            let field = match e.field {
                "base" => "retry_delay",
                "max" => "max_retry_delay",
                other => other,
            };
            let reason = e.reason.replace("`base`", "`retry_delay`");
            return Err(invalid(field, reason));
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
                details: DetailLimits {
                    max_details: self.max_details,
                    max_detail_bytes: self.max_detail_bytes,
                    max_batch_bytes: self.max_batch_bytes,
                },
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
                backoff: self.backoff,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(b: TrackerBuilder) -> String {
        match b.processor(|_| async { Ok::<_, String>(()) }).build() {
            Err(TrackError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    #[test]
    fn an_unusable_retry_schedule_names_the_builder_setting() {
        let b = || EventTracker::builder().manual_ticks();
        let second = Duration::from_secs(1);
        assert_eq!(field_of(b().jitter(1.5)), "jitter");
        assert_eq!(field_of(b().jitter(f64::NAN)), "jitter");
        assert_eq!(
            field_of(b().retry_delay(second).max_retry_delay(second / 2)),
            "max_retry_delay"
        );
    }
}
