//! `NativeTracker`: tidegate's event tracker, driven by the JavaScript `EventTracker`.

use std::future::Future;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use napi::bindgen_prelude::{
    Either, Float64ArraySlice, Function, Promise, within_runtime_if_available,
};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Result, Status};
use napi_derive::napi;
use tidegate::tracker::{
    ConfigPatch, DeliveredRecord, Details, EventTracker, TrackOutcome, TrackerBuilder,
};
use tokio::task::JoinHandle;

use crate::delivered::batch_value;
use crate::errors::{range_error, track_error, type_error};
use crate::outcome::{RECORD_SLOTS, StoredRecord, TrackBatch, TrackResult, write_record};
use crate::redis_connection::RedisConnection;
use crate::strategy::{StrategySpec, duration_ms, whole};
use crate::tracker_events::{EventSink, forward};
use crate::tracker_options::TrackerOptions;

/// The JavaScript dispatcher of due batches: receives a batch's JSON text and resolves
/// to `null` (delivered) or an error text (failed). Weak: it does not keep the process
/// alive (the JavaScript wrapper does, while a processor is set).
type ProcessorFn = ThreadsafeFunction<String, Promise<Option<String>>, String, Status, false, true>;

/// A change to one record's settings; `deferInterval` in milliseconds.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct ConfigPatchSpec {
    /// Events per record before deferral.
    pub limit: Option<f64>,
    /// Deferral of a new batch, in milliseconds.
    pub defer_interval: Option<f64>,
    /// The strategy.
    pub strategy: Option<StrategySpec>,
}

/// A tracker's counters and gauges.
#[napi(object)]
#[derive(Debug, Clone, Copy)]
pub struct TrackerStatsSnapshot {
    /// Records held (Redis: as of the latest tick, every instance's).
    pub records: f64,
    /// Deferred batches waiting for their due time.
    pub waiting: f64,
    /// Batches between processor attempts.
    pub retrying: f64,
    /// Events answered immediate.
    pub immediate: f64,
    /// Events deferred.
    pub deferred: f64,
    /// Events ignored.
    pub ignored: f64,
    /// Records delivered to the processor.
    pub processed_records: f64,
    /// Events in those records.
    pub processed_events: f64,
    /// Rounds in which every attempt failed.
    pub failed_rounds: f64,
    /// Batches taken over from an instance whose lease expired (Redis).
    pub taken_over: f64,
}

/// What `shutdown()` did with the pending batches.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ShutdownSummary {
    /// Records delivered to the processor.
    pub delivered: f64,
    /// Records the processor kept refusing (memory store), as a JSON array.
    pub undelivered: String,
    /// Records left waiting in Redis for the other instances.
    pub persisted: f64,
}

/// tidegate's tracker with a JavaScript processor and event sink.
#[napi]
pub struct NativeTracker {
    tracker: EventTracker,
    processor: Arc<Mutex<Option<Arc<ProcessorFn>>>>,
    sink: Mutex<Option<EventSink>>,
    forwarder: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    shared: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `details` (JSON text from `JSON.stringify`, absent for none) as tidegate's details.
fn details(text: Option<String>) -> Result<Details> {
    match text {
        None => Ok(Details::null()),
        Some(t) => Details::from_json(&t)
            .map_err(|e| type_error(format!("details must be serialisable as JSON: {e}"))),
    }
}

#[napi]
impl NativeTracker {
    /// A tracker in this process's memory.
    #[napi(constructor)]
    pub fn new(
        options: TrackerOptions,
        process: Function<String, Promise<Option<String>>>,
        emit: Function<String, ()>,
    ) -> Result<Self> {
        Self::build(options.builder(None)?, process, emit, false)
    }

    /// Whether records live in Redis, shared with other instances.
    #[napi(getter)]
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Tracks one event; with the memory store the outcome is known at once, otherwise
    /// this answers `null` (then call `track`). An immediate or deferred event answers
    /// `0` or `1` and writes the record's numbers into `out` (total, deferred,
    /// scheduled at or `NaN`, first seen, last seen), so no object is built per call;
    /// an ignored one answers the whole `TrackResult`.
    #[napi]
    pub fn track_now(
        &self,
        category: String,
        id: String,
        details_json: Option<String>,
        mut out: Float64ArraySlice<'_>,
    ) -> Result<Option<Either<u32, TrackResult>>> {
        if self.shared {
            return Ok(None);
        }
        // SAFETY: the typed array outlives this call, and nothing else reads or writes
        // it while this call runs (JavaScript waits for it).
        let out = unsafe { out.as_mut() };
        if out.len() < RECORD_SLOTS {
            return Err(range_error(format!(
                "out must hold {RECORD_SLOTS} numbers, it holds {}",
                out.len()
            )));
        }
        let details = details(details_json)?;
        let fut = self.tracker.track_event(&category, &id, details);
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        let outcome = match within_runtime_if_available(|| fut.as_mut().poll(&mut cx)) {
            Poll::Ready(r) => r.map_err(track_error)?,
            Poll::Pending => return Ok(None),
        };
        Ok(Some(match &outcome {
            TrackOutcome::Immediate(r) => {
                write_record(r, out);
                Either::A(0)
            }
            TrackOutcome::Deferred(r) => {
                write_record(r, out);
                Either::A(1)
            }
            other => Either::B(TrackResult::from(other)),
        }))
    }

    /// Tracks one event (through Redis when shared).
    #[napi]
    pub async fn track(
        &self,
        category: String,
        id: String,
        details_json: Option<String>,
    ) -> Result<TrackResult> {
        let details = details(details_json)?;
        let tracker = self.tracker.clone();
        let outcome = tracker
            .track_event(&category, &id, details)
            .await
            .map_err(track_error)?;
        Ok(TrackResult::from(&outcome))
    }

    /// Tracks many events at once (through Redis when shared): one call and one
    /// promise for the lot; the engine sends them to Redis in its own batches. Event
    /// `i` is `(categories[i], ids[i], details[i])`.
    #[napi]
    pub async fn track_batch(
        &self,
        categories: Vec<String>,
        ids: Vec<String>,
        details_json: Vec<Option<String>>,
    ) -> Result<TrackBatch> {
        if categories.len() != ids.len() || ids.len() != details_json.len() {
            return Err(range_error(format!(
                "categories, ids and details differ in length ({}, {}, {})",
                categories.len(),
                ids.len(),
                details_json.len()
            )));
        }
        // Details that are not JSON fail their own event; the others go together.
        let mut parsed = Vec::with_capacity(ids.len());
        let mut events = Vec::with_capacity(ids.len());
        for ((category, id), json) in categories.into_iter().zip(ids).zip(details_json) {
            match details(json) {
                Ok(d) => {
                    events.push((category, id, d));
                    parsed.push(None);
                }
                Err(e) => parsed.push(Some(Err(e))),
            }
        }
        let mut tracked = self.tracker.track_events(&events).await.into_iter();
        Ok(TrackBatch::from_outcomes(
            parsed
                .into_iter()
                .map(|slot| {
                    slot.unwrap_or_else(|| {
                        tracked
                            .next()
                            .expect("one answer per event")
                            .map_err(track_error)
                    })
                })
                .collect(),
        ))
    }

    /// Changes one record's settings; resolves to `false` when the record does not exist.
    #[napi]
    pub async fn update_config(
        &self,
        category: String,
        id: String,
        patch: ConfigPatchSpec,
    ) -> Result<bool> {
        let patch = ConfigPatch {
            limit: patch.limit.map(whole),
            defer_interval: patch.defer_interval.map(duration_ms),
            strategy: patch
                .strategy
                .as_ref()
                .map(StrategySpec::to_strategy)
                .transpose()?,
        };
        let tracker = self.tracker.clone();
        tracker
            .update_config(&category, &id, patch)
            .await
            .map_err(track_error)
    }

    /// The record as the store holds it (with Redis: every instance's events), or
    /// `null`.
    #[napi]
    pub async fn record(&self, category: String, id: String) -> Result<Option<StoredRecord>> {
        let tracker = self.tracker.clone();
        let snapshot = tracker.record(&category, &id).await.map_err(track_error)?;
        Ok(snapshot.as_ref().map(StoredRecord::from))
    }

    /// The records whose batch waits (`due_only`: only those already due), earliest due
    /// first, at most `limit`; nothing is claimed.
    #[napi]
    pub async fn waiting(&self, due_only: bool, limit: f64) -> Result<Vec<StoredRecord>> {
        if !(limit.is_finite() && limit >= 1.0 && limit.fract() == 0.0) {
            return Err(range_error(format!(
                "invalid limit: {limit} is not a whole number of at least 1"
            )));
        }
        let limit = limit.min(usize::MAX as f64) as usize;
        let tracker = self.tracker.clone();
        let records = if due_only {
            tracker.due_records(limit).await
        } else {
            tracker.waiting_records(limit).await
        }
        .map_err(track_error)?;
        Ok(records.iter().map(StoredRecord::from).collect())
    }

    /// Forgets the record so its next event is immediate; a batch of it that waits is
    /// handed to the processor on the next tick. Resolves to `false` when it does not
    /// exist.
    #[napi]
    pub async fn reset(&self, category: String, id: String) -> Result<bool> {
        let tracker = self.tracker.clone();
        tracker
            .reset_record(&category, &id)
            .await
            .map_err(track_error)
    }

    /// Starts forwarding lifecycle events to the event sink (once).
    #[napi]
    pub fn listen(&self) {
        let Some(sink) = lock(&self.sink).take() else {
            return;
        };
        let events = self.tracker.subscribe();
        let task = within_runtime_if_available(|| {
            tokio::spawn(forward(events, sink, Arc::clone(&self.stop)))
        });
        *lock(&self.forwarder) = Some(task);
    }

    /// The counters and gauges.
    #[napi]
    pub fn stats(&self) -> TrackerStatsSnapshot {
        let s = self.tracker.stats();
        TrackerStatsSnapshot {
            records: s.records as f64,
            waiting: s.waiting as f64,
            retrying: s.retrying as f64,
            immediate: s.immediate as f64,
            deferred: s.deferred as f64,
            ignored: s.ignored as f64,
            processed_records: s.processed_records as f64,
            processed_events: s.processed_events as f64,
            failed_rounds: s.failed_rounds as f64,
            taken_over: s.taken_over as f64,
        }
    }

    /// Deletes every record and batch of this tracker (with Redis: for every instance).
    #[napi]
    pub async fn clear(&self) -> Result<f64> {
        let tracker = self.tracker.clone();
        tracker.clear().await.map(|n| n as f64).map_err(track_error)
    }

    /// Stops the processing loop and hands every pending batch to the processor now;
    /// then lets go of the JavaScript functions.
    #[napi]
    pub async fn shutdown(&self) -> Result<ShutdownSummary> {
        let tracker = self.tracker.clone();
        let report = tracker.shutdown().await;
        self.release();
        Ok(ShutdownSummary {
            delivered: report.delivered as f64,
            undelivered: batch_value(&report.undelivered).to_string(),
            persisted: report.persisted as f64,
        })
    }

    /// Stops at once without delivering: the processor is let go first, so pending
    /// batches fail their attempts (memory: dropped; Redis: left for other instances).
    #[napi]
    pub fn destroy(&self) {
        lock(&self.processor).take();
        let tracker = self.tracker.clone();
        within_runtime_if_available(|| {
            tokio::spawn(async move {
                tracker.shutdown().await;
            })
        });
        self.release();
    }
}

impl NativeTracker {
    /// The tracker from `builder`, with `process` as its processor and `emit` as the
    /// sink of its lifecycle events.
    pub(crate) fn build(
        builder: TrackerBuilder,
        process: Function<String, Promise<Option<String>>>,
        emit: Function<String, ()>,
        shared: bool,
    ) -> Result<Self> {
        let process: ProcessorFn = process
            .build_threadsafe_function::<String>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let sink: EventSink = emit
            .build_threadsafe_function::<String>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let slot = Arc::new(Mutex::new(Some(Arc::new(process))));
        let for_processor = Arc::clone(&slot);
        let builder = builder.processor(move |batch: Vec<DeliveredRecord>| {
            let slot = Arc::clone(&for_processor);
            deliver(slot, batch)
        });
        let tracker = within_runtime_if_available(|| builder.build()).map_err(track_error)?;
        Ok(Self {
            tracker,
            processor: slot,
            sink: Mutex::new(Some(sink)),
            forwarder: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            shared,
        })
    }

    /// Lets go of the JavaScript functions; the forwarder hands over what it still
    /// has, then stops.
    fn release(&self) {
        lock(&self.processor).take();
        lock(&self.sink).take();
        self.stop.store(true, Ordering::Release);
        lock(&self.forwarder).take();
    }
}

/// Hands `batch` to the JavaScript dispatcher and waits for its promise.
fn deliver(
    slot: Arc<Mutex<Option<Arc<ProcessorFn>>>>,
    batch: Vec<DeliveredRecord>,
) -> impl Future<Output = std::result::Result<(), String>> + Send + 'static {
    let processor = lock(&slot).clone();
    let json = batch_value(&batch).to_string();
    async move {
        let Some(processor) = processor else {
            return Err("the tracker was destroyed: its processor is gone".to_string());
        };
        let promise = processor
            .call_async_catch(json)
            .await
            .map_err(|e| e.reason.clone())?;
        match promise.await {
            Ok(None) => Ok(()),
            Ok(Some(error)) => Err(error),
            Err(e) => Err(e.reason.clone()),
        }
    }
}

#[napi]
impl RedisConnection {
    /// A tracker whose records live in this Redis under `name`: every tracker with the
    /// same Redis and name shares records, waiting batches and leases.
    #[napi]
    pub fn tracker(
        &self,
        name: String,
        options: TrackerOptions,
        process: Function<String, Promise<Option<String>>>,
        emit: Function<String, ()>,
    ) -> Result<NativeTracker> {
        NativeTracker::build(options.builder(Some((self, name)))?, process, emit, true)
    }
}
