//! The layer on the Redis limiter over real HTTP: a real redis-server on a free loopback
//! port, so every decision is waited for (the layer's pending path), concurrent
//! requests included.

mod common;

use axum::Router;
use axum::routing::get;
use redis_test_server::RedisServer;
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate::{Policy, PolicySet};
use tidegate_http::RateLimitLayer;

#[tokio::test]
async fn redis_decisions_are_waited_for_and_answer_with_the_same_headers_and_429() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&[redis.url()], RedisOptions::default())
        .await
        .unwrap();
    let policy: Policy = "fixed_window:5/1m".parse().unwrap();
    let limiter = store
        .limiter("layer-test", PolicySet::from(policy))
        .build()
        .unwrap();
    let layer = RateLimitLayer::builder("api", limiter, policy)
        .legacy_headers(true)
        .build();
    let url = common::serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await
        + "/";
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // Five at once: each admitted, `remaining` 4 down to 0 shared out among them.
    let tasks: Vec<_> = (0..5)
        .map(|_| tokio::spawn(client.get(&url).send()))
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    let mut remaining = Vec::new();
    for resp in answers {
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["ratelimit-policy"], r#""api";q=5;w=60"#);
        assert_eq!(h["x-ratelimit-limit"], "5");
        let limit = h["ratelimit"].to_str().unwrap().to_owned();
        let r: u64 = limit
            .strip_prefix(r#""api";r="#)
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(h["x-ratelimit-remaining"], r.to_string().as_str());
        remaining.push(r);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3, 4]);

    let denied = client.get(&url).send().await.unwrap();
    assert_eq!(denied.status(), 429);
    let h = denied.headers().clone();
    assert_eq!(h["ratelimit-policy"], r#""api";q=5;w=60"#);
    assert!(
        h["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(r#""api";r=0;t="#)
    );
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(
        denied.text().await.unwrap(),
        format!(
            r#"{{"error":"Too Many Requests","message":"Too many requests, please try again later.","retry_after":{retry},"limit":5,"remaining":0}}"#
        )
    );
}
