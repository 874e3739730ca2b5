//! The Envoy front end: envoyproxy/ratelimit's YAML, and `ShouldRateLimit` requests as
//! protobuf (gRPC's body) and as JSON (`POST /json`).

use std::sync::OnceLock;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use prost::Message;
use tidegate_envoy::proto::RateLimitRequest;
use tidegate_envoy::{Backend, Config, RateLimiter};

use crate::http::ENVOY_YAML;
use crate::runtime;

/// Reads the input as a YAML configuration; an accepted one builds a limiter that
/// answers a request for each of its rules.
pub fn yaml_config(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(config) = Config::from_yaml("fuzz.yaml", text) else {
        return;
    };
    let requests: Vec<RateLimitRequest> = config
        .domains()
        .map(|domain| RateLimitRequest {
            domain: domain.to_string(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "key".into(),
                    value: "value".into(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let Ok(limiter) = RateLimiter::builder(config)
        .backend(Backend::memory())
        .build()
    else {
        return;
    };
    for request in &requests {
        answer(&limiter, request);
    }
}

/// Reads the input as a protobuf `RateLimitRequest` (what a gRPC call carries) and
/// asks a limiter over a fixed configuration; the JSON of `POST /json` goes through
/// the `http` target.
pub fn request(data: &[u8]) {
    static LIMITER: OnceLock<RateLimiter> = OnceLock::new();
    let limiter = LIMITER.get_or_init(|| {
        let config = Config::from_yaml("fuzz.yaml", ENVOY_YAML).expect("a valid configuration");
        RateLimiter::builder(config)
            .backend(Backend::memory())
            .build()
            .expect("a limiter")
    });
    if let Ok(request) = RateLimitRequest::decode(data) {
        answer(limiter, &request);
    }
}

fn answer(limiter: &RateLimiter, request: &RateLimitRequest) {
    runtime().block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), limiter.should_rate_limit(request))
            .await
            .expect("answered within 5 s");
    });
}
