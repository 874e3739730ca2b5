//! Redis failover with real processes: a primary and its replica watched by
//! `redis-server --sentinel` processes, and a Redis Cluster with one replica per
//! master. The primary (a master) is SIGKILLed: while the failover runs, decisions
//! follow the failure policy within the timeout; once a replica is promoted, the same
//! store decides on it without a restart. Each test prints the time from the kill to
//! the first decision answered by the new primary.
#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, Instant};
use support::redis::{runtime, unique};

use redis_test_server::{RedisCluster, RedisSentinel, SENTINEL_SERVICE};
use tidegate::PolicySet;
use tidegate::store::redis::{RedisLimiter, RedisOptions, RedisStore};
use tidegate::store::{FailurePolicy, LimitStore};

fn options() -> RedisOptions {
    RedisOptions::default()
        .with_timeout(Duration::from_millis(50))
        .with_connect_timeout(Duration::from_millis(500))
        .with_breaker_threshold(3)
        .with_breaker_cooldown(Duration::from_millis(200))
}

/// Every decision answers within the timeout (50 ms) plus scheduling slack on a
/// loaded machine.
const BOUND: Duration = Duration::from_millis(50 + 450);

/// A limit no test reaches: an admitted decision was answered by Redis, a denied one
/// by `fail_closed`.
fn generous(store: &RedisStore, name: &str) -> RedisLimiter {
    let policies: PolicySet = "fixed_window:1000000/1h".parse().unwrap();
    store
        .limiter(name, policies)
        .on_error(FailurePolicy::FailClosed)
        .build()
        .unwrap()
}

async fn timed(limiter: &RedisLimiter, key: &str) -> (bool, Duration) {
    let start = Instant::now();
    let d = limiter.acquire(key, 1, None).await.unwrap();
    (d.allowed, start.elapsed())
}

/// Decides every 20 ms from `killed` on until Redis answers again (or `limit`
/// passes): every call within [`BOUND`]; returns the time from the kill to the first
/// answered decision and how many were answered by the failure policy before it.
async fn until_answered(
    limiter: &RedisLimiter,
    key: &str,
    killed: Instant,
    limit: Duration,
) -> (Duration, u64) {
    let mut refused = 0;
    loop {
        let (allowed, took) = timed(limiter, key).await;
        assert!(took < BOUND, "a decision during the failover took {took:?}");
        if allowed {
            return (killed.elapsed(), refused);
        }
        refused += 1;
        assert!(
            killed.elapsed() < limit,
            "no decision answered by Redis {limit:?} after the kill ({refused} by fail_closed)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has_key(node: &redis_test_server::RedisServer, key: &str) -> bool {
    node.cli(&["EXISTS", key]) == "1"
}

#[test]
fn a_killed_sentinel_primary_fails_over_and_the_store_follows_the_promoted_replica() {
    let group = RedisSentinel::start(3);
    let rt = runtime();
    rt.block_on(async {
        let store = RedisStore::open(&[group.url()], options()).await.unwrap();
        let name = unique("sentinel");
        let limiter = generous(&store, &name);
        let key = format!("tidegate:{name}:{{=k}}:0:fixed_window");
        for _ in 0..5 {
            assert!(timed(&limiter, "k").await.0, "the primary decides");
        }
        let old = group.primary();
        assert_eq!(store.sentinel_primary(), Some(old.addr()));
        assert!(
            has_key(old, &key),
            "the decision was written on the primary"
        );
        // Replicated before the kill (WAIT), so the key is on the replica too.
        assert_eq!(old.cli(&["WAIT", "1", "2000"]), "1");

        let killed = Instant::now();
        old.kill();
        let (figure, refused) =
            until_answered(&limiter, "k", killed, Duration::from_secs(30)).await;
        let new = group.primary();
        assert_ne!(new.port(), old.port(), "Sentinel promoted the replica");
        assert_eq!(store.sentinel_primary(), Some(new.addr()));
        assert!(
            has_key(new, &key),
            "decisions are written on the new primary"
        );
        let stats = store.stats();
        println!(
            "sentinel failover: SIGKILL of the primary -> first decision answered by the \
             promoted replica after {} ms ({refused} decisions by fail_closed meanwhile, \
             circuit opened {} times; down-after-milliseconds 1000)",
            figure.as_millis(),
            stats.circuit_opened
        );
        // The store keeps deciding on the new primary.
        for _ in 0..5 {
            assert!(timed(&limiter, "k").await.0);
        }
        assert!(store.sentinel_connections() >= 2);
    });
}

#[test]
fn a_primary_demoted_behind_the_stores_back_answers_readonly_and_the_store_asks_sentinel_again() {
    let group = RedisSentinel::start(1);
    let sentinel = &group.sentinels()[0];
    let rt = runtime();
    rt.block_on(async {
        let store = RedisStore::open(&[group.url()], options()).await.unwrap();
        let name = unique("readonly");
        let limiter = generous(&store, &name);
        assert!(timed(&limiter, "k").await.0);
        let (old, new) = (group.node(0), group.node(1));
        assert_eq!(store.sentinel_primary(), Some(old.addr()));

        // Demote the primary without Sentinel: it stops watching the service, the
        // replica becomes a primary and the old primary its replica. The store's
        // connection to the old primary stays open; only READONLY tells it.
        assert_eq!(
            sentinel.cli(&["SENTINEL", "REMOVE", SENTINEL_SERVICE]),
            "OK"
        );
        assert_eq!(new.cli(&["REPLICAOF", "NO", "ONE"]), "OK");
        assert_eq!(
            old.cli(&["REPLICAOF", "127.0.0.1", &new.port().to_string()]),
            "OK"
        );
        let (allowed, took) = timed(&limiter, "k").await;
        assert!(
            !allowed,
            "the demoted primary refuses the write: fail_closed"
        );
        assert!(took < BOUND, "took {took:?}");
        assert!(
            old.cli(&["INFO", "replication"]).contains("role:slave"),
            "the old primary is a replica now"
        );
        assert_eq!(
            store.sentinel_primary(),
            None,
            "READONLY made the store drop its connection to the demoted primary"
        );

        // Sentinel names the new primary: the store finds it by itself.
        let port = new.port().to_string();
        assert_eq!(
            sentinel.cli(&[
                "SENTINEL",
                "MONITOR",
                SENTINEL_SERVICE,
                "127.0.0.1",
                &port,
                "1"
            ]),
            "OK"
        );
        let since = Instant::now();
        let (figure, _) = until_answered(&limiter, "k2", since, Duration::from_secs(15)).await;
        assert_eq!(store.sentinel_primary(), Some(new.addr()));
        assert!(has_key(
            new,
            &format!("tidegate:{name}:{{=k2}}:0:fixed_window")
        ));
        println!(
            "READONLY from a demoted primary: re-resolved; decisions answered by the new \
             primary {} ms after Sentinel named it",
            figure.as_millis()
        );
    });
}

#[test]
fn a_killed_cluster_master_fails_over_and_the_store_follows_the_promoted_replica() {
    let cluster = RedisCluster::start_with_replicas();
    let rt = runtime();
    rt.block_on(async {
        // The three masters as starting nodes, as a user would write them.
        let urls: Vec<String> = cluster.urls().into_iter().take(3).collect();
        let store = RedisStore::connect(&urls, options()).await.unwrap();
        let name = unique("clusterfail");
        let limiter = generous(&store, &name);
        let key = format!("tidegate:{name}:{{=k}}:0:fixed_window");
        let other = generous(&store, &unique("elsewhere"));
        for _ in 0..5 {
            assert!(timed(&limiter, "k").await.0);
        }
        let old = cluster.master_of(&key);
        assert!(has_key(old, &key));
        assert_eq!(old.cli(&["WAIT", "1", "2000"]), "1");
        // A key on another master, to check it keeps deciding during the failover.
        let elsewhere = (0..200)
            .map(|i| format!("o{i}"))
            .find(|k| {
                cluster
                    .master_of(&format!("tidegate:x:{{={k}}}:0:fixed_window"))
                    .port()
                    != old.port()
            })
            .unwrap();

        let killed = Instant::now();
        old.kill();
        let (figure, refused) =
            until_answered(&limiter, "k", killed, Duration::from_secs(30)).await;
        let new_port = cluster
            .wait_for_failover(&key, old.port(), Duration::from_secs(10))
            .unwrap();
        let new = cluster
            .nodes()
            .iter()
            .find(|n| n.port() == new_port)
            .unwrap();
        assert!(
            has_key(new, &key),
            "decisions are written on the promoted replica"
        );
        assert!(
            timed(&other, &elsewhere).await.0,
            "a key on a surviving master decides"
        );
        println!(
            "cluster failover: SIGKILL of a master -> first decision answered by the \
             promoted replica after {} ms ({refused} decisions by fail_closed meanwhile; \
             cluster-node-timeout 2000)",
            figure.as_millis()
        );
    });
}

/// The queue and the tracker through a Sentinel failover: every job pushed and every
/// event tracked before the kill (and replicated: `WAIT`) is run or delivered at least
/// once after it, by the same store, without a restart.
#[cfg(all(feature = "queue", feature = "tracker"))]
#[test]
fn the_queue_and_the_tracker_lose_nothing_replicated_across_a_sentinel_failover() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use crate::support::worker::{counting_worker, drained_and_none_lost};
    use serde_json::{Value, json};
    use tidegate::queue::{Job, QueueOptions, WorkQueue};
    use tidegate::tracker::{EventTracker, TrackerStore};

    let group = RedisSentinel::start(3);
    let rt = runtime();
    rt.block_on(async {
        let store = RedisStore::open(&[group.url()], options()).await.unwrap();
        let q = WorkQueue::open(store.clone(), &unique("failq"), QueueOptions::default()).unwrap();
        let jobs: Vec<Job> = (0..100).map(|i| Job::new(json!({ "n": i }))).collect();
        q.push_many(&jobs).await.unwrap();

        let delivered: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let d = Arc::clone(&delivered);
        let tracker = EventTracker::builder()
            .manual_ticks()
            .store(TrackerStore::redis(store.clone(), unique("failt")))
            .limit(1)
            .defer_interval(Duration::from_millis(100))
            .processing_interval(Duration::from_millis(50))
            .lease(Duration::from_secs(1))
            .processor(move |batch| {
                let d = Arc::clone(&d);
                async move {
                    let mut d = d.lock().unwrap();
                    for r in batch {
                        *d.entry(r.id.clone()).or_default() += r.count;
                    }
                    Ok::<_, String>(())
                }
            })
            .build()
            .unwrap();
        for i in 0..100u64 {
            tracker
                .track_event_at("login", &format!("u{}", i % 10), Value::Null, i * 1_000)
                .await
                .unwrap();
        }
        let old = group.primary();
        assert_eq!(
            old.cli(&["WAIT", "1", "2000"]),
            "1",
            "replicated before the kill"
        );

        let (worker, seen) = counting_worker(&q, 2, Duration::from_millis(20));
        while seen.lock().unwrap().len() < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        old.kill();
        let killed = Instant::now();
        group
            .wait_for_new_primary(old.port(), Duration::from_secs(30))
            .unwrap();
        let twice = drained_and_none_lost(&q, worker, &seen, 100, "in the failover").await;

        let deadline = Instant::now() + Duration::from_secs(30);
        let mut t = 200_000u64;
        loop {
            tracker.tick_at(t).await;
            t += 500_000;
            if matches!(tracker.next_due_micros().await, Ok(None)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tracker batches still due after the failover"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let delivered = delivered.lock().unwrap().clone();
        assert!(
            delivered.len() == 10 && delivered.values().all(|&c| c >= 9),
            "a deferred event was lost: {delivered:?}"
        );
        println!(
            "sentinel failover with a worker running: 100/100 jobs ran ({twice} more than once), \
             {}/90 deferred events delivered; drained {} ms after the kill",
            delivered.values().sum::<u64>(),
            killed.elapsed().as_millis()
        );
        tracker.clear().await.unwrap();
    });
}
