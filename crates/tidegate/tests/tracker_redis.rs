//! The event tracker on Redis, against real redis-server processes: the same outcomes and
//! deliveries as the memory store on random traffic (virtual clock), instances sharing one
//! tracker, a batch taken over after its claimer died, purge, and a bounded outage.
#![cfg(all(feature = "redis", feature = "tracker"))]

mod support;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::redis::{runtime, unique};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use redis_test_server::{RedisCluster, RedisServer};
use serde_json::{Value, json};
use tidegate::ManualClock;
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate::tracker::{
    ConfigPatch, DeadLetter, DeliveredRecord, Details, EventTracker, Strategy as TrackStrategy,
    TrackError, TrackOutcome, TrackerBuilder, TrackerEvent, TrackerStore,
};

const MS: u64 = 1_000;

async fn connect(urls: &[String]) -> RedisStore {
    RedisStore::connect(urls, RedisOptions::default())
        .await
        .unwrap()
}

/// One run's settings, shared by the memory and the Redis tracker.
#[derive(Debug, Clone)]
struct Scenario {
    strategy: TrackStrategy,
    limit: u64,
    defer_ms: u64,
    max_keys: usize,
    max_details: usize,
    max_batch: usize,
    fail_first: u32,
    max_retries: u32,
    dead_letter: bool,
    /// `(ms since the previous event, key, with details, patch)`: a patch 1..=3 sets the
    /// limit, 4 switches to a token bucket (2 tokens, 0.1/s), 5 to a 300 ms sliding window,
    /// 6 resets the record instead.
    events: Vec<(u64, u8, bool, Option<u64>)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let strategy = prop_oneof![
        Just(TrackStrategy::SimpleCounter),
        (1u64..=3, prop::sample::select(vec![0.5, 2.0, 5.0, 12.5])).prop_map(|(size, rate)| {
            TrackStrategy::TokenBucket {
                bucket_size: size,
                refill_rate: rate,
            }
        }),
        // Buckets of 10^12 tokens refilling at a rate whose interval does not reduce:
        // the tolerance's product (10^21) is past 2^53, exact through muldiv in Lua.
        prop::sample::select(vec![1_000_000_000_000u64, 999_999_999_989]).prop_map(|size| {
            TrackStrategy::TokenBucket {
                bucket_size: size,
                refill_rate: 999_999.999,
            }
        }),
        prop::sample::select(vec![150u64, 400, 1_000]).prop_map(|ms| {
            TrackStrategy::SlidingWindow {
                window_size: Duration::from_millis(ms),
            }
        }),
    ];
    (
        strategy,
        1u64..=3,
        prop::sample::select(vec![50u64, 120, 300, 1_000]),
        prop::sample::select(vec![1_000usize, 3]),
        0usize..=2,
        1usize..=3,
        0u32..=4,
        0u32..=2,
        any::<bool>(),
        prop::collection::vec(
            (
                prop::sample::select(vec![0u64, 0, 1, 7, 40, 100, 250, 600]),
                0u8..5,
                any::<bool>(),
                prop::option::weighted(0.08, 1u64..=6),
            ),
            1..50,
        ),
    )
        .prop_map(
            |(
                strategy,
                limit,
                defer_ms,
                max_keys,
                max_details,
                max_batch,
                fail_first,
                max_retries,
                dead_letter,
                events,
            )| Scenario {
                strategy,
                limit,
                defer_ms,
                max_keys,
                max_details,
                max_batch,
                fail_first,
                max_retries,
                dead_letter,
                events,
            },
        )
}

/// Everything observable of a run, one line per outcome, delivery and lifecycle event.
async fn trace(s: &Scenario, store: TrackerStore) -> Vec<String> {
    let calls = Arc::new(AtomicU32::new(0));
    let clock = ManualClock::new(0);
    let fail_first = s.fail_first;
    let c = Arc::clone(&calls);
    let mut builder = EventTracker::builder()
        .manual_ticks()
        .clock(clock.clone())
        .store(store)
        .strategy(s.strategy)
        .limit(s.limit)
        .defer_interval(Duration::from_millis(s.defer_ms))
        .expire_time(Duration::from_secs(3_600))
        .max_keys(s.max_keys)
        .max_details(s.max_details)
        .max_batch_size(s.max_batch)
        .max_retries(s.max_retries)
        .retry_delay(Duration::from_millis(30))
        .dead_letter_after(2)
        .processing_interval(Duration::from_millis(100))
        .lease(Duration::from_secs(600))
        .processor(move |_batch| {
            let call = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if call <= fail_first {
                    Err(format!("call {call} fails"))
                } else {
                    Ok(())
                }
            }
        });
    if s.dead_letter {
        builder = builder.dead_letter(|_letter: DeadLetter| async { Ok::<_, String>(()) });
    }
    let tracker = builder.build().unwrap();
    let mut rx = tracker.subscribe();
    let mut out = Vec::new();
    let interval = 100 * MS;
    let mut next_tick = 0;
    let mut now = 0;
    async fn tick_to(
        tracker: &EventTracker,
        clock: &ManualClock,
        next_tick: &mut u64,
        until: u64,
        interval: u64,
    ) {
        while *next_tick <= until {
            clock.set_micros(*next_tick);
            tracker.tick_at(*next_tick).await;
            *next_tick += interval;
        }
    }
    for (i, &(dt, key, with_details, patch)) in s.events.iter().enumerate() {
        now += dt * MS;
        tick_to(&tracker, &clock, &mut next_tick, now, interval).await;
        collect(&mut rx, &mut out);
        clock.set_micros(now);
        let id = format!("k{key}");
        if patch == Some(6) {
            let reset = tracker.reset_record_at("cat", &id, now).await;
            out.push(format!("reset {id} {reset:?}"));
        } else if let Some(p) = patch {
            let patch = match p {
                4 => ConfigPatch {
                    strategy: Some(TrackStrategy::TokenBucket {
                        bucket_size: 2,
                        refill_rate: 0.1,
                    }),
                    ..ConfigPatch::default()
                },
                5 => ConfigPatch {
                    strategy: Some(TrackStrategy::SlidingWindow {
                        window_size: Duration::from_millis(300),
                    }),
                    defer_interval: Some(Duration::from_millis(70)),
                    ..ConfigPatch::default()
                },
                limit => ConfigPatch {
                    limit: Some(limit),
                    ..ConfigPatch::default()
                },
            };
            let changed = tracker.update_config("cat", &id, patch).await;
            out.push(format!("patch {id} {changed:?}"));
        }
        let details = if with_details {
            json!({"i": i, "note": "x"})
        } else {
            Value::Null
        };
        let o = tracker
            .track_event_at("cat", &id, details, now)
            .await
            .unwrap();
        let r = o.record();
        out.push(format!(
            "{now} {id} {} total={} deferred={} at={:?} first={} last={}",
            o.kind(),
            r.total,
            r.deferred,
            r.scheduled_at_us,
            r.first_seen_us,
            r.last_seen_us
        ));
        let read = tracker.record("cat", &id).await.unwrap();
        out.push(format!("read {id} {read:?}"));
        collect(&mut rx, &mut out);
    }
    let mut guard = 0;
    while let Some(due) = tracker.next_due_micros().await.unwrap() {
        let t = due.max(next_tick).div_ceil(interval) * interval;
        tick_to(&tracker, &clock, &mut next_tick, t, interval).await;
        collect(&mut rx, &mut out);
        guard += 1;
        assert!(guard < 10_000, "the tracker never drains");
    }
    let st = tracker.stats();
    out.push(format!(
        "stats immediate={} deferred={} ignored={} processed={}/{} failed_rounds={} dead={}",
        st.immediate,
        st.deferred,
        st.ignored,
        st.processed_records,
        st.processed_events,
        st.failed_rounds,
        st.dead_lettered
    ));
    tracker.clear().await.unwrap();
    out
}

fn records(rs: &[DeliveredRecord]) -> String {
    rs.iter()
        .map(|r| {
            format!(
                "{}/{} n={} {}..{} details={} dropped={} rounds={}",
                r.category,
                r.id,
                r.count,
                r.first_seen_us,
                r.last_seen_us,
                Value::Array(r.details.iter().map(|d| d.to_value()).collect()),
                r.details_dropped,
                r.failed_rounds
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn collect(rx: &mut tokio::sync::broadcast::Receiver<TrackerEvent>, out: &mut Vec<String>) {
    while let Ok(e) = rx.try_recv() {
        match e {
            TrackerEvent::Processed(rs) => out.push(format!("processed [{}]", records(&rs))),
            TrackerEvent::Retry {
                attempt,
                delay,
                events,
                ..
            } => out.push(format!(
                "retry {attempt} after {delay:?} [{}]",
                records(&events)
            )),
            TrackerEvent::ProcessFailed {
                error,
                events,
                attempts,
            } => out.push(format!("failed {error} x{attempts} [{}]", records(&events))),
            TrackerEvent::ConfigUpdated(v) => out.push(format!("config {} {}", v.id(), v.total)),
            TrackerEvent::Error(e) => out.push(format!("error {e}")),
            TrackerEvent::Immediate(_)
            | TrackerEvent::Deferred(_)
            | TrackerEvent::Ignored { .. } => {}
            other => out.push(format!("{other:?}")),
        }
    }
}

fn differential(urls: Vec<String>, cases: u32) {
    let rt = runtime();
    let store = rt.block_on(connect(&urls));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&scenario(), |s| {
            let memory = rt.block_on(trace(&s, TrackerStore::Memory));
            let shared = rt.block_on(trace(
                &s,
                TrackerStore::redis(store.clone(), unique("diff")),
            ));
            for (i, (m, r)) in memory.iter().zip(&shared).enumerate() {
                prop_assert_eq!(m, r, "line {} differs", i);
            }
            prop_assert_eq!(memory.len(), shared.len());
            Ok(())
        })
        .unwrap();
}

#[test]
fn redis_tracker_matches_memory_on_random_traffic() {
    let server = RedisServer::start();
    differential(vec![server.url()], 64);
}

#[test]
fn redis_tracker_matches_memory_on_a_cluster() {
    let cluster = RedisCluster::start();
    differential(cluster.urls(), 12);
}

/// Collects batches per instance.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<(usize, DeliveredRecord)>>>);

impl Deliveries {
    fn builder(&self, instance: usize, store: &RedisStore, name: &str) -> TrackerBuilder {
        let d = self.clone();
        EventTracker::builder()
            .manual_ticks()
            .store(TrackerStore::redis(store.clone(), name))
            .limit(1)
            .defer_interval(Duration::from_millis(100))
            .processing_interval(Duration::from_millis(50))
            .lease(Duration::from_secs(1))
            .processor(move |batch| {
                let d = d.clone();
                async move {
                    d.0.lock()
                        .unwrap()
                        .extend(batch.into_iter().map(|r| (instance, r)));
                    Ok::<_, String>(())
                }
            })
    }

    fn count(&self) -> u64 {
        self.0.lock().unwrap().iter().map(|(_, r)| r.count).sum()
    }
}

#[test]
fn instances_sharing_a_tracker_count_together_and_deliver_each_batch_once() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let name = unique("shared");
        let got = Deliveries::default();
        let a = got.builder(0, &store, &name).build().unwrap();
        let b = got.builder(1, &store, &name).build().unwrap();
        let mut deferred = 0;
        for i in 0..200u64 {
            let t = if i % 2 == 0 { &a } else { &b };
            let id = format!("u{}", i % 10);
            match t
                .track_event_at("login", &id, json!(i), i * 10)
                .await
                .unwrap()
            {
                TrackOutcome::Immediate(r) => assert_eq!(r.total, 1, "one immediate per record"),
                TrackOutcome::Deferred(_) => deferred += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(deferred, 190, "the limit of 1 is shared by both instances");
        // Both tick at the same instants, racing for the same due batches.
        for t in (0..=5_000 * MS).step_by(50 * MS as usize) {
            let (x, y) = tokio::join!(a.tick_at(t), b.tick_at(t));
            let _ = (x, y);
        }
        assert_eq!(
            got.count(),
            190,
            "every deferred event delivered exactly once"
        );
        let per_record: std::collections::BTreeMap<String, u64> = got
            .0
            .lock()
            .unwrap()
            .iter()
            .fold(Default::default(), |mut m, (_, r)| {
                *m.entry(r.id.clone()).or_default() += r.count;
                m
            });
        assert!(per_record.values().all(|&n| n == 19), "{per_record:?}");
        assert_eq!(a.next_due_micros().await.unwrap(), None);
        a.clear().await.unwrap();
    });
}

#[test]
fn a_batch_whose_claimer_died_is_delivered_by_another_instance_after_the_lease() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let name = unique("lease");
        let got = Deliveries::default();
        let entered = Arc::new(tokio::sync::Notify::new());
        let e = Arc::clone(&entered);
        // Instance 0 claims and then hangs in its processor, as if its process died.
        let dying = EventTracker::builder()
            .manual_ticks()
            .store(TrackerStore::redis(store.clone(), &name))
            .limit(1)
            .defer_interval(Duration::from_millis(100))
            .processing_interval(Duration::from_millis(50))
            .lease(Duration::from_secs(1))
            .processor(move |_batch| {
                let e = Arc::clone(&e);
                async move {
                    e.notify_one();
                    std::future::pending::<Result<(), String>>().await
                }
            })
            .build()
            .unwrap();
        let survivor = got.builder(1, &store, &name).build().unwrap();
        for i in 0..5u64 {
            dying
                .track_event_at("error", "E1", json!({"n": i}), i * MS)
                .await
                .unwrap();
        }
        let d = dying.clone();
        let hung = tokio::spawn(async move { d.tick_at(200 * MS).await });
        entered.notified().await;
        hung.abort();
        drop(dying);
        // Before the lease expires the survivor finds nothing to do...
        survivor.tick_at(900 * MS).await;
        assert_eq!(got.count(), 0, "the batch is leased to the dead instance");
        // ...after it, the survivor takes the batch over and delivers it.
        survivor.tick_at(1_300 * MS).await;
        let delivered = got.0.lock().unwrap().clone();
        assert_eq!(delivered.len(), 1);
        let r = &delivered[0].1;
        assert_eq!((r.count, r.details.len()), (4, 4), "{r:?}");
        assert_eq!(r.details[0], json!({"n": 1}));
        assert_eq!(survivor.stats().taken_over, 1);
        // Settled: the record counts from zero again, nothing is left.
        let o = survivor
            .track_event_at("error", "E1", Value::Null, 1_400 * MS)
            .await
            .unwrap();
        assert_eq!(o.kind(), "immediate");
        assert_eq!(survivor.next_due_micros().await.unwrap(), None);
        survivor.clear().await.unwrap();
    });
}

#[test]
fn idle_records_are_purged_but_never_one_with_a_waiting_batch() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let got = Deliveries::default();
        let t = got
            .builder(0, &store, &unique("purge"))
            .defer_interval(Duration::from_secs(10))
            .expire_time(Duration::from_secs(1))
            .max_keys(2)
            .build()
            .unwrap();
        t.track_event_at("a", "idle", Value::Null, 0).await.unwrap();
        t.track_event_at("a", "busy", Value::Null, 0).await.unwrap();
        t.track_event_at("a", "busy", json!(1), 0).await.unwrap();
        let third = t
            .track_event_at("a", "third", Value::Null, 0)
            .await
            .unwrap();
        assert_eq!(third.kind(), "ignored", "max_keys = 2");
        t.tick_at(5_000 * MS).await;
        assert_eq!(
            t.stats().records,
            1,
            "the idle record went, the deferred one stayed"
        );
        assert_eq!(
            t.track_event_at("a", "third", Value::Null, 5_000 * MS)
                .await
                .unwrap()
                .kind(),
            "immediate",
            "purging made room"
        );
        t.tick_at(10_000 * MS).await;
        assert_eq!(
            got.count(),
            1,
            "expiry shorter than the deferral still delivers"
        );
        t.clear().await.unwrap();
    });
}

#[test]
fn redis_outage_fails_track_event_within_a_bounded_time_and_recovers() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let got = Deliveries::default();
        let t = got.builder(0, &store, &unique("outage")).build().unwrap();
        t.track_event_at("a", "b", Value::Null, 0).await.unwrap();
        server.pause();
        let started = Instant::now();
        let e = t
            .track_event_at("a", "b", Value::Null, MS)
            .await
            .unwrap_err();
        let took = started.elapsed();
        server.resume();
        assert!(matches!(e, TrackError::Store(_)), "{e:?}");
        assert!(
            took < Duration::from_secs(5),
            "bounded by the 2 s call timeout: {took:?}"
        );
        let o = t
            .track_event_at("a", "b", Value::Null, 2 * MS)
            .await
            .unwrap();
        assert!(o.record().total >= 2, "{o:?}");
        t.clear().await.unwrap();
    });
}

#[test]
fn an_invalid_lease_or_name_is_rejected_with_the_field() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let short = EventTracker::builder()
            .manual_ticks()
            .store(TrackerStore::redis(store.clone(), "x"))
            .processing_interval(Duration::from_secs(1))
            .lease(Duration::from_millis(500))
            .processor(|_| async { Ok::<_, String>(()) })
            .build()
            .unwrap_err();
        assert!(
            matches!(&short, TrackError::Invalid { field, .. } if field == "lease"),
            "{short:?}"
        );
        let empty = EventTracker::builder()
            .manual_ticks()
            .store(TrackerStore::redis(store, ""))
            .processor(|_| async { Ok::<_, String>(()) })
            .build()
            .unwrap_err();
        assert!(
            matches!(&empty, TrackError::Invalid { field, .. } if field == "store.name"),
            "{empty:?}"
        );
    });
}

#[test]
fn concurrent_producers_on_one_key_lose_no_count_through_batched_calls() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let got = Deliveries::default();
        let t = got
            .builder(0, &store, &unique("concurrent"))
            .limit(10)
            .max_details(5)
            .build()
            .unwrap();
        let immediate = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|p| {
                let (t, immediate) = (t.clone(), Arc::clone(&immediate));
                tokio::spawn(async move {
                    for i in 0..50u64 {
                        let o = t
                            .track_event_at("api", "hot", json!([p, i]), 10 * MS)
                            .await
                            .unwrap();
                        if o.kind() == "immediate" {
                            immediate.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(immediate.load(Ordering::Relaxed), 10);
        t.tick_at(10_000 * MS).await;
        let delivered = got.0.lock().unwrap().clone();
        assert_eq!(delivered.len(), 1);
        let r = &delivered[0].1;
        assert_eq!(r.count, 64 * 50 - 10);
        assert_eq!((r.details.len(), r.details_dropped), (5, 64 * 50 - 15));
        t.clear().await.unwrap();
    });
}

/// Found by the differential test: a rate patched after a denial. The memory gate used
/// to keep the refill a denial computed (at the old rate); both now keep state only
/// when an event is admitted.
#[test]
fn a_rate_patched_after_a_denial_gives_the_same_due_time_in_memory_and_redis() {
    let server = RedisServer::start();
    let rt = runtime();
    let store = rt.block_on(connect(&[server.url()]));
    let zero = |dt: u64, key: u8, patch: Option<u64>| (dt, key, false, patch);
    let s = Scenario {
        strategy: TrackStrategy::TokenBucket {
            bucket_size: 1,
            refill_rate: 0.5,
        },
        limit: 1,
        defer_ms: 50,
        max_keys: 1_000,
        max_details: 0,
        max_batch: 1,
        fail_first: 0,
        max_retries: 0,
        dead_letter: false,
        events: vec![
            zero(0, 0, None),
            zero(100, 0, None),
            zero(100, 1, None),
            zero(600, 1, None),
            zero(1_450, 1, Some(4)),
        ],
    };
    let memory = rt.block_on(trace(&s, TrackerStore::Memory));
    let shared = rt.block_on(trace(&s, TrackerStore::redis(store, unique("patch"))));
    assert_eq!(memory, shared);
}

#[test]
fn concurrent_update_config_calls_on_one_record_both_take_effect() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let name = unique("cas");
        let got = Deliveries::default();
        // Two instances, default limit 5, deferral 100 ms.
        let a = got.builder(0, &store, &name).limit(5).build().unwrap();
        let b = got.builder(1, &store, &name).limit(5).build().unwrap();
        for k in 0..30u64 {
            let id = format!("r{k}");
            let t0 = k * 10_000 * MS;
            a.track_event_at("c", &id, Value::Null, t0).await.unwrap();
            let limit = ConfigPatch {
                limit: Some(1),
                ..ConfigPatch::default()
            };
            let defer = ConfigPatch {
                defer_interval: Some(Duration::from_millis(700)),
                ..ConfigPatch::default()
            };
            let (x, y) = tokio::join!(
                a.update_config("c", &id, limit),
                b.update_config("c", &id, defer)
            );
            assert_eq!((x.unwrap(), y.unwrap()), (true, true));
            // Limit 1 (one event already admitted) and a 700 ms deferral: both kept.
            let o = b
                .track_event_at("c", &id, Value::Null, t0 + MS)
                .await
                .unwrap();
            assert_eq!(o.kind(), "deferred", "{id}: the limit patch was lost");
            assert_eq!(
                o.record().scheduled_at_us,
                Some(t0 + MS + 700 * MS),
                "{id}: the deferral patch was lost"
            );
        }
        a.clear().await.unwrap();
    });
}

#[test]
fn an_instance_reads_lists_and_resets_records_another_instance_tracked() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let name = unique("reads");
        let got = Deliveries::default();
        let a = got.builder(0, &store, &name).build().unwrap();
        let b = got.builder(1, &store, &name).build().unwrap();
        for at in [0, 10, 20] {
            a.track_event_at("disk", "full", json!(at), at * MS)
                .await
                .unwrap();
        }
        let seen = b.record("disk", "full").await.unwrap().unwrap();
        assert_eq!(
            (
                seen.view.total,
                seen.view.deferred,
                seen.view.scheduled_at_ms()
            ),
            (3, 2, Some(110))
        );
        let listed = b.waiting_records(10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].view.id(), "full");
        assert!(b.due_records_at(109 * MS, 10).await.unwrap().is_empty());
        assert_eq!(b.due_records_at(110 * MS, 10).await.unwrap().len(), 1);
        // b resets it: b holds the batch, a's next event is immediate.
        assert!(b.reset_record_at("disk", "full", 30 * MS).await.unwrap());
        assert!(b.waiting_records(10).await.unwrap().is_empty());
        let o = a
            .track_event_at("disk", "full", json!(null), 31 * MS)
            .await
            .unwrap();
        assert!(
            matches!(o, TrackOutcome::Immediate(ref r) if r.total == 1),
            "{o:?}"
        );
        a.tick_at(40 * MS).await;
        assert_eq!(got.count(), 0, "the reset batch is b's to deliver");
        b.tick_at(40 * MS).await;
        let delivered = got.0.lock().unwrap().clone();
        assert_eq!(delivered.len(), 1);
        assert_eq!((delivered[0].0, delivered[0].1.count), (1, 2));
        let after = a.record("disk", "full").await.unwrap().unwrap();
        assert_eq!((after.view.total, after.in_flight), (1, 0));
        assert!(a.reset_record("disk", "full").await.unwrap());
        assert_eq!(b.record("disk", "full").await.unwrap(), None);
        a.clear().await.unwrap();
    });
}

/// The events of one `track_events` call on both stores: in order, each answered as
/// `track_event` answers, an invalid one failing alone; through Redis, more events than
/// one script call takes are all counted once.
#[test]
fn track_events_answers_each_event_in_order_alike_in_memory_and_redis() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()]).await;
        let clock = ManualClock::new(10 * MS);
        let make = |s: TrackerStore| {
            EventTracker::builder()
                .manual_ticks()
                .clock(clock.clone())
                .store(s)
                .limit(3)
                .processor(|_| async { Ok::<_, String>(()) })
                .build()
                .unwrap()
        };
        let memory = make(TrackerStore::Memory);
        let redis = make(TrackerStore::redis(store.clone(), unique("many")));
        let d = Details::from(json!({"path": "/search"}));
        let mut events: Vec<(&str, &str, Details)> = Vec::new();
        for i in 0..5 {
            events.push(("api", "a", d.clone()));
            events.push(("api", if i == 2 { "" } else { "b" }, Details::null()));
        }
        let summary = |answers: Vec<Result<TrackOutcome, TrackError>>| -> Vec<String> {
            answers
                .into_iter()
                .map(|a| match a {
                    Ok(o) => format!("{} {} {}", o.kind(), o.record().id(), o.record().total),
                    Err(e) => format!("error {e}"),
                })
                .collect()
        };
        let (m, r) = (
            summary(memory.track_events(&events).await),
            summary(redis.track_events(&events).await),
        );
        assert_eq!(m, r);
        assert_eq!(m[0..2], ["immediate a 1", "immediate b 1"]);
        assert!(m[5].starts_with("error") && m[5].contains("id"), "{m:?}");
        assert_eq!(m[8..10], ["deferred a 5", "deferred b 4"]);

        // 150 events of one record: three script calls' worth, each counted once.
        let hot: Vec<(&str, &str, Details)> = (0..150).map(|_| ("api", "hot", d.clone())).collect();
        let answers = redis.track_events(&hot).await;
        let mut totals: Vec<u64> = answers
            .iter()
            .map(|a| a.as_ref().unwrap().record().total)
            .collect();
        let immediate = answers
            .iter()
            .filter(|a| a.as_ref().unwrap().kind() == "immediate")
            .count();
        totals.sort_unstable();
        assert_eq!(totals, (1..=150).collect::<Vec<u64>>());
        assert_eq!(immediate, 3);
        redis.clear().await.unwrap();
    });
}
