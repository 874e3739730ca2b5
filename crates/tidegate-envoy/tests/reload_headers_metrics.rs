//! Reloading a changed configuration, response headers, and statistics.

mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use support::*;
use tidegate::ManualClock;
use tidegate_envoy::{Backend, Config, HeaderOptions, RateLimiter};

fn config_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidegate-envoy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const V1: &str = "domain: app\ndescriptors:\n  - key: client\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n  - key: other\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n";
const V2: &str = "domain: app\ndescriptors:\n  - key: client\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n  - key: other\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_a_changed_config_keeps_unchanged_counters_and_keeps_the_old_one_on_error() {
    let dir = config_dir("reload");
    std::fs::write(dir.join("app.yaml"), V1).unwrap();
    let clock = ManualClock::new(DAY_START_US);
    let limiter = RateLimiter::builder(Config::load(&dir).unwrap())
        .backend(Backend::memory())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut c = serve_and_connect(&limiter).await;
    let client = || request("app", vec![descriptor(&[("client", "a")])]);
    let other = || request("app", vec![descriptor(&[("other", "a")])]);
    call(&mut c, client()).await;
    assert_eq!(call(&mut c, other()).await.statuses[0].limit_remaining, 4);

    std::fs::write(dir.join("app.yaml"), V2).unwrap();
    limiter.reload().unwrap();
    // Unchanged rule: its counter survives (1 left of 2).
    assert_eq!(call(&mut c, client()).await.statuses[0].limit_remaining, 0);
    // Changed rule: the new limit, a new counter.
    let r = call(&mut c, other()).await;
    assert_eq!(summary(&r.statuses[0]), (Code::Ok, Some(1), 0, Some(60)));

    std::fs::write(
        dir.join("app.yaml"),
        "domain: app\ndescriptors:\n  - key: other\n    rate_limit: { unit: eon }\n",
    )
    .unwrap();
    let e = limiter.reload().unwrap_err().to_string();
    assert!(
        e.contains("app.yaml") && e.contains("invalid rate limit unit 'eon'"),
        "{e}"
    );
    // The old configuration still answers.
    assert_eq!(overall(&call(&mut c, other()).await), Code::OverLimit);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_describe_the_descriptor_closest_to_its_limit_when_asked() {
    let clock = ManualClock::new(DAY_START_US + 10_000_000);
    let config = || Config::from_yaml("app.yaml", V1).unwrap();
    let plain = RateLimiter::builder(config())
        .clock(clock.clone())
        .build()
        .unwrap();
    let with = RateLimiter::builder(config())
        .clock(clock.clone())
        .headers(HeaderOptions::default().ietf(true).x_ratelimit(true))
        .build()
        .unwrap();
    let req = || {
        request(
            "app",
            vec![
                descriptor(&[("other", "a")]),
                descriptor(&[("client", "a")]),
            ],
        )
    };
    let mut c = serve_and_connect(&plain).await;
    assert!(call(&mut c, req()).await.response_headers_to_add.is_empty());
    let mut c = serve_and_connect(&with).await;
    let r = call(&mut c, req()).await;
    let headers: Vec<(String, String)> = r
        .response_headers_to_add
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    let h = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        headers,
        [
            h("RateLimit-Policy", "\"ratelimit\";q=2;w=60"),
            h("RateLimit", "\"ratelimit\";r=1;t=50"),
            h("X-RateLimit-Limit", "2"),
            h("X-RateLimit-Remaining", "1"),
            h("X-RateLimit-Reset", "50"),
        ]
    );
}

#[test]
fn statistics_count_hits_within_near_and_over_the_limit_per_domain_and_rule() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let clock = ManualClock::new(DAY_START_US);
            let config = "domain: app\ndescriptors:\n  - key: client\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n  - key: user\n    detailed_metric: true\n    shadow_mode: true\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n";
            let limiter = RateLimiter::builder(Config::from_yaml("app.yaml", config).unwrap())
                .clock(clock)
                .build()
                .unwrap();
            for _ in 0..7 {
                limiter
                    .should_rate_limit(&request("app", vec![descriptor(&[("client", "a")])]))
                    .await
                    .unwrap();
            }
            for _ in 0..2 {
                limiter
                    .should_rate_limit(&request("app", vec![descriptor(&[("user", "bo")])]))
                    .await
                    .unwrap();
            }
        })
    });
    let mut counts = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key.key().labels().map(|l| l.value().to_string()).collect();
        if let DebugValue::Counter(n) = value {
            counts.insert((key.key().name().to_string(), labels.join(" ")), n);
        }
    }
    let get = |name: &str, labels: &str| {
        counts
            .get(&(format!("tidegate_envoy_{name}"), labels.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(get("total_hits", "app app.client"), 7);
    assert_eq!(get("within_limit", "app app.client"), 5);
    // Only the 5th hit (5 of 5 used) is past 80 % (4 of 5 is not).
    assert_eq!(get("near_limit", "app app.client"), 1);
    assert_eq!(get("over_limit", "app app.client"), 2);
    // detailed_metric: the value is in the key; shadow mode counted.
    assert_eq!(get("total_hits", "app app.user_bo"), 2);
    assert_eq!(get("over_limit", "app app.user_bo"), 1);
    assert_eq!(get("shadow_mode", "app app.user_bo"), 1);
}
