//! `ShouldRateLimit` end to end over loopback gRPC, on the memory backend and on a real
//! Redis, with an injected clock so that windows and resets are deterministic.

mod support;

use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use redis_test_server::RedisServer;
use support::*;
use tidegate::ManualClock;
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate_envoy::{Backend, Config, RateLimiter, Unit};
use tonic::transport::Channel;

const CONFIG: &str = r#"
domain: edge
descriptors:
  - key: client
    rate_limit: { unit: minute, requests_per_unit: 3 }
  - key: upload
    rate_limit: { unit: second, requests_per_unit: 10 }
  - key: health
    rate_limit: { unlimited: true }
  - key: path
    value: /api/*
    rate_limit: { unit: hour, requests_per_unit: 2 }
  - key: path
    rate_limit: { unit: hour, requests_per_unit: 100 }
  - key: file
    value: /img/*
    share_threshold: true
    rate_limit: { unit: hour, requests_per_unit: 2 }
  - key: trial
    shadow_mode: true
    rate_limit: { unit: minute, requests_per_unit: 1 }
  - key: search
    policy: "sliding_window:4/10s"
  - key: tenant
    value: acme
    descriptors:
      - key: user
        rate_limit: { name: per_user, unit: minute, requests_per_unit: 5 }
  - key: plan
    value: gold
    rate_limit: { name: gold_plan, unit: minute, requests_per_unit: 50, replaces: [{ name: per_user }] }
  - key: blocked
    rate_limit: { unit: second, requests_per_unit: 0 }
  - key: quota_a
    quota_mode: true
    rate_limit: { unit: minute, requests_per_unit: 1 }
  - key: quota_b
    quota_mode: true
    rate_limit: { unit: minute, requests_per_unit: 1 }
"#;

/// The two backends every behaviour is checked on.
enum Store {
    Memory,
    Redis(RedisServer),
}

impl Store {
    async fn backend(&self) -> Backend {
        match self {
            Store::Memory => Backend::memory(),
            Store::Redis(server) => {
                let store = RedisStore::connect(&[server.url()], RedisOptions::default())
                    .await
                    .unwrap();
                // A namespace per limiter, so that tests sharing a server stay apart.
                Backend::redis(store).namespace(&unique("t"))
            }
        }
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A limiter of CONFIG on `store` with a manual clock at `start_us`.
async fn limiter(store: &Store, clock: &ManualClock) -> RateLimiter {
    RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
        .backend(store.backend().await)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Runs `check` on memory and on a real Redis, each time with a manual clock at the start
/// of a day and a client of a served limiter of CONFIG on that clock.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(ManualClock, RateLimitServiceClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for store in [Store::Memory, Store::Redis(RedisServer::start())] {
        let clock = ManualClock::new(DAY_START_US);
        let client = serve_and_connect(&limiter(&store, &clock).await).await;
        check(clock, client).await;
    }
}

/// Three hits, then over with the reset at the next epoch minute, then a new window.
async fn n_hits_then_over_limit(store: Store) {
    {
        // 15 s into a minute.
        let clock = ManualClock::new(DAY_START_US + 15_000_000);
        let mut c = serve_and_connect(&limiter(&store, &clock).await).await;
        let req = || request("edge", vec![descriptor(&[("client", "alice")])]);
        for remaining in [2, 1, 0] {
            let r = call(&mut c, req()).await;
            assert_eq!(overall(&r), Code::Ok);
            assert_eq!(
                summary(&r.statuses[0]),
                (Code::Ok, Some(3), remaining, Some(45))
            );
        }
        let r = call(&mut c, req()).await;
        assert_eq!(overall(&r), Code::OverLimit);
        assert_eq!(
            summary(&r.statuses[0]),
            (Code::OverLimit, Some(3), 0, Some(45))
        );
        let limit = r.statuses[0].current_limit.as_ref().unwrap();
        assert_eq!(limit.unit, Unit::Minute.proto() as i32);
        // Another client has its own counter.
        let r = call(
            &mut c,
            request("edge", vec![descriptor(&[("client", "bob")])]),
        )
        .await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(3), 2, Some(45)));
        // 1 µs before the boundary: still over; at the boundary: a new window.
        clock.set_micros(DAY_START_US + 60_000_000 - 1);
        let r = call(&mut c, req()).await;
        assert_eq!(overall(&r), Code::OverLimit);
        let reset = r.statuses[0].duration_until_reset.unwrap();
        assert_eq!((reset.seconds, reset.nanos), (0, 1_000));
        clock.set_micros(DAY_START_US + 60_000_000);
        let r = call(&mut c, req()).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(3), 2, Some(60)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_hits_then_over_limit_with_the_reset_at_the_epoch_minute_boundary_in_memory() {
    n_hits_then_over_limit(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_hits_then_over_limit_with_the_reset_at_the_epoch_minute_boundary_on_redis() {
    n_hits_then_over_limit(Store::Redis(RedisServer::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_addend_charges_that_many_and_zero_per_descriptor_only_looks() {
    on_both(|clock, mut c| async move {
        let mut req = request("edge", vec![descriptor(&[("upload", "u")])]);
        req.hits_addend = 4;
        let r = call(&mut c, req.clone()).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 6, Some(1)));
        // Per-descriptor 0: looks without charging.
        let look = request("edge", vec![with_hits(descriptor(&[("upload", "u")]), 0)]);
        let r = call(&mut c, look.clone()).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 6, Some(1)));
        // Per-descriptor 6 beats the request's 4.
        let mut six = request("edge", vec![with_hits(descriptor(&[("upload", "u")]), 6)]);
        six.hits_addend = 4;
        let r = call(&mut c, six).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 0, Some(1)));
        let r = call(&mut c, look).await;
        assert_eq!(overall(&r), Code::OverLimit);
        // More hits than the limit: over, nothing charged.
        clock.advance(Duration::from_secs(1));
        req.hits_addend = 11;
        let r = call(&mut c, req).await;
        assert_eq!(
            summary(&r.statuses[0]),
            (Code::OverLimit, Some(10), 0, Some(1))
        );
        let r = call(
            &mut c,
            request("edge", vec![descriptor(&[("upload", "u")])]),
        )
        .await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 9, Some(1)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_override_replaces_the_configured_limit() {
    on_both(|_clock, mut c| async move {
        let d = with_limit(descriptor(&[("client", "carol")]), 1, Unit::Second);
        let r = call(&mut c, request("edge", vec![d.clone()])).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(1), 0, Some(1)));
        let r = call(&mut c, request("edge", vec![d.clone()])).await;
        assert_eq!(
            summary(&r.statuses[0]),
            (Code::OverLimit, Some(1), 0, Some(1))
        );
        assert_eq!(
            r.statuses[0].current_limit.as_ref().unwrap().unit,
            Unit::Second.proto() as i32
        );
        // An override applies even to a descriptor the configuration does not know,
        // but not in an unknown domain.
        let d = with_limit(descriptor(&[("nothing", "x")]), 2, Unit::Hour);
        let r = call(&mut c, request("edge", vec![d.clone()])).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(2), 1, Some(3600)));
        let r = call(&mut c, request("other", vec![d])).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, None, 0, None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaces_drops_the_replaced_rule_when_both_match() {
    on_both(|_clock, mut c| async move {
        let user = || descriptor(&[("tenant", "acme"), ("user", "dave")]);
        let gold = || descriptor(&[("plan", "gold")]);
        let r = call(&mut c, request("edge", vec![user(), gold()])).await;
        // per_user is replaced by gold_plan: no limit for it.
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, None, 0, None));
        assert_eq!(summary(&r.statuses[1]), (Code::Ok, Some(50), 49, Some(60)));
        assert_eq!(
            r.statuses[1].current_limit.as_ref().unwrap().name,
            "gold_plan"
        );
        // Alone, per_user applies.
        let r = call(&mut c, request("edge", vec![user()])).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(5), 4, Some(60)));
        assert_eq!(
            r.statuses[0].current_limit.as_ref().unwrap().name,
            "per_user"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_answers_ok_over_the_limit_and_unlimited_answers_max_remaining() {
    on_both(|_clock, mut c| async move {
        let req = || {
            request(
                "edge",
                vec![
                    descriptor(&[("trial", "t")]),
                    descriptor(&[("health", "h")]),
                ],
            )
        };
        let r = call(&mut c, req()).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(1), 0, Some(60)));
        let r = call(&mut c, req()).await;
        assert_eq!(overall(&r), Code::Ok);
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(1), 0, Some(60)));
        assert_eq!(summary(&r.statuses[1]), (Code::Ok, None, u32::MAX, None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_value_beats_the_key_alone_and_counts_per_value_unless_share_threshold() {
    on_both(|_clock, mut c| async move {
        let path = |p: &str| request("edge", vec![descriptor(&[("path", p)])]);
        for _ in 0..2 {
            let r = call(&mut c, path("/api/orders")).await;
            assert_eq!(overall(&r), Code::Ok);
        }
        let r = call(&mut c, path("/api/orders")).await;
        assert_eq!(
            summary(&r.statuses[0]),
            (Code::OverLimit, Some(2), 0, Some(3600))
        );
        // Another value under the same pattern has its own counter, as in
        // envoyproxy/ratelimit.
        let r = call(&mut c, path("/api/users")).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(2), 1, Some(3600)));
        let r = call(&mut c, path("/web")).await;
        assert_eq!(
            summary(&r.statuses[0]),
            (Code::Ok, Some(100), 99, Some(3600))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_rule_limits_with_a_sliding_window() {
    on_both(|clock, mut c| async move {
        let req = || request("edge", vec![descriptor(&[("search", "q")])]);
        for remaining in [3, 2, 1, 0] {
            let r = call(&mut c, req()).await;
            let s = &r.statuses[0];
            assert_eq!((overall(&r), s.limit_remaining), (Code::Ok, remaining));
            // A 10 s window is no protocol unit: requests_per_unit is the policy's
            // limit, the unit UNKNOWN.
            assert_eq!(s.current_limit.as_ref().unwrap().requests_per_unit, 4);
            assert_eq!(s.current_limit.as_ref().unwrap().unit, 0);
        }
        let r = call(&mut c, req()).await;
        assert_eq!(overall(&r), Code::OverLimit);
        // The sliding window frees capacity as the previous window's weight fades: at
        // 10 s the estimate is 4 × (10 - 0)/10 = 4, still over; at 12.5 s it is 3.
        clock.set_micros(DAY_START_US + 10_000_000);
        assert_eq!(overall(&call(&mut c, req()).await), Code::OverLimit);
        clock.set_micros(DAY_START_US + 12_500_000);
        let r = call(&mut c, req()).await;
        assert_eq!((overall(&r), r.statuses[0].limit_remaining), (Code::Ok, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_descriptors_are_answered_in_order_and_each_is_charged() {
    on_both(|_clock, mut c| async move {
        let req = || {
            request(
                "edge",
                vec![
                    descriptor(&[("upload", "u")]),
                    descriptor(&[("unknown", "x")]),
                    descriptor(&[("blocked", "b")]),
                ],
            )
        };
        let r = call(&mut c, req()).await;
        assert_eq!(overall(&r), Code::OverLimit);
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 9, Some(1)));
        assert_eq!(summary(&r.statuses[1]), (Code::Ok, None, 0, None));
        assert_eq!(
            summary(&r.statuses[2]),
            (Code::OverLimit, Some(0), 0, Some(1))
        );
        // The first descriptor was charged although the request was over.
        let r = call(&mut c, req()).await;
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 8, Some(1)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_charges_no_descriptor_when_one_is_over() {
    let clock = ManualClock::new(DAY_START_US);
    let limiter = RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
        .clock(clock.clone())
        .all_or_nothing(true)
        .build()
        .unwrap();
    let mut c = serve_and_connect(&limiter).await;
    let both = || {
        request(
            "edge",
            vec![
                descriptor(&[("upload", "u")]),
                descriptor(&[("blocked", "b")]),
            ],
        )
    };
    for _ in 0..3 {
        let r = call(&mut c, both()).await;
        assert_eq!(overall(&r), Code::OverLimit);
        assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 9, Some(1)));
    }
    let r = call(
        &mut c,
        request("edge", vec![descriptor(&[("upload", "u")])]),
    )
    .await;
    assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(10), 9, Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_mode_fails_the_request_only_when_every_quota_descriptor_is_over() {
    let clock = ManualClock::new(DAY_START_US);
    let limiter = limiter(&Store::Memory, &clock).await;
    let mut c = serve_and_connect(&limiter).await;
    let a = || descriptor(&[("quota_a", "x")]);
    let b = || descriptor(&[("quota_b", "x")]);
    call(&mut c, request("edge", vec![a()])).await;
    let r = call(&mut c, request("edge", vec![a(), b()])).await;
    assert_eq!(overall(&r), Code::Ok);
    assert_eq!(Code::try_from(r.statuses[0].code).unwrap(), Code::OverLimit);
    let r = call(&mut c, request("edge", vec![a(), b()])).await;
    assert_eq!(overall(&r), Code::OverLimit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument_and_unknown_ones_ok_without_a_limit() {
    let clock = ManualClock::new(DAY_START_US);
    let mut c = serve_and_connect(&limiter(&Store::Memory, &clock).await).await;
    for (req, message) in [
        (
            request("", vec![descriptor(&[("client", "a")])]),
            "domain must not be empty",
        ),
        (request("edge", vec![]), "descriptor list must not be empty"),
        (request("edge", vec![descriptor(&[("", "a")])]), "empty key"),
        (request("edge", vec![descriptor(&[])]), "at least one entry"),
    ] {
        let e = c.should_rate_limit(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains(message), "{}", e.message());
    }
    let r = call(
        &mut c,
        request("nowhere", vec![descriptor(&[("client", "a")])]),
    )
    .await;
    assert_eq!(overall(&r), Code::Ok);
    assert_eq!(summary(&r.statuses[0]), (Code::Ok, None, 0, None));
}

/// Two services on the Redis at `urls` (a node or a cluster) share a 10/s limit exactly.
async fn two_services_share_a_limit(urls: Vec<String>) {
    let clock = ManualClock::new(DAY_START_US);
    let namespace = unique("shared");
    let mut clients = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::connect(&urls, RedisOptions::default())
            .await
            .unwrap();
        let limiter = RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
            .backend(Backend::redis(store).namespace(&namespace))
            .clock(clock.clone())
            .build()
            .unwrap();
        clients.push(serve_and_connect(&limiter).await);
    }
    // 10 per second shared: 13 calls alternating between the two services.
    let mut admitted = 0;
    let mut remaining = Vec::new();
    for i in 0..13 {
        let r = call(
            &mut clients[i % 2],
            request("edge", vec![descriptor(&[("upload", "shared")])]),
        )
        .await;
        if overall(&r) == Code::Ok {
            admitted += 1;
            remaining.push(r.statuses[0].limit_remaining);
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(remaining, (0..10).rev().collect::<Vec<u32>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_redis_share_a_descriptors_limit_exactly() {
    let server = RedisServer::start();
    two_services_share_a_limit(vec![server.url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_a_redis_cluster_share_a_descriptors_limit_exactly() {
    let cluster = redis_test_server::RedisCluster::start();
    two_services_share_a_limit(cluster.urls()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_answers_come_within_the_timeout_by_the_failure_policy() {
    use tidegate::store::FailurePolicy;
    let server = RedisServer::start();
    let timeout = Duration::from_millis(100);
    // Set field by field: the options may gain fields (non-exhaustive).
    #[allow(clippy::field_reassign_with_default)]
    let options = {
        let mut options = RedisOptions::default();
        options.timeout = timeout;
        options
    };
    let mut clients = Vec::new();
    for on_error in [
        FailurePolicy::FailOpen,
        FailurePolicy::FailClosed,
        FailurePolicy::Local,
    ] {
        let store = RedisStore::connect(&[server.url()], options.clone())
            .await
            .unwrap();
        let limiter = RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
            .backend(
                Backend::redis(store)
                    .namespace(&unique("down"))
                    .on_error(on_error),
            )
            .build()
            .unwrap();
        clients.push((on_error, serve_and_connect(&limiter).await));
    }
    server.kill();
    for (on_error, c) in &mut clients {
        for i in 0..5 {
            let started = std::time::Instant::now();
            let r = call(c, request("edge", vec![descriptor(&[("client", "z")])])).await;
            let took = started.elapsed();
            // Within the timeout, plus room for a loaded machine (without it a call would
            // wait for reconnection: seconds).
            assert!(took < timeout * 5, "{on_error:?} call {i} took {took:?}");
            let expected = match on_error {
                FailurePolicy::FailOpen => Code::Ok,
                FailurePolicy::FailClosed => Code::OverLimit,
                // Local: the in-memory stand-in counts 3 per minute.
                _ if i < 3 => Code::Ok,
                _ => Code::OverLimit,
            };
            assert_eq!(overall(&r), expected, "{on_error:?} call {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_memory_store_answers_unavailable_by_default() {
    use tidegate::store::memory::OnFull;
    let clock = ManualClock::new(DAY_START_US);
    let build = |on_full| {
        RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
            .backend(Backend::memory_with(2, on_full))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let mut reject = serve_and_connect(&build(OnFull::Reject)).await;
    let mut evict = serve_and_connect(&build(OnFull::Evict)).await;
    for client in ["a", "b"] {
        let req = request("edge", vec![descriptor(&[("client", client)])]);
        assert_eq!(overall(&call(&mut reject, req.clone()).await), Code::Ok);
        assert_eq!(overall(&call(&mut evict, req).await), Code::Ok);
    }
    let third = request("edge", vec![descriptor(&[("client", "c")])]);
    let e = reject.should_rate_limit(third.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(overall(&call(&mut evict, third).await), Code::Ok);
}

/// Redis's clock (`TIME`), in Unix µs.
fn redis_now_us(server: &RedisServer) -> u64 {
    let redis_test_server::Reply::Array(Some(parts)) = server.command(&["TIME"]).unwrap() else {
        panic!("TIME: not an array");
    };
    let n = |i: usize| parts[i].as_text().unwrap().parse::<u64>().unwrap();
    n(0) * 1_000_000 + n(1)
}

/// A `rate_limit` rule on Redis with no injected clock: one key per descriptor (no window
/// in its name) and the window is the epoch minute of Redis's own clock, the same for
/// every instance whatever their clocks say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_rule_on_redis_is_one_key_per_descriptor_windowed_by_redis_clock() {
    const MINUTE_US: u64 = 60_000_000;
    let server = RedisServer::start();
    let store = RedisStore::connect(&[server.url()], RedisOptions::default())
        .await
        .unwrap();
    let limiter = RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
        .backend(Backend::redis(store).namespace("ns"))
        .build()
        .unwrap();
    let mut c = serve_and_connect(&limiter).await;
    let mut remaining = 3;
    for _ in 0..2 {
        let r = call(
            &mut c,
            request("edge", vec![descriptor(&[("client", "alice")])]),
        )
        .await;
        let after = redis_now_us(&server);
        remaining -= 1;
        assert_eq!(r.statuses[0].limit_remaining, remaining);
        let reset = r.statuses[0].duration_until_reset.unwrap();
        let reset_us = reset.seconds as u64 * 1_000_000 + reset.nanos as u64 / 1_000;
        // The reset was the time to the next minute of Redis's clock when the script ran,
        // a moment before `after` (modulo a minute, should a boundary fall in between).
        let to_boundary = MINUTE_US - after % MINUTE_US;
        let lag = (reset_us + MINUTE_US - to_boundary) % MINUTE_US;
        assert!(
            lag < 5_000_000,
            "reset {reset_us} µs, to Redis's boundary {to_boundary} µs"
        );
    }
    let keys = server.cli(&["KEYS", "ns:*"]);
    assert_eq!(
        keys.trim(),
        "ns:envoy:{=edge|client=alice}:0:fixed_window",
        "one key, no window number in it"
    );
    let pttl: u64 = server.cli(&["PTTL", keys.trim()]).trim().parse().unwrap();
    assert!(
        pttl <= MINUTE_US / 1_000,
        "the key expires by the end of its window: {pttl} ms"
    );
}
