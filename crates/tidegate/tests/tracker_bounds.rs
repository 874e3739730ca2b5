//! The in-memory tracker is bounded in bytes as well as in counts: per detail, per batch,
//! and by a memory budget for the whole tracker; what a bound leaves out is counted, and
//! the bytes of a delivered batch are given back.
#![cfg(feature = "tracker")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tidegate::ManualClock;
use tidegate::tracker::{
    DEFAULT_MAX_KEYS, DeliveredRecord, Details, EventTracker, IgnoreReason, TrackOutcome,
    TrackerBuilder,
};

const MS: u64 = 1_000;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<DeliveredRecord>>>);

impl Sink {
    /// limit 1 (the second event of a record defers), 100 ms deferral, manual ticks.
    fn builder(&self) -> TrackerBuilder {
        let sink = self.clone();
        EventTracker::builder()
            .manual_ticks()
            .clock(ManualClock::new(0))
            .limit(1)
            .defer_interval(Duration::from_millis(100))
            .processor(move |batch| {
                let sink = sink.clone();
                async move {
                    sink.0.lock().unwrap().extend(batch);
                    Ok::<_, String>(())
                }
            })
    }

    fn delivered(&self) -> Vec<DeliveredRecord> {
        self.0.lock().unwrap().clone()
    }
}

/// A JSON array of `n` small numbers: about `2n` bytes of text.
fn array(n: usize) -> serde_json::Value {
    json!(vec![1; n])
}

/// A detail over `max_detail_bytes` is left out of its batch and counted in the record's
/// `details_dropped`; the event itself still counts.
async fn oversized_detail_is_counted(sink: &Sink, builder: TrackerBuilder) {
    let t = builder.max_detail_bytes(1_000).build().unwrap();
    t.track_event_at("c", "i", json!(null), 0).await.unwrap();
    let o = t.track_event_at("c", "i", array(600), 0).await.unwrap();
    assert_eq!((o.kind(), o.record().deferred), ("deferred", 1));
    t.track_event_at("c", "i", array(10), 0).await.unwrap();
    t.tick_at(100 * MS).await;
    let d = sink.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].count, d[0].details.clone(), d[0].details_dropped),
        (2, vec![Details::from(array(10))], 1)
    );
    assert_eq!(t.stats().details_dropped_by_size, 1);
}

#[tokio::test]
async fn a_detail_over_max_detail_bytes_is_left_out_and_counted_but_the_event_counts() {
    let sink = Sink::default();
    oversized_detail_is_counted(&sink, sink.builder()).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn on_redis_a_detail_over_max_detail_bytes_is_counted_in_the_record_as_in_memory() {
    let server = redis_test_server::RedisServer::start();
    let store = tidegate::store::redis::RedisStore::connect(&[server.url()], Default::default())
        .await
        .unwrap();
    let sink = Sink::default();
    let builder = sink
        .builder()
        .store(tidegate::tracker::TrackerStore::redis(store, "bounds"));
    oversized_detail_is_counted(&sink, builder).await;
}

#[tokio::test]
async fn a_batch_keeps_details_up_to_max_batch_bytes_and_counts_the_rest() {
    let sink = Sink::default();
    let t = sink.builder().max_batch_bytes(10_000).build().unwrap();
    t.track_event_at("c", "i", json!(null), 0).await.unwrap();
    for _ in 0..20 {
        // 2 001 bytes of text each: four fit in 10 000 bytes with their overhead.
        t.track_event_at("c", "i", array(1_000), 0).await.unwrap();
    }
    t.tick_at(100 * MS).await;
    let d = sink.delivered();
    assert_eq!(
        (d[0].count, d[0].details.len(), d[0].details_dropped),
        (20, 4, 16)
    );
    assert_eq!(t.stats().details_dropped_by_size, 16);
}

#[tokio::test]
async fn at_the_memory_budget_new_records_are_ignored_and_existing_ones_still_count() {
    let sink = Sink::default();
    let t = sink.builder().max_memory_bytes(64 * 1024).build().unwrap();
    let mut created = 0;
    let ignored = loop {
        let o = t
            .track_event_at("c", &format!("id-{created}"), json!(null), 0)
            .await
            .unwrap();
        if let TrackOutcome::Ignored { reason, .. } = o {
            break reason;
        }
        created += 1;
        assert!(created < 10_000, "the budget never bound");
    };
    assert_eq!(ignored, IgnoreReason::MemoryLimitReached);
    assert!(created > 50, "only {created} records fit in 64 KiB");
    let s = t.stats();
    assert_eq!((s.records, s.ignored), (created, 1));
    assert!(s.memory_bytes <= 64 * 1024, "{s:?}");
    // An existing record still counts and defers its events; its details do not fit.
    let o = t
        .track_event_at("c", "id-0", json!({"big": "x".repeat(500)}), 0)
        .await
        .unwrap();
    assert_eq!((o.kind(), o.record().total), ("deferred", 2));
    t.tick_at(100 * MS).await;
    let d = sink.delivered();
    assert_eq!(
        (d[0].count, d[0].details.len(), d[0].details_dropped),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn a_delivered_batch_gives_its_bytes_back_and_purged_records_give_back_the_rest() {
    let sink = Sink::default();
    let t = sink
        .builder()
        .expire_time(Duration::from_millis(500))
        .build()
        .unwrap();
    for id in 0..50 {
        let id = id.to_string();
        t.track_event_at("c", &id, json!(null), 0).await.unwrap();
        for _ in 0..10 {
            t.track_event_at("c", &id, array(1_000), 0).await.unwrap();
        }
    }
    let loaded = t.stats().memory_bytes;
    assert!(loaded > 50 * 10 * 2_000, "{loaded}");
    t.tick_at(100 * MS).await;
    assert_eq!(sink.delivered().len(), 50);
    let after_delivery = t.stats().memory_bytes;
    assert!(
        after_delivery < 50 * 1_000,
        "{after_delivery} bytes still charged for 50 records without details"
    );
    for _ in 0..1_000 {
        t.tick_at(1_000 * MS).await;
        if t.stats().records == 0 {
            break;
        }
    }
    assert_eq!((t.stats().records, t.stats().memory_bytes), (0, 0));
}

#[tokio::test]
async fn a_failed_round_keeps_its_details_charged_until_delivery() {
    let calls = Arc::new(Mutex::new(0));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (c, d) = (Arc::clone(&calls), Arc::clone(&delivered));
    let t = EventTracker::builder()
        .manual_ticks()
        .clock(ManualClock::new(0))
        .limit(1)
        .max_retries(0)
        .defer_interval(Duration::from_millis(100))
        .processor(move |batch: Vec<DeliveredRecord>| {
            let (c, d) = (Arc::clone(&c), Arc::clone(&d));
            async move {
                *c.lock().unwrap() += 1;
                if *c.lock().unwrap() == 1 {
                    return Err("first call fails".to_string());
                }
                d.lock().unwrap().extend(batch);
                Ok(())
            }
        })
        .build()
        .unwrap();
    t.track_event_at("c", "i", json!(null), 0).await.unwrap();
    t.track_event_at("c", "i", array(1_000), 0).await.unwrap();
    let charged = t.stats().memory_bytes;
    t.tick_at(100 * MS).await; // fails: deferred again, details still held
    assert_eq!(t.stats().memory_bytes, charged);
    t.tick_at(200 * MS).await;
    let d = delivered.lock().unwrap().clone();
    assert_eq!((d.len(), d[0].details.len()), (1, 1));
    assert!(t.stats().memory_bytes < charged - 2_000);
}

#[tokio::test]
async fn max_keys_has_a_bounded_default_and_zero_is_an_error() {
    let sink = Sink::default();
    let e = sink.builder().max_keys(0).build().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("invalid max_keys: must be at least 1 (the default is {DEFAULT_MAX_KEYS})")
    );
    let e = sink.builder().max_memory_bytes(1_000).build().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid max_memory_bytes: must be at least 65536 (64 KiB)"
    );
    let t = sink.builder().build().unwrap();
    for id in 0..DEFAULT_MAX_KEYS {
        let o = t
            .track_event_at("c", &id.to_string(), json!(null), 0)
            .await
            .unwrap();
        assert_eq!(o.kind(), "immediate");
    }
    let o = t
        .track_event_at("c", "one more", json!(null), 0)
        .await
        .unwrap();
    assert!(matches!(
        o,
        TrackOutcome::Ignored {
            reason: IgnoreReason::KeyLimitReached,
            ..
        }
    ));
}
