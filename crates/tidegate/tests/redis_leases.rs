//! Leases for hot keys against real redis-server processes (single node and a 3-master
//! cluster): instances answering from slices of one key's quota never admit more than
//! the policy allows and at least that minus the stranding bound (one slice, less one
//! unit, per instance), in tasks and in separate processes; returned slices are
//! available again; a Redis outage is answered from the slice until it is spent, then
//! by the failure policy.
#![cfg(feature = "redis")]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_test_server::{RedisCluster, RedisServer};
use support::redis::{runtime, unique};
use tidegate::store::redis::{RedisLimiter, RedisOptions, RedisStore};
use tidegate::store::{FailurePolicy, LimitStore};
use tidegate::{Clock, PolicySet};

/// A small seeded generator (xorshift64): the traffic of a run is its seed's.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn patient() -> RedisOptions {
    RedisOptions::default().with_timeout(Duration::from_secs(5))
}

async fn limiter(urls: &[String], name: &str, policy: &str) -> RedisLimiter {
    // A connection per limiter, as separate instances would have.
    let store = RedisStore::connect(urls, patient()).await.unwrap();
    store
        .limiter(name, policy.parse().unwrap())
        .on_error(FailurePolicy::FailClosed)
        .build()
        .unwrap()
}

/// What a key can still admit now, asked exactly (no lease) through a new connection.
async fn shared_remaining(urls: &[String], name: &str, policy: &str, key: &str) -> u64 {
    let plain = policy.split(",lease=").next().unwrap();
    let exact = limiter(urls, name, plain).await;
    let d = exact.peek(key, 1, None).await.unwrap();
    // A peek's `remaining` is what would remain after admitting its cost.
    if d.allowed { d.remaining + 1 } else { 0 }
}

/// Requests random costs (1 to 3) on `key` until a request of cost 1 is denied: then
/// neither this instance's slice nor Redis has a unit left. Answers the cost admitted.
async fn drain_key(limiter: &RedisLimiter, key: &str, mut rng: Rng) -> u64 {
    let mut admitted = 0;
    let mut cost = 1 + rng.below(3);
    loop {
        let d = limiter.acquire(key, cost, None).await.unwrap();
        if d.allowed {
            admitted += cost;
        } else if cost == 1 {
            return admitted;
        }
        if rng.below(4) == 0 {
            tokio::task::yield_now().await;
        }
        cost = if d.allowed { 1 + rng.below(3) } else { 1 };
    }
}

struct Run {
    admitted: u64,
    limiters: Vec<Arc<RedisLimiter>>,
}

/// `instances` limiters (each its own connection), `tasks` tasks on each, all draining
/// `key` with seeded random costs.
async fn contend(
    urls: &[String],
    name: &str,
    policy: &str,
    key: &str,
    instances: usize,
    tasks: usize,
    seed: u64,
) -> Run {
    let admitted = Arc::new(AtomicU64::new(0));
    let mut limiters = Vec::new();
    let mut handles = Vec::new();
    for i in 0..instances {
        let l = Arc::new(limiter(urls, name, policy).await);
        limiters.push(Arc::clone(&l));
        for t in 0..tasks {
            let (l, admitted, key) = (Arc::clone(&l), Arc::clone(&admitted), key.to_string());
            let rng = Rng(seed ^ ((i as u64 + 1) << 32) ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9));
            handles.push(tokio::spawn(async move {
                let n = drain_key(&l, &key, rng).await;
                admitted.fetch_add(n, Ordering::Relaxed);
            }));
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    for l in &limiters {
        assert_eq!(l.stats().fallbacks, 0, "Redis answered every take");
    }
    Run {
        admitted: admitted.load(Ordering::Relaxed),
        limiters,
    }
}

async fn release_all(run: &Run) -> u64 {
    let mut back = 0;
    for l in &run.limiters {
        back += l.release_leases().await.unwrap();
    }
    back
}

/// Fixed window: per window at most `limit`, at least `limit - instances × (lease - 1)`;
/// the returned slices make the count exactly what was admitted.
async fn fixed_window_bounds(urls: Vec<String>, seed: u64, instances: usize, lease: u64) {
    let limit = 600;
    let policy = format!("fixed_window:{limit}/1h,lease={lease}");
    let name = unique("lease_fw");
    let run = contend(&urls, &name, &policy, "hot", instances, 6, seed).await;
    let bound = instances as u64 * (lease - 1);
    assert!(
        run.admitted <= limit,
        "admitted {} of {limit}",
        run.admitted
    );
    assert!(
        run.admitted + bound >= limit,
        "admitted {} of {limit}: more than the stranding bound {bound} lost",
        run.admitted
    );
    let leased: u64 = run.limiters.iter().map(|l| l.stats().leased).sum();
    assert!(leased > 0, "some decisions were answered from slices");
    let back = release_all(&run).await;
    assert_eq!(
        run.admitted + back,
        limit,
        "every unit not admitted was held and returned"
    );
    assert_eq!(
        shared_remaining(&urls, &name, &policy, "hot").await,
        limit - run.admitted
    );
}

#[test]
fn instances_on_one_fixed_window_key_admit_at_most_the_limit_and_return_what_they_hold() {
    let server = RedisServer::start();
    let rt = runtime();
    for (seed, instances, lease) in [(1, 4, 25), (2, 3, 60), (3, 6, 7), (4, 2, 600)] {
        rt.block_on(fixed_window_bounds(
            vec![server.url()],
            seed,
            instances,
            lease,
        ));
    }
}

#[test]
fn leases_on_a_cluster_land_on_the_key_slot_and_keep_the_bounds() {
    let cluster = RedisCluster::start();
    let rt = runtime();
    rt.block_on(fixed_window_bounds(cluster.urls(), 11, 4, 30));
    rt.block_on(token_bucket_bounds(cluster.urls(), 12, 3, 20));
}

/// Token bucket (200 per hour, so refill is ~0 during the run): at most the burst plus
/// what refilled, at least the burst less the stranding bound; returned slices refill
/// the bucket by exactly what was held.
async fn token_bucket_bounds(urls: Vec<String>, seed: u64, instances: usize, lease: u64) {
    let burst = 200;
    let policy = format!("token_bucket:{burst}/1h,lease={lease}");
    let name = unique("lease_tb");
    let start = Instant::now();
    let run = contend(&urls, &name, &policy, "hot", instances, 6, seed).await;
    // One token per 18 s refills during the run.
    let refilled = start.elapsed().as_secs() / 18 + 1;
    let bound = instances as u64 * (lease - 1);
    assert!(
        run.admitted <= burst + refilled,
        "admitted {} of {burst}",
        run.admitted
    );
    assert!(
        run.admitted + bound >= burst,
        "admitted {} of {burst}",
        run.admitted
    );
    let back = release_all(&run).await;
    let remaining = shared_remaining(&urls, &name, &policy, "hot").await;
    assert!(back <= bound, "returned {back}, more than could be held");
    assert!(
        remaining + run.admitted >= burst && remaining + run.admitted <= burst + refilled,
        "remaining {remaining} after admitting {} and returning {back}",
        run.admitted
    );
}

#[test]
fn instances_on_one_token_bucket_key_admit_at_most_the_burst_and_return_what_they_hold() {
    let server = RedisServer::start();
    let rt = runtime();
    for (seed, instances, lease) in [(5, 4, 20), (6, 2, 200), (7, 5, 3)] {
        rt.block_on(token_bucket_bounds(
            vec![server.url()],
            seed,
            instances,
            lease,
        ));
    }
}

#[test]
fn a_gcra_lease_answers_locally_and_returns_its_slice() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let urls = vec![server.url()];
        let (name, policy) = (unique("lease_gcra"), "gcra:100/1h,lease=10%");
        let l = limiter(&urls, &name, policy).await;
        for _ in 0..25 {
            assert!(l.acquire("k", 1, None).await.unwrap().allowed);
        }
        let s = l.stats();
        assert_eq!((s.lease_takes, s.leased), (3, 22), "slices of 10: {s:?}");
        assert_eq!(shared_remaining(&urls, &name, policy, "k").await, 70);
        assert_eq!(l.release_leases().await.unwrap(), 5);
        assert_eq!(shared_remaining(&urls, &name, policy, "k").await, 75);
    });
}

#[test]
fn a_held_slice_keeps_answering_in_an_outage_then_the_failure_policy_answers() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let options = RedisOptions::default()
            .with_timeout(Duration::from_millis(50))
            .with_breaker_cooldown(Duration::from_millis(200));
        let store = RedisStore::connect(&[server.url()], options).await.unwrap();
        let l = store
            .limiter(
                &unique("lease_out"),
                "fixed_window:1000/1h,lease=50".parse().unwrap(),
            )
            .on_error(FailurePolicy::FailClosed)
            .build()
            .unwrap();
        assert!(l.acquire("k", 1, None).await.unwrap().allowed);
        server.pause(); // SIGSTOP: Redis answers nothing.
        for i in 0..49 {
            let d = l.acquire("k", 1, None).await.unwrap();
            assert!(d.allowed, "the held slice answers (call {i})");
        }
        let started = Instant::now();
        let d = l.acquire("k", 1, None).await.unwrap();
        assert!(!d.allowed, "fail_closed answers once the slice is spent");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "within the timeout"
        );
        assert_eq!(l.stats().fallbacks, 1);
        assert!(l.release_leases().await.is_ok(), "nothing is held");
        server.resume();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if l.acquire("k", 1, None).await.unwrap().allowed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Redis decides again after the outage"
            );
        }
        assert!(l.stats().lease_takes >= 2);
    });
}

#[test]
fn a_lease_needs_a_key_guarded_by_one_policy() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let store = RedisStore::connect(&[server.url()], patient())
            .await
            .unwrap();
        let set: PolicySet = "fixed_window:100/1m,lease=10;gcra:10/1s".parse().unwrap();
        let e = store.limiter("two", set).build().unwrap_err();
        assert_eq!(e.field, "lease");
        assert!(e.reason.contains("one policy"), "{e}");
    });
}

#[test]
fn explicit_times_and_peeks_are_decided_exactly_beside_a_lease() {
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let urls = vec![server.url()];
        let (name, policy) = (unique("lease_exact"), "fixed_window:10/1h,lease=5");
        let l = limiter(&urls, &name, policy).await;
        assert!(l.acquire("k", 1, None).await.unwrap().allowed);
        assert_eq!(
            l.peek("k", 1, None).await.unwrap().remaining,
            4,
            "5 taken, 1 more peeked"
        );
        let now = tidegate::SystemClock.now_micros();
        let d = l.acquire("k", 5, Some(now)).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 0, "an explicit time decides exactly: {d:?}");
        for _ in 0..4 {
            assert!(
                l.acquire("k", 1, None).await.unwrap().allowed,
                "the slice still pays"
            );
        }
        assert!(!l.acquire("k", 1, None).await.unwrap().allowed);
    });
}

const CHILD: &str = "TIDEGATE_LEASE_CHILD";

/// Not a test of its own: the body of a child process of
/// `separate_processes_on_one_key_admit_at_most_the_limit`, which sets `CHILD` to
/// `URL NAME POLICY SEED RELEASE`. It drains the key and prints what it admitted (and
/// returned, when RELEASE is 1; 0 leaves its slice stranded, as a crash would).
#[test]
fn lease_child_process() {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let args: Vec<&str> = args.split(' ').collect();
    let [url, name, policy, seed, release] = args[..] else {
        panic!("bad {CHILD}: {args:?}");
    };
    let rt = runtime();
    rt.block_on(async {
        let l = limiter(&[url.to_string()], name, policy).await;
        let admitted = drain_key(&l, "hot", Rng(seed.parse().unwrap())).await;
        let back = if release == "1" {
            l.release_leases().await.unwrap()
        } else {
            0
        };
        println!("LEASE_CHILD admitted={admitted} returned={back}");
    });
}

#[test]
fn separate_processes_on_one_key_admit_at_most_the_limit() {
    let server = RedisServer::start();
    let (name, lease, limit) = (unique("lease_proc"), 40u64, 500u64);
    let policy = format!("fixed_window:{limit}/1h,lease={lease}");
    let exe = std::env::current_exe().unwrap();
    // Three processes at the same time; the first exits holding its slice, as a crash would.
    let spawned: Vec<_> = (0..3)
        .map(|i| {
            let release = if i == 0 { "0" } else { "1" };
            Command::new(&exe)
                .args([
                    "--exact",
                    "lease_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    CHILD,
                    format!("{} {name}b {policy} {} {release}", server.url(), 200 + i),
                )
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut admitted, mut returned) = (0u64, 0u64);
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.find("LEASE_CHILD").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("child's report in {text:?}"));
        let field = |k: &str| -> u64 {
            line.split(' ')
                .find_map(|f| f.strip_prefix(k))
                .unwrap()
                .parse()
                .unwrap()
        };
        admitted += field("admitted=");
        returned += field("returned=");
    }
    let bound = 3 * (lease - 1);
    assert!(admitted <= limit, "admitted {admitted} of {limit}");
    assert!(admitted + bound >= limit, "admitted {admitted} of {limit}");
    let rt = runtime();
    let remaining = rt.block_on(shared_remaining(
        &[server.url()],
        &format!("{name}b"),
        &policy,
        "hot",
    ));
    // The first child stranded its slice (fewer than `lease` units); the others returned theirs.
    assert_eq!(remaining, returned);
    assert!(admitted + returned + (lease - 1) >= limit);
}

#[test]
fn many_tasks_on_a_few_hot_keys_never_exceed_a_key_limit_under_stress() {
    const INSTANCES: usize = 3;
    const TASKS: usize = 48;
    const KEYS: usize = 3;
    let server = RedisServer::start();
    let rt = runtime();
    rt.block_on(async {
        let urls = vec![server.url()];
        let (name, policy, limit, lease) = (
            unique("lease_stress"),
            "fixed_window:300/1h,lease=9",
            300u64,
            9u64,
        );
        let admitted: Arc<Vec<AtomicU64>> =
            Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        let mut limiters = Vec::new();
        let mut handles = Vec::new();
        for i in 0..INSTANCES {
            let l = Arc::new(limiter(&urls, &name, policy).await);
            limiters.push(Arc::clone(&l));
            for t in 0..TASKS {
                let (l, admitted) = (Arc::clone(&l), Arc::clone(&admitted));
                let mut rng =
                    Rng(0xdead_beef
                        ^ ((i * TASKS + t + 1) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                handles.push(tokio::spawn(async move {
                    for _ in 0..150 {
                        let k = rng.below(KEYS as u64) as usize;
                        if l.acquire(&format!("k{k}"), 1, None).await.unwrap().allowed {
                            admitted[k].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        for h in handles {
            h.await.unwrap();
        }
        for l in &limiters {
            assert_eq!(l.stats().fallbacks, 0);
            l.release_leases().await.unwrap();
        }
        for k in 0..KEYS {
            let n = admitted[k].load(Ordering::Relaxed);
            assert!(n <= limit, "key {k}: admitted {n} of {limit}");
            assert!(
                n + INSTANCES as u64 * (lease - 1) >= limit,
                "key {k}: admitted {n}"
            );
            let key = format!("k{k}");
            assert_eq!(
                shared_remaining(&urls, &name, policy, &key).await,
                limit - n,
                "key {k}"
            );
        }
    });
}
