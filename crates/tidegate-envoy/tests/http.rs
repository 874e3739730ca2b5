//! `POST /json` and `GET /healthcheck` over loopback HTTP: the same answers as gRPC.

mod support;

use support::*;
use tidegate::ManualClock;
use tidegate_envoy::{Config, RateLimiter, json};

const CONFIG: &str = r#"
domain: web
descriptors:
  - key: client
    rate_limit: { name: per_client, unit: minute, requests_per_unit: 2 }
  - key: health
    rate_limit: { unlimited: true }
  - key: search
    policy: "gcra:2/1s"
"#;

fn limiter(clock: &ManualClock) -> RateLimiter {
    RateLimiter::builder(Config::from_yaml("web.yaml", CONFIG).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Serves `limiter.router()` on a free loopback port; returns its base URL.
async fn serve_http(limiter: &RateLimiter) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = limiter.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_answers_as_grpc_does_with_200_then_429() {
    let clock = ManualClock::new(DAY_START_US + 20_000_000);
    let over_grpc = limiter(&clock);
    let over_json = limiter(&clock);
    let mut grpc = serve_and_connect(&over_grpc).await;
    let base = serve_http(&over_json).await;
    let http = reqwest::Client::new();
    let body = r#"{"domain":"web","descriptors":[
        {"entries":[{"key":"client","value":"ann"}]},
        {"entries":[{"key":"health","value":"x"}]},
        {"entries":[{"key":"search","value":"q"}],"hitsAddend":"1"},
        {"entries":[{"key":"nothing","value":"y"}]}]}"#;
    let mut statuses = Vec::new();
    for step in 0..4 {
        let expected = call(&mut grpc, json::parse_request(body.as_bytes()).unwrap()).await;
        let r = http
            .post(format!("{base}/json"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(text, json::write_response(&expected), "step {step}");
        statuses.push(status);
        if step == 0 {
            assert_eq!(
                text,
                r#"{"overallCode":"OK","statuses":[{"code":"OK","currentLimit":{"name":"per_client","requestsPerUnit":2,"unit":"MINUTE"},"limitRemaining":1,"durationUntilReset":"40s"},{"code":"OK","limitRemaining":4294967295},{"code":"OK","currentLimit":{"requestsPerUnit":2,"unit":"SECOND"},"limitRemaining":1,"durationUntilReset":"0.500s"},{"code":"OK"}]}"#
            );
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_requests_get_400_and_the_healthcheck_ok() {
    let clock = ManualClock::new(DAY_START_US);
    let base = serve_http(&limiter(&clock)).await;
    let http = reqwest::Client::new();
    for body in [
        "not json",
        r#"{"domain":"web","unknownField":1}"#,
        r#"{"domain":"","descriptors":[{"entries":[{"key":"client","value":"a"}]}]}"#,
        r#"{"domain":"web","descriptors":[]}"#,
    ] {
        let r = http
            .post(format!("{base}/json"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
    }
    let r = http
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "OK");
}
