//! The event tracker's semantics on a virtual clock: strategies with exact counts and
//! times, retries with backoff, redelivery after a failed round, dead letter,
//! update_config, max_keys, validation, and zero loss.
#![cfg(feature = "tracker")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tidegate::ManualClock;
use tidegate::tracker::{
    ConfigPatch, DeadLetter, DeliveredRecord, EventTracker, IgnoreReason, RecordState, Strategy,
    TrackError, TrackOutcome, TrackerBuilder, TrackerEvent,
};

const MS: u64 = 1_000;

/// Where a test's tracker keeps its records: memory, or a real redis-server of its own.
enum Store {
    Memory,
    #[cfg(feature = "redis")]
    Redis {
        /// Kept so the server lives as long as the test.
        _server: redis_test_server::RedisServer,
        store: tidegate::store::redis::RedisStore,
    },
}

impl Store {
    #[cfg(feature = "redis")]
    async fn redis() -> Self {
        let server = redis_test_server::RedisServer::start();
        let options =
            tidegate::store::redis::RedisOptions::default().with_timeout(Duration::from_secs(2));
        let store = tidegate::store::redis::RedisStore::connect(&[server.url()], options)
            .await
            .unwrap();
        Store::Redis {
            _server: server,
            store,
        }
    }

    fn apply(&self, builder: TrackerBuilder) -> TrackerBuilder {
        match self {
            Store::Memory => builder,
            #[cfg(feature = "redis")]
            Store::Redis { store, .. } => builder.store(tidegate::tracker::TrackerStore::redis(
                store.clone(),
                "test",
            )),
        }
    }
}

/// Each test runs twice: on the memory store and on Redis, with the same assertions.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(&super::Store::Memory).await
            }

            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(&super::Store::redis().await).await
            }
        })*
    };
}

on_every_store!(
    simple_counter_defers_after_limit_and_starts_again_after_processing,
    token_bucket_defers_until_the_next_token_and_admits_while_a_batch_waits,
    sliding_window_uses_the_window_estimate_and_the_defer_interval,
    failed_calls_are_retried_with_exponential_backoff,
    a_failed_round_defers_the_records_again_and_they_are_delivered_later,
    batches_that_keep_failing_go_to_the_dead_letter_sink,
    update_config_changes_one_record_and_rejects_invalid_values,
    a_later_patch_keeps_the_strategy_set_by_an_earlier_one,
    a_new_key_beyond_max_keys_is_ignored_counted_and_emitted,
    invalid_arguments_and_settings_are_clear_errors,
    a_deferred_record_outlives_an_expire_time_shorter_than_its_deferral,
    record_reads_the_counts_the_waiting_batch_and_the_state_from_the_store,
    reset_forgets_an_idle_record_and_its_next_event_is_immediate,
    reset_hands_the_waiting_batch_to_the_processor_and_the_next_event_is_immediate,
    a_reset_batch_whose_delivery_fails_waits_again_and_is_not_lost,
    waiting_and_due_records_list_the_due_index_earliest_first_within_the_limit,
);

/// Collects every batch the processor receives; fails the first `fail_first` calls.
#[derive(Clone, Default)]
struct Sink {
    batches: Arc<Mutex<Vec<Vec<DeliveredRecord>>>>,
    calls: Arc<AtomicU32>,
}

impl Sink {
    fn builder(&self, store: &Store, fail_first: u32) -> TrackerBuilder {
        let sink = self.clone();
        store
            .apply(EventTracker::builder())
            .manual_ticks()
            .clock(ManualClock::new(0))
            .processor(move |batch| {
                let sink = sink.clone();
                async move {
                    let call = sink.calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if call <= fail_first {
                        return Err(format!("call {call} fails"));
                    }
                    sink.batches.lock().unwrap().push(batch);
                    Ok(())
                }
            })
    }

    fn delivered(&self) -> Vec<DeliveredRecord> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
}

fn kind(o: &TrackOutcome) -> &'static str {
    o.kind()
}

/// Runs a future that completes without waiting (the memory tracker's calls do).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory tracker should not wait"),
    }
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<TrackerEvent>) -> Vec<TrackerEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

async fn simple_counter_defers_after_limit_and_starts_again_after_processing(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .limit(2)
        .defer_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut kinds = Vec::new();
    let mut scheduled = Vec::new();
    for (i, at) in [0, 10, 20, 30, 40].into_iter().enumerate() {
        let o = t
            .track_event_at("auth", "u1", json!({"n": i}), at * MS)
            .await
            .unwrap();
        kinds.push(kind(&o));
        scheduled.push(o.record().scheduled_at_ms());
    }
    assert_eq!(
        kinds,
        ["immediate", "immediate", "deferred", "deferred", "deferred"]
    );
    // scheduled_at = first deferral (20 ms) + 100 ms, never pushed forward.
    assert_eq!(scheduled[2..], [Some(120), Some(120), Some(120)]);
    t.tick_at(119 * MS).await;
    assert!(sink.delivered().is_empty());
    t.tick_at(120 * MS).await;
    let d = sink.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].count, d[0].first_seen_us, d[0].last_seen_us),
        (3, 20 * MS, 40 * MS)
    );
    assert_eq!(
        d[0].details,
        vec![json!({"n": 2}), json!({"n": 3}), json!({"n": 4})]
    );
    // After processing, counting starts again from zero.
    let o = t
        .track_event_at("auth", "u1", json!(null), 130 * MS)
        .await
        .unwrap();
    assert_eq!(kind(&o), "immediate");
    assert_eq!(o.record().total, 6);
}

async fn token_bucket_defers_until_the_next_token_and_admits_while_a_batch_waits(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .strategy(Strategy::TokenBucket {
            bucket_size: 2,
            refill_rate: 1.0,
        })
        .build()
        .unwrap();
    let mut out = Vec::new();
    for ms in [0, 0, 0, 500] {
        out.push(
            t.track_event_at("api", "k", json!(ms), ms * MS)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        out.iter().map(kind).collect::<Vec<_>>(),
        ["immediate", "immediate", "deferred", "deferred"]
    );
    // The next token is back 1 s after the bucket ran dry.
    assert_eq!(out[2].record().scheduled_at_ms(), Some(1_000));
    assert_eq!(out[3].record().scheduled_at_ms(), Some(1_000));
    // At 1 s a token is available: immediate, although the batch still waits.
    let o = t
        .track_event_at("api", "k", json!(1000), 1_000 * MS)
        .await
        .unwrap();
    assert_eq!(kind(&o), "immediate");
    assert_eq!(o.record().deferred, 2);
    t.tick_at(1_000 * MS).await;
    assert_eq!(sink.delivered()[0].count, 2);
}

async fn sliding_window_uses_the_window_estimate_and_the_defer_interval(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .limit(3)
        .defer_interval(Duration::from_millis(100))
        .strategy(Strategy::SlidingWindow {
            window_size: Duration::from_secs(1),
        })
        .build()
        .unwrap();
    let mut kinds = Vec::new();
    for ms in [0, 0, 0, 0, 50] {
        let o = t.track_event_at("log", "svc", json!(null), ms * MS).await;
        kinds.push(kind(&o.unwrap()));
    }
    assert_eq!(
        kinds,
        [
            "immediate",
            "immediate",
            "immediate",
            "deferred",
            "deferred"
        ]
    );
    // At 1.5 s the previous window (3) weighs floor(3 × 0.5) = 1: two more are immediate.
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let o = t
            .track_event_at("log", "svc", json!(null), 1_500 * MS)
            .await;
        kinds.push(kind(&o.unwrap()));
    }
    assert_eq!(kinds, ["immediate", "immediate", "deferred"]);
    t.tick_at(100 * MS).await;
    assert_eq!(
        sink.delivered()[0].count,
        3,
        "the batch holds the three deferred events"
    );
}

async fn failed_calls_are_retried_with_exponential_backoff(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 2)
        .limit(1)
        .defer_interval(Duration::from_millis(10))
        .max_retries(3)
        .retry_delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut rx = t.subscribe();
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    t.track_event_at("a", "1", json!("x"), 0).await.unwrap();
    t.tick_at(10 * MS).await; // call 1 fails: retry in 100 ms
    t.tick_at(109 * MS).await; // not due yet
    t.tick_at(110 * MS).await; // call 2 fails: retry in 200 ms
    t.tick_at(309 * MS).await;
    assert!(sink.delivered().is_empty());
    t.tick_at(310 * MS).await; // call 3 succeeds
    assert_eq!(sink.delivered().len(), 1);
    let retries: Vec<_> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            TrackerEvent::Retry {
                attempt,
                max_retries,
                delay,
                events,
            } => Some((attempt, max_retries, delay, events.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        [
            (1, 3, Duration::from_millis(100), 1),
            (2, 3, Duration::from_millis(200), 1)
        ]
    );
    assert_eq!(sink.calls.load(Ordering::SeqCst), 3);
}

async fn a_failed_round_defers_the_records_again_and_they_are_delivered_later(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 2)
        .limit(1)
        .defer_interval(Duration::from_millis(50))
        .max_retries(1)
        .retry_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let mut rx = t.subscribe();
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    t.track_event_at("a", "1", json!(1), 0).await.unwrap();
    t.tick_at(50 * MS).await; // call 1 fails -> retry at 60
    t.tick_at(60 * MS).await; // call 2 fails -> round failed, deferred again to 110
    let failed: Vec<_> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            TrackerEvent::ProcessFailed {
                error,
                events,
                attempts,
            } => Some((error, events.len(), attempts)),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [("call 2 fails".to_string(), 1, 2)]);
    // A new event joins the re-deferred batch.
    let o = t.track_event_at("a", "1", json!(2), 70 * MS).await.unwrap();
    assert_eq!((kind(&o), o.record().deferred), ("deferred", 2));
    assert_eq!(o.record().scheduled_at_ms(), Some(110));
    t.tick_at(110 * MS).await;
    let d = sink.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].count, d[0].failed_rounds), (2, 1));
    assert_eq!(d[0].details, vec![json!(1), json!(2)]);
    assert_eq!(t.stats().failed_rounds, 1);
}

async fn batches_that_keep_failing_go_to_the_dead_letter_sink(store: &Store) {
    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let l = Arc::clone(&letters);
    let sink = Sink::default();
    let t = sink
        .builder(store, u32::MAX)
        .limit(1)
        .defer_interval(Duration::from_millis(10))
        .max_retries(0)
        .dead_letter_after(2)
        .dead_letter(move |letter| {
            let l = Arc::clone(&l);
            async move {
                l.lock().unwrap().push(letter);
                Ok::<_, String>(())
            }
        })
        .build()
        .unwrap();
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    t.track_event_at("a", "1", json!("lost?"), 0).await.unwrap();
    t.tick_at(10 * MS).await; // round 1 fails: deferred again to 20
    assert!(letters.lock().unwrap().is_empty());
    t.tick_at(20 * MS).await; // round 2 fails: dead letter
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].records[0].details, vec![json!("lost?")]);
    assert_eq!(letters[0].records[0].failed_rounds, 1);
    assert_eq!(t.stats().dead_lettered, 1);
    assert!(!t.has_pending());
}

async fn update_config_changes_one_record_and_rejects_invalid_values(store: &Store) {
    let sink = Sink::default();
    let t = sink.builder(store, 0).limit(1).build().unwrap();
    assert_eq!(
        t.update_config("a", "missing", ConfigPatch::default())
            .await,
        Ok(false)
    );
    t.track_event_at("a", "vip", json!(null), 0).await.unwrap();
    t.track_event_at("a", "other", json!(null), 0)
        .await
        .unwrap();
    let mut rx = t.subscribe();
    let patch = ConfigPatch {
        limit: Some(3),
        ..ConfigPatch::default()
    };
    assert_eq!(t.update_config("a", "vip", patch).await, Ok(true));
    assert!(matches!(
        drain(&mut rx)[..],
        [TrackerEvent::ConfigUpdated(_)]
    ));
    let mut vip = Vec::new();
    for _ in 0..3 {
        vip.push(kind(
            &t.track_event_at("a", "vip", json!(null), 0).await.unwrap(),
        ));
    }
    assert_eq!(vip, ["immediate", "immediate", "deferred"]);
    assert_eq!(
        kind(
            &t.track_event_at("a", "other", json!(null), 0)
                .await
                .unwrap()
        ),
        "deferred"
    );
    let bad = t
        .update_config(
            "a",
            "vip",
            ConfigPatch {
                limit: Some(0),
                ..ConfigPatch::default()
            },
        )
        .await;
    assert!(
        matches!(bad, Err(TrackError::Invalid { ref field, .. }) if field == "limit"),
        "{bad:?}"
    );
    let bad = t
        .update_config(
            "a",
            "vip",
            ConfigPatch {
                strategy: Some(Strategy::TokenBucket {
                    bucket_size: 1,
                    refill_rate: f64::INFINITY,
                }),
                ..ConfigPatch::default()
            },
        )
        .await;
    assert!(
        matches!(bad, Err(TrackError::Invalid { ref field, .. }) if field == "refill_rate"),
        "{bad:?}"
    );
}

async fn a_later_patch_keeps_the_strategy_set_by_an_earlier_one(store: &Store) {
    let sink = Sink::default();
    let t = sink.builder(store, 0).limit(1).build().unwrap();
    t.track_event_at("a", "k", json!(null), 0).await.unwrap();
    let bucket = ConfigPatch {
        strategy: Some(Strategy::TokenBucket {
            bucket_size: 3,
            refill_rate: 1.0,
        }),
        ..ConfigPatch::default()
    };
    assert_eq!(t.update_config("a", "k", bucket).await, Ok(true));
    let defer_only = ConfigPatch {
        defer_interval: Some(Duration::from_millis(10)),
        ..ConfigPatch::default()
    };
    assert_eq!(t.update_config("a", "k", defer_only).await, Ok(true));
    // Still the 3-token bucket, not the default simple counter with limit 1.
    let mut kinds = Vec::new();
    for _ in 0..4 {
        kinds.push(kind(
            &t.track_event_at("a", "k", json!(null), 0).await.unwrap(),
        ));
    }
    assert_eq!(kinds, ["immediate", "immediate", "immediate", "deferred"]);
}

async fn a_new_key_beyond_max_keys_is_ignored_counted_and_emitted(store: &Store) {
    let sink = Sink::default();
    let t = sink.builder(store, 0).max_keys(2).build().unwrap();
    let mut rx = t.subscribe();
    t.track_event_at("c", "1", json!(null), 0).await.unwrap();
    t.track_event_at("c", "2", json!(null), 0).await.unwrap();
    let o = t.track_event_at("c", "3", json!(null), 0).await.unwrap();
    assert!(matches!(
        o,
        TrackOutcome::Ignored {
            reason: IgnoreReason::KeyLimitReached,
            ..
        }
    ));
    assert_eq!(
        kind(&t.track_event_at("c", "1", json!(null), 0).await.unwrap()),
        "immediate"
    );
    assert_eq!(t.stats().ignored, 1);
    // The gauges of a Redis tracker are read by each tick.
    t.tick_at(0).await;
    assert_eq!(t.stats().records, 2);
    assert!(
        drain(&mut rx)
            .iter()
            .any(|e| matches!(e, TrackerEvent::Ignored { .. }))
    );
}

async fn invalid_arguments_and_settings_are_clear_errors(store: &Store) {
    let sink = Sink::default();
    let t = sink.builder(store, 0).build().unwrap();
    let e = t.track_event("", "1", json!(null)).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid category: must not be empty");
    let e = t.track_event("c", "", json!(null)).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid id: must not be empty");
    let e = sink.builder(store, 0).limit(0).build().unwrap_err();
    assert_eq!(e.to_string(), "invalid limit: must be at least 1");
    let e = sink
        .builder(store, 0)
        .strategy(Strategy::TokenBucket {
            bucket_size: 2,
            refill_rate: -0.5,
        })
        .build()
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid refill_rate:"), "{e}");
    let e = sink
        .builder(store, 0)
        .defer_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid defer_interval: must be greater than zero"
    );
    let e = EventTracker::builder().manual_ticks().build().unwrap_err();
    assert!(
        e.to_string().starts_with("invalid processor: is required"),
        "{e}"
    );
}

async fn a_deferred_record_outlives_an_expire_time_shorter_than_its_deferral(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .limit(1)
        .defer_interval(Duration::from_millis(100))
        .expire_time(Duration::from_millis(10))
        .build()
        .unwrap();
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    t.track_event_at("a", "1", json!("keep me"), 0)
        .await
        .unwrap();
    t.track_event_at("a", "idle", json!(null), 0).await.unwrap();
    // Purge passes over every shard: only the idle record without a batch goes.
    for _ in 0..300 {
        t.tick_at(50 * MS).await;
    }
    assert_eq!(t.stats().records, 1);
    t.tick_at(100 * MS).await;
    assert_eq!(sink.delivered()[0].details, vec![json!("keep me")]);
}

#[test]
fn concurrent_producers_on_one_key_lose_no_count() {
    let sink = Sink::default();
    let t = sink
        .builder(&Store::Memory, 0)
        .limit(10)
        .defer_interval(Duration::from_secs(3_600))
        .build()
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut immediate = 0;
                for i in 0..1_000 {
                    if kind(&ready(t.track_event_at("hot", "key", json!(i), 5)).unwrap())
                        == "immediate"
                    {
                        immediate += 1;
                    }
                }
                immediate
            })
        })
        .collect();
    let immediate: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(immediate, 10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let report = rt.block_on(t.shutdown());
    assert_eq!(report.delivered, 1);
    let d = sink.delivered();
    assert_eq!(d[0].count, 7_990);
    assert_eq!(
        (d[0].details.len() as u64, d[0].details_dropped),
        (100, 7_890)
    );
}

#[tokio::test]
async fn shutdown_delivers_everything_pending_or_reports_it() {
    let sink = Sink::default();
    let t = sink
        .builder(&Store::Memory, 0)
        .limit(1)
        .max_batch_size(2)
        .build()
        .unwrap();
    for id in ["a", "b", "c"] {
        t.track_event_at("x", id, json!(null), 0).await.unwrap();
        t.track_event_at("x", id, json!(id), 0).await.unwrap();
    }
    let mut rx = t.subscribe();
    let report = t.shutdown().await;
    assert_eq!((report.delivered, report.undelivered.len()), (3, 0));
    // Delivered by shutdown exactly as by a tick: counted and emitted.
    assert_eq!(
        (t.stats().processed_records, t.stats().processed_events),
        (3, 3)
    );
    let processed = drain(&mut rx)
        .iter()
        .filter(|e| matches!(e, TrackerEvent::Processed(_)))
        .count();
    assert_eq!(processed, 2);
    assert_eq!(
        sink.batches.lock().unwrap().len(),
        2,
        "batches of at most 2 records"
    );
    assert_eq!(
        t.track_event("x", "a", json!(null)).await,
        Err(TrackError::ShutDown)
    );

    let failing = Sink::default();
    let t = failing
        .builder(&Store::Memory, u32::MAX)
        .limit(1)
        .max_retries(1)
        .build()
        .unwrap();
    t.track_event_at("x", "a", json!(null), 0).await.unwrap();
    t.track_event_at("x", "a", json!("persist me"), 0)
        .await
        .unwrap();
    let report = t.shutdown().await;
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(report.undelivered[0].details, vec![json!("persist me")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processing_loop_delivers_on_its_own() {
    let sink = Sink::default();
    let s = sink.clone();
    let t = EventTracker::builder()
        .limit(1)
        .defer_interval(Duration::from_millis(20))
        .processing_interval(Duration::from_millis(10))
        .processor(move |batch| {
            let s = s.clone();
            async move {
                s.batches.lock().unwrap().push(batch);
                Ok::<_, String>(())
            }
        })
        .build()
        .unwrap();
    t.track_event("a", "1", json!(null)).await.unwrap();
    t.track_event("a", "1", json!("later")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.delivered().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.delivered()[0].details, vec![json!("later")]);
}

async fn record_reads_the_counts_the_waiting_batch_and_the_state_from_the_store(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 1)
        .limit(1)
        .defer_interval(Duration::from_millis(100))
        .max_retries(1)
        .retry_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(t.record("a", "1").await.unwrap(), None);
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    let r = t.record("a", "1").await.unwrap().unwrap();
    assert_eq!(
        (r.view.total, r.view.deferred, r.state()),
        (1, 0, RecordState::Idle)
    );
    t.track_event_at("a", "1", json!(1), 10 * MS).await.unwrap();
    t.track_event_at("a", "1", json!(null), 20 * MS)
        .await
        .unwrap();
    let r = t.record("a", "1").await.unwrap().unwrap();
    assert_eq!(r.state(), RecordState::Deferred);
    assert_eq!(
        (r.view.total, r.view.deferred, r.view.scheduled_at_ms()),
        (3, 2, Some(110))
    );
    assert_eq!((r.view.first_seen_us, r.view.last_seen_us), (0, 20 * MS));
    assert_eq!((r.details, r.details_dropped, r.in_flight), (1, 0, 0));
    // The first call fails: the batch is in flight, waiting for its retry.
    t.tick_at(110 * MS).await;
    let r = t.record("a", "1").await.unwrap().unwrap();
    assert_eq!(
        (r.state(), r.in_flight, r.view.deferred),
        (RecordState::Processing, 1, 0)
    );
    t.tick_at(120 * MS).await;
    assert_eq!(sink.delivered().len(), 1);
    let r = t.record("a", "1").await.unwrap().unwrap();
    assert_eq!(
        (r.state(), r.in_flight, r.view.total),
        (RecordState::Idle, 0, 3)
    );
    assert_eq!(t.record("a", "other").await.unwrap(), None);
}

async fn reset_forgets_an_idle_record_and_its_next_event_is_immediate(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .limit(1)
        .defer_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(!t.reset_record("a", "1").await.unwrap());
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    assert!(t.reset_record_at("a", "1", MS).await.unwrap());
    assert_eq!(t.record("a", "1").await.unwrap(), None);
    t.tick_at(MS).await; // (Redis: reads the record count)
    assert_eq!(t.stats().records, 0);
    let o = t
        .track_event_at("a", "1", json!(null), 2 * MS)
        .await
        .unwrap();
    assert_eq!((kind(&o), o.record().total), ("immediate", 1));
    assert_eq!(o.record().first_seen_us, 2 * MS);
    t.tick_at(1_000 * MS).await;
    assert!(sink.delivered().is_empty());
}

async fn reset_hands_the_waiting_batch_to_the_processor_and_the_next_event_is_immediate(
    store: &Store,
) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .limit(1)
        .defer_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    for (i, at) in [0, 1, 2].into_iter().enumerate() {
        t.track_event_at("a", "1", json!({"n": i}), at * MS)
            .await
            .unwrap();
    }
    assert!(t.reset_record_at("a", "1", 10 * MS).await.unwrap());
    let r = t.record("a", "1").await.unwrap().unwrap();
    assert_eq!(
        (r.state(), r.view.total, r.view.deferred, r.in_flight),
        (RecordState::Processing, 0, 0, 1)
    );
    assert_eq!(t.stats().retrying, 1);
    let o = t
        .track_event_at("a", "1", json!(null), 11 * MS)
        .await
        .unwrap();
    assert_eq!((kind(&o), o.record().total), ("immediate", 1));
    let o = t
        .track_event_at("a", "1", json!({"n": 9}), 12 * MS)
        .await
        .unwrap();
    assert_eq!(
        (kind(&o), o.record().scheduled_at_ms()),
        ("deferred", Some(1_012))
    );
    // The next tick delivers the batch the reset took out, not the new one.
    t.tick_at(13 * MS).await;
    let d = sink.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].count, d[0].first_seen_us, d[0].last_seen_us),
        (2, MS, 2 * MS)
    );
    assert_eq!(d[0].details, vec![json!({"n": 1}), json!({"n": 2})]);
    t.tick_at(1_012 * MS).await;
    let d = sink.delivered();
    assert_eq!(d.len(), 2);
    assert_eq!((d[1].count, d[1].details.len()), (1, 1));
    assert_eq!(t.stats().processed_events, 3);
}

async fn a_reset_batch_whose_delivery_fails_waits_again_and_is_not_lost(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 1)
        .limit(1)
        .defer_interval(Duration::from_millis(100))
        .max_retries(0)
        .build()
        .unwrap();
    t.track_event_at("a", "1", json!(null), 0).await.unwrap();
    t.track_event_at("a", "1", json!(1), MS).await.unwrap();
    assert!(t.reset_record_at("a", "1", 5 * MS).await.unwrap());
    t.tick_at(5 * MS).await; // the only attempt fails: deferred again, due at 105 ms
    let r = t.record("a", "1").await.unwrap().unwrap();
    assert_eq!(r.state(), RecordState::Deferred);
    assert_eq!(
        (r.view.deferred, r.view.scheduled_at_ms(), r.failed_rounds),
        (1, Some(105), 1)
    );
    t.tick_at(105 * MS).await;
    let d = sink.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].count, d[0].failed_rounds, d[0].details.len()),
        (1, 1, 1)
    );
}

async fn waiting_and_due_records_list_the_due_index_earliest_first_within_the_limit(store: &Store) {
    let sink = Sink::default();
    let t = sink
        .builder(store, 0)
        .limit(1)
        .defer_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(t.waiting_records(10).await.unwrap().is_empty());
    // Batches of d (due 100 ms), b (105 ms), a (110 ms), c (130 ms); e has none.
    for id in ["a", "b", "c", "d", "e"] {
        t.track_event_at("k", id, json!(null), 0).await.unwrap();
    }
    for (id, at) in [("d", 0), ("b", 5), ("a", 10), ("a", 11), ("c", 30)] {
        t.track_event_at("k", id, json!({"at": at}), at * MS)
            .await
            .unwrap();
    }
    let ids = |v: Vec<tidegate::tracker::RecordSnapshot>| {
        v.into_iter()
            .map(|s| {
                (
                    s.view.id().to_string(),
                    s.view.scheduled_at_ms(),
                    s.view.deferred,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(t.waiting_records(10).await.unwrap()),
        [
            ("d".to_string(), Some(100), 1),
            ("b".to_string(), Some(105), 1),
            ("a".to_string(), Some(110), 2),
            ("c".to_string(), Some(130), 1),
        ]
    );
    assert_eq!(t.waiting_records(2).await.unwrap().len(), 2);
    let a = &t.waiting_records(3).await.unwrap()[2];
    assert_eq!((a.details, a.view.total, a.view.first_seen_us), (2, 3, 0));
    let due = ids(t.due_records_at(110 * MS, 10).await.unwrap());
    assert_eq!(due.len(), 3);
    assert_eq!(due[2].0, "a");
    assert_eq!(ids(t.due_records_at(104 * MS, 1).await.unwrap()).len(), 1);
    // Listing claims nothing: the tick still delivers all three.
    t.tick_at(110 * MS).await;
    assert_eq!(sink.delivered().len(), 3);
    assert_eq!(ids(t.waiting_records(10).await.unwrap()).len(), 1);
}
