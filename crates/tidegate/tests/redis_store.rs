//! The Redis store against real redis-server processes (single node and a 3-master
//! cluster) started by the test harness: the same decisions as memory, exact totals
//! under contention, failure policies during outages, NOSCRIPT recovery, key expiry.
#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::redis::{runtime, unique};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use redis_test_server::{RedisCluster, RedisServer};
use tidegate::store::redis::{RedisLimiter, RedisOptions, RedisStore};
use tidegate::store::{FailurePolicy, LimitStore};
use tidegate::{AlgorithmKind, Limiter, ManualClock, Policy, PolicySet};

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(AlgorithmKind::ALL.to_vec()),
        1u64..=12,
        prop_oneof![
            (1u64..=5).prop_map(Duration::from_secs),
            (1u64..=3_000_000).prop_map(Duration::from_micros),
            // Intervals that are not whole microseconds (10 ms / 3 = 3333.3 µs).
            Just(Duration::from_millis(10)),
            Just(Duration::from_secs(1)),
        ],
        prop::option::of(1u64..=15),
        any::<bool>(),
    )
        .prop_map(|(kind, limit, window, burst, epoch)| {
            let burst = burst.filter(|_| kind.takes_burst());
            let limit = (kind != AlgorithmKind::Throttle).then_some(limit);
            let align = (epoch && kind == AlgorithmKind::FixedWindow).then_some("epoch");
            Policy::new(kind, limit, window, burst)
                .and_then(|p| p.aligned(align))
                .unwrap()
        })
}

/// Non-decreasing µs times (starting at a realistic epoch), keys, costs.
fn traffic() -> impl Strategy<Value = Vec<(u64, u8, u64)>> {
    // Gaps that land exactly on boundaries (whole ms, T = 3333 µs, 1/3 s) as well as anywhere.
    let gap = prop_oneof![
        4 => 0u64..=700_000,
        1 => 0u64..=3,
        1 => Just(3_333u64),
        1 => Just(333_333u64),
        1 => (1u64..=10).prop_map(|k| k * 1_000),
    ];
    prop::collection::vec((gap, 0u8..3, 1u64..=3), 1..60).prop_map(|steps| {
        let mut t = 1_763_000_000_000_000;
        steps
            .into_iter()
            .map(|(gap, key, cost)| {
                t += gap;
                (t, key, cost)
            })
            .collect()
    })
}

/// Policies with an emission interval of 3333.3 µs, and traffic landing on the
/// microseconds around its multiples: the boundaries where rounding would show.
fn boundary_case() -> impl Strategy<Value = (Vec<Policy>, Vec<(u64, u8, u64)>)> {
    let specs = [
        "gcra:3/10ms,burst=1",
        "gcra:3/10ms",
        "token_bucket:3/10ms,burst=2",
        "leaky_bucket:3/10ms,burst=2",
        "sliding_window:3/10ms",
        "sliding_log:3/10ms",
        "fixed_window:3/10ms",
        "throttle:10ms",
    ];
    let policy = prop::sample::select(specs.to_vec()).prop_map(|s| s.parse::<Policy>().unwrap());
    let gap = prop::sample::select(vec![
        0u64, 1, 3_332, 3_333, 3_334, 6_666, 6_667, 9_999, 10_000,
    ]);
    (
        prop::collection::vec(policy, 1..=2),
        prop::collection::vec((gap, 0u8..2, 1u64..=2), 1..40).prop_map(|steps| {
            let mut t = 1_763_000_000_000_000;
            steps
                .into_iter()
                .map(|(gap, key, cost)| {
                    t += gap;
                    (t, key, cost)
                })
                .collect()
        }),
    )
}

/// One or two policies of any size (limits up to 10^12, windows up to 10 years) and
/// traffic near today's Unix time scaled to the first, on two keys.
fn large_case() -> impl Strategy<Value = (Vec<Policy>, Vec<(u64, u8, u64)>)> {
    prop::collection::vec(support::quotas::large_policy(), 1..=2).prop_flat_map(|policies| {
        let (limit, window, _) = policies[0].parts();
        let capacity = PolicySet::new(policies.clone()).unwrap();
        let capacity = tidegate::Algorithm::capacity(&capacity);
        let traffic = support::quotas::scaled_traffic(limit, window, capacity, 30);
        (Just(policies), traffic, prop::collection::vec(0u8..2, 30)).prop_map(
            |(policies, traffic, keys)| {
                let traffic = traffic
                    .into_iter()
                    .zip(keys)
                    .map(|((t, cost), key)| (t, key, cost))
                    .collect();
                (policies, traffic)
            },
        )
    })
}

/// A memory limiter on a manual clock and a Redis limiter (failing closed, on a key
/// prefix of its own) for the same policies, to compare.
fn memory_and_redis(
    store: &RedisStore,
    set: &PolicySet,
    prefix: &str,
) -> (Limiter<PolicySet, String, ManualClock>, RedisLimiter) {
    let memory = Limiter::builder(set.clone())
        .clock(ManualClock::new(0))
        .sweep_interval(None)
        .build::<String>();
    let redis = store
        .limiter(&unique(prefix), set.clone())
        .on_error(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    (memory, redis)
}

/// Random traffic with an explicit clock through memory and Redis: identical decisions.
fn differential(rt: &tokio::runtime::Runtime, store: &RedisStore, cases: u32) {
    let random = (prop::collection::vec(policy(), 1..=3), traffic());
    let strategy = prop_oneof![1 => random, 1 => boundary_case(), 2 => large_case()];
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(&strategy, |(policies, traffic)| {
            let set = PolicySet::new(policies).unwrap();
            let capacity = tidegate::Algorithm::capacity(&set);
            let (memory, redis) = memory_and_redis(store, &set, "diff");
            rt.block_on(async {
                for (i, &(t, key, cost)) in traffic.iter().enumerate() {
                    let key = format!("k{key}");
                    let cost = cost.min(capacity);
                    let m = memory.check_at(key.as_str(), cost, t).unwrap();
                    let r = redis.acquire(&key, cost, Some(t)).await.unwrap();
                    prop_assert_eq!(m, r, "event {} of {:?} with {}", i, traffic, set);
                }
                prop_assert_eq!(redis.stats().fallbacks, 0);
                Ok(())
            })
        })
        .unwrap();
}

/// The same comparison with the traffic sent in groups of up to 12 concurrent decisions,
/// so one script call carries several decisions, often on one key (read once and
/// written once per call by the script): the decisions are those of memory taking them
/// one by one in the order sent. One call at a time, so calls keep that order.
fn differential_batched(rt: &tokio::runtime::Runtime, store: &RedisStore, cases: u32) {
    let random = (prop::collection::vec(policy(), 1..=3), traffic());
    let strategy = prop_oneof![1 => random, 1 => boundary_case(), 1 => large_case()];
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(&(strategy, 2usize..=12), |((policies, traffic), group)| {
            let set = PolicySet::new(policies).unwrap();
            let capacity = tidegate::Algorithm::capacity(&set);
            let (memory, redis) = memory_and_redis(store, &set, "batched");
            rt.block_on(async {
                for chunk in traffic.chunks(group) {
                    let events: Vec<(u64, String, u64)> = chunk
                        .iter()
                        .map(|&(t, key, cost)| (t, format!("k{key}"), cost.min(capacity)))
                        .collect();
                    let mut pending: Vec<_> = events
                        .iter()
                        .map(|(t, key, cost)| Box::pin(redis.acquire(key, *cost, Some(*t))))
                        .collect();
                    // Polled in order: each decision is queued for the batcher in its
                    // first poll, before the next one's.
                    let mut answers = vec![None; pending.len()];
                    std::future::poll_fn(|cx| {
                        let mut waiting = false;
                        for (fut, answer) in pending.iter_mut().zip(answers.iter_mut()) {
                            if answer.is_none() {
                                match fut.as_mut().poll(cx) {
                                    std::task::Poll::Ready(d) => *answer = Some(d.unwrap()),
                                    std::task::Poll::Pending => waiting = true,
                                }
                            }
                        }
                        if waiting {
                            std::task::Poll::Pending
                        } else {
                            std::task::Poll::Ready(())
                        }
                    })
                    .await;
                    for ((t, key, cost), r) in events.iter().zip(answers) {
                        let m = memory.check_at(key.as_str(), *cost, *t).unwrap();
                        prop_assert_eq!(
                            m,
                            r.unwrap(),
                            "{} at {} of {:?} with {}",
                            key,
                            t,
                            traffic,
                            set
                        );
                    }
                }
                prop_assert_eq!(redis.stats().fallbacks, 0);
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn redis_decides_exactly_like_memory_when_decisions_share_script_calls() {
    let server = RedisServer::start();
    let rt = runtime();
    let store = rt.block_on(connect(&[server.url()], patient().with_batch_in_flight(1)));
    differential_batched(&rt, &store, 96);
    let stats = store.stats();
    assert!(
        stats.batch_requests > stats.batch_calls,
        "decisions shared script calls: {stats:?}"
    );
}

/// The Lua scripts' exact `muldiv` (algorithms.lua) against `u128` arithmetic, batched:
/// `⌊(a × b + c) / m⌋` and the remainder for operands up to 2^53 whose quotient is
/// below 2^53, including products far beyond the 2^53 where doubles stop being exact.
#[test]
fn lua_muldiv_is_exact_for_products_beyond_2_to_the_53() {
    const TWO53: u128 = 1 << 53;
    let server = RedisServer::start();
    let conn = std::cell::RefCell::new(
        redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap(),
    );
    let script = redis::Script::new(&format!(
        "{}\n{}",
        include_str!("../src/store/redis/algorithms.lua"),
        "local out = {}\n\
         for i = 1, #ARGV, 4 do\n\
           local q, r = muldiv(tonumber(ARGV[i]), tonumber(ARGV[i + 1]),\n\
             tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]))\n\
           out[#out + 1] = num(q)\n\
           out[#out + 1] = num(r)\n\
         end\n\
         return out"
    ));
    let operand = || support::quotas::log_uniform(0, (1 << 53) - 1);
    let quad = (operand(), operand(), operand(), operand()).prop_map(|(a, b, c, m)| {
        let n = u128::from(a) * u128::from(b) + u128::from(c);
        // At least the smallest divisor keeping the quotient below 2^53.
        let m = m.max((n / TWO53 + 1) as u64);
        (a, b, c, m)
    });
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&prop::collection::vec(quad, 200), |quads| {
            let mut invocation = script.prepare_invoke();
            for &(a, b, c, m) in &quads {
                invocation.arg(a).arg(b).arg(c).arg(m);
            }
            let out: Vec<String> = invocation.invoke(&mut *conn.borrow_mut()).unwrap();
            for (i, &(a, b, c, m)) in quads.iter().enumerate() {
                let n = u128::from(a) * u128::from(b) + u128::from(c);
                let want = (
                    (n / u128::from(m)).to_string(),
                    (n % u128::from(m)).to_string(),
                );
                let got = (out[2 * i].clone(), out[2 * i + 1].clone());
                prop_assert_eq!(got, want, "muldiv({}, {}, {}, {})", a, b, c, m);
            }
            Ok(())
        })
        .unwrap();
}

/// Options for tests that need every decision answered by Redis, even on a busy machine.
fn patient() -> RedisOptions {
    RedisOptions::default().with_timeout(Duration::from_secs(2))
}

async fn connect(urls: &[String], options: RedisOptions) -> RedisStore {
    RedisStore::connect(urls, options).await.unwrap()
}

#[test]
fn redis_decides_exactly_like_memory_on_random_traffic() {
    let server = RedisServer::start();
    // The connection's driver task lives on the runtime it was made in: keep it.
    let rt = runtime();
    let store = rt.block_on(connect(&[server.url()], patient()));
    differential(&rt, &store, 160);
}

#[test]
fn redis_cluster_decides_exactly_like_memory_on_random_traffic() {
    let cluster = RedisCluster::start();
    let rt = runtime();
    let store = rt.block_on(connect(&cluster.urls(), patient()));
    assert!(store.is_cluster());
    differential(&rt, &store, 48);
}

async fn hammer_one_key(urls: Vec<String>) {
    const CLIENTS: usize = 4;
    const TASKS: usize = 16;
    const TRIES: usize = 40;
    let name = unique("hammer");
    let policies: PolicySet = "fixed_window:1000/1h;gcra:700/1h".parse().unwrap();
    let admitted = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..CLIENTS {
        // A separate connection per client, as separate instances would have.
        let store = connect(
            &urls,
            RedisOptions::default().with_timeout(Duration::from_secs(5)),
        )
        .await;
        stores.push(store.clone());
        let limiter = Arc::new(
            store
                .limiter(&name, policies.clone())
                .on_error(FailurePolicy::FailClosed)
                .build()
                .unwrap(),
        );
        for _ in 0..TASKS {
            let (limiter, admitted) = (Arc::clone(&limiter), Arc::clone(&admitted));
            handles.push(tokio::spawn(async move {
                for _ in 0..TRIES {
                    if limiter.acquire("hot", 1, None).await.unwrap().allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                assert_eq!(limiter.stats().fallbacks, 0);
            }));
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    // 2560 tries; the gcra policy (700 per hour) is the binding one.
    assert_eq!(admitted.load(Ordering::Relaxed), 700);
    let stats = stores[0].stats();
    assert!(
        stats.batch_requests > stats.batch_calls,
        "concurrent decisions on one key share script calls: {stats:?}"
    );
}

#[test]
fn clients_on_separate_connections_admit_exactly_the_limit_of_one_key() {
    let server = RedisServer::start();
    runtime().block_on(hammer_one_key(vec![server.url()]));
    let cluster = RedisCluster::start();
    runtime().block_on(hammer_one_key(cluster.urls()));
}

fn outage_options() -> RedisOptions {
    RedisOptions::default()
        .with_timeout(Duration::from_millis(50))
        .with_connect_timeout(Duration::from_millis(500))
        .with_breaker_threshold(3)
        .with_breaker_cooldown(Duration::from_millis(200))
}

/// Every decision in an outage comes back within the timeout (plus scheduling slack).
const BOUND: Duration = Duration::from_millis(50 + 450);

async fn timed(limiter: &RedisLimiter, key: &str) -> (bool, Duration) {
    let start = Instant::now();
    let d = limiter.acquire(key, 1, None).await.unwrap();
    (d.allowed, start.elapsed())
}

#[test]
fn outage_follows_each_failure_policy_within_the_timeout_and_recovers() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = connect(&[server.url()], outage_options()).await;
        let policies: PolicySet = "fixed_window:5/1h".parse().unwrap();
        let build = |on_error| {
            store
                .limiter(&unique("outage"), policies.clone())
                .on_error(on_error)
                .build()
                .unwrap()
        };
        let (open, closed, local) = (
            build(FailurePolicy::FailOpen),
            build(FailurePolicy::FailClosed),
            build(FailurePolicy::Local),
        );
        // Healthy: Redis decides; use up 3 of local's 5 in Redis.
        for _ in 0..3 {
            assert!(timed(&local, "k").await.0);
        }

        server.pause(); // SIGSTOP: connections hang.
        let mut local_admits = 0;
        for i in 0..20 {
            let (allowed, took) = timed(&open, "k").await;
            assert!(allowed, "fail_open admits (call {i})");
            assert!(took < BOUND, "fail_open call {i} took {took:?}");
            let (allowed, took) = timed(&closed, "k").await;
            assert!(!allowed, "fail_closed denies (call {i})");
            assert!(took < BOUND, "fail_closed call {i} took {took:?}");
            let (allowed, took) = timed(&local, "k").await;
            local_admits += u64::from(allowed);
            assert!(took < BOUND, "local call {i} took {took:?}");
        }
        assert_eq!(
            local_admits, 5,
            "the local limiter enforces the same policy"
        );
        let stats = store.stats();
        assert!(stats.circuit_opened >= 1 && stats.refused > 0, "{stats:?}");
        assert!(local.stats().fallbacks >= 20);

        server.resume();
        // Recovers without a restart: once the cool-down passes, a probe closes the circuit.
        let before = local.stats().decisions;
        let deadline = Instant::now() + Duration::from_secs(10);
        while local.stats().decisions == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            timed(&local, "k2").await;
        }
        assert!(
            local.stats().decisions > before,
            "Redis answers again after SIGCONT"
        );

        server.kill(); // Connections refused now.
        for _ in 0..10 {
            let (allowed, took) = timed(&closed, "k").await;
            assert!(!allowed);
            assert!(took < BOUND, "after kill a call took {took:?}");
        }
        server.restart();
        let before = closed.stats().decisions;
        let deadline = Instant::now() + Duration::from_secs(15);
        while closed.stats().decisions == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            timed(&closed, "fresh").await;
        }
        assert!(
            closed.stats().decisions > before,
            "Redis answers again after a restart"
        );
        assert!(
            timed(&closed, "fresh2").await.0,
            "a decision from the restarted Redis"
        );
    });
}

#[test]
fn script_flush_mid_traffic_fails_no_decision() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = connect(&[server.url()], patient()).await;
        let limiter = store
            .limiter(&unique("flush"), "gcra:100/1s".parse().unwrap())
            .on_error(FailurePolicy::FailClosed)
            .build()
            .unwrap();
        for i in 0..300 {
            if i % 50 == 25 {
                assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
            }
            limiter
                .acquire(&format!("k{}", i % 7), 1, None)
                .await
                .unwrap();
        }
        assert_eq!(limiter.stats().fallbacks, 0);
        assert_eq!(limiter.stats().decisions, 300);
    });
}

#[test]
fn keys_expire_once_their_state_is_fresh_again() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = connect(&[server.url()], patient()).await;
        let specs = [
            "fixed_window:3/300ms",
            "sliding_window:3/300ms",
            "sliding_log:3/300ms",
            "token_bucket:3/300ms",
            "leaky_bucket:3/300ms",
            "gcra:3/300ms;throttle:200ms",
        ];
        let limiters: Vec<RedisLimiter> = specs
            .iter()
            .map(|s| {
                store
                    .limiter(&unique("ttl"), s.parse().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        for (i, l) in limiters.iter().enumerate() {
            for k in 0..20 {
                for _ in 0..4 {
                    l.acquire(&format!("user{k}"), 1, None).await.unwrap();
                }
            }
            if i == 0 {
                // TTLs are exact: no key outlives its state. Read right away, while the
                // 300 ms window of the last key written is still open.
                let ttl: i64 = server
                    .cli(&["PTTL", &l.redis_key("user19", 0)])
                    .parse()
                    .unwrap();
                assert!((1..=300).contains(&ttl), "fixed window key PTTL {ttl}");
            }
            assert_eq!(l.keys(1000).await.unwrap().len(), 20);
        }
        assert!(server.cli(&["DBSIZE"]).parse::<u64>().unwrap() > 0);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            server.cli(&["DBSIZE"]),
            "0",
            "keys left: {}",
            server.cli(&["KEYS", "*"])
        );
    });
}

#[test]
fn reset_and_peek_and_listing_work_on_a_cluster() {
    let cluster = RedisCluster::start();
    runtime().block_on(async {
        let store = connect(&cluster.urls(), patient()).await;
        let limiter = store
            .limiter(&unique("admin"), "fixed_window:2/1h".parse().unwrap())
            .build()
            .unwrap();
        for k in 0..30 {
            limiter.acquire(&format!("user{k}"), 2, None).await.unwrap();
        }
        let mut keys = limiter.keys(1000).await.unwrap();
        keys.sort();
        assert_eq!(keys.len(), 30, "SCAN over every primary finds every key");
        assert!(!limiter.peek("user3", 1, None).await.unwrap().allowed);
        assert!(limiter.reset("user3").await.unwrap());
        assert!(!limiter.reset("user3").await.unwrap());
        assert!(limiter.peek("user3", 2, None).await.unwrap().allowed);
        assert_eq!(limiter.keys(1000).await.unwrap().len(), 29);
    });
}

#[test]
fn invalid_store_urls_and_names_are_clear_errors() {
    let e = tidegate::store::redis::parse_urls("localhost:6379").unwrap_err();
    assert!(e.to_string().contains("must start with redis://"), "{e}");
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = connect(&[server.url()], RedisOptions::default()).await;
        let e = store
            .limiter("a{b", "gcra:1/1s".parse().unwrap())
            .build()
            .unwrap_err();
        assert_eq!(e.field, "name");
    });
    let refused = runtime().block_on(RedisStore::connect(
        &["redis://127.0.0.1:1".to_string()],
        RedisOptions::default().with_connect_timeout(Duration::from_millis(300)),
    ));
    assert!(refused.is_err());
}

#[test]
fn deny_cache_answers_a_denied_key_locally_until_retry_after() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = connect(&[server.url()], RedisOptions::default()).await;
        let limiter = store
            .limiter(&unique("deny"), "fixed_window:1/300ms".parse().unwrap())
            .deny_cache(true)
            .build()
            .unwrap();
        assert!(limiter.acquire("k", 1, None).await.unwrap().allowed);
        let first = limiter.acquire("k", 1, None).await.unwrap();
        assert!(!first.allowed);
        for _ in 0..10 {
            let d = limiter.acquire("k", 1, None).await.unwrap();
            assert!(!d.allowed);
            assert!(d.retry_after_us.unwrap() <= first.retry_after_us.unwrap());
        }
        let stats = limiter.stats();
        assert_eq!((stats.decisions, stats.deny_cache_hits), (2, 10));
        // Once retry_after has passed, Redis is asked again and admits.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(limiter.acquire("k", 1, None).await.unwrap().allowed);
        assert_eq!(limiter.stats().decisions, 3);
        // A reset through the limiter clears the cached denial.
        assert!(!limiter.acquire("k", 1, None).await.unwrap().allowed);
        assert!(limiter.reset("k").await.unwrap());
        assert!(limiter.acquire("k", 1, None).await.unwrap().allowed);
    });
}

/// Writes a CA and a server certificate for 127.0.0.1 into `dir` with the openssl CLI.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tidegate test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[test]
fn rediss_urls_decide_over_tls() {
    let dir = std::env::temp_dir().join(unique(&format!("tidegate-tls-{}-", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = |f: &str| dir.join(f).display().to_string();
    let server = RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path("server.crt"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]);
    runtime().block_on(async {
        let url = format!("rediss://127.0.0.1:{tls_port}");
        let options = RedisOptions::default()
            .with_tls_ca_file(Some(dir.join("ca.crt")))
            .with_timeout(Duration::from_secs(2));
        let store = RedisStore::connect(std::slice::from_ref(&url), options)
            .await
            .unwrap();
        let limiter = store
            .limiter(&unique("tls"), "fixed_window:2/1h".parse().unwrap())
            .build()
            .unwrap();
        let allowed: Vec<bool> = [
            limiter.acquire("k", 1, None).await.unwrap().allowed,
            limiter.acquire("k", 1, None).await.unwrap().allowed,
            limiter.acquire("k", 1, None).await.unwrap().allowed,
        ]
        .to_vec();
        assert_eq!(allowed, [true, true, false]);
        assert_eq!(limiter.stats().fallbacks, 0);
        // Without the CA the server's certificate is not trusted: a clear error.
        let untrusted = RedisStore::connect(
            &[url],
            RedisOptions::default().with_connect_timeout(Duration::from_millis(500)),
        )
        .await;
        assert!(untrusted.is_err());
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_opened_while_redis_is_down_follows_the_failure_policy_then_recovers() {
    let server = RedisServer::start();
    server.kill();
    runtime().block_on(async {
        let options = RedisOptions::default()
            .with_timeout(Duration::from_millis(100))
            .with_connect_timeout(Duration::from_millis(200))
            .with_breaker_cooldown(Duration::from_millis(100));
        assert!(
            RedisStore::connect(&[server.url()], options.clone())
                .await
                .is_err()
        );
        let store = RedisStore::open(&[server.url()], options).await.unwrap();
        let limiter = store
            .limiter(&unique("down"), "fixed_window:1/1h".parse().unwrap())
            .on_error(FailurePolicy::FailClosed)
            .build()
            .unwrap();
        let (allowed, took) = timed(&limiter, "k").await;
        assert!(!allowed, "fail_closed while Redis is down");
        assert!(took < BOUND, "took {took:?}");
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(15);
        while limiter.stats().decisions == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            timed(&limiter, "k").await;
        }
        assert!(limiter.stats().decisions > 0, "Redis decides once it is up");
    });
}
