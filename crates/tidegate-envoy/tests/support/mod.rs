//! Shared setup: a limiter served over loopback gRPC, its client, and request builders.
#![allow(dead_code)]

use std::net::SocketAddr;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use tidegate_envoy::{RateLimiter, Unit};
use tonic::transport::Channel;

/// A Unix time (µs) at a day boundary, hence at every unit's boundary but week's, month's
/// and year's.
pub const DAY_START_US: u64 = 1_764_806_400_000_000;

/// Serves `limiter` on a free loopback port; returns its address.
pub async fn serve(limiter: &RateLimiter) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = limiter.grpc_service();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

/// A client of the server at `addr`.
pub async fn client(addr: SocketAddr) -> RateLimitServiceClient<Channel> {
    RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// Serves `limiter` and connects to it.
pub async fn serve_and_connect(limiter: &RateLimiter) -> RateLimitServiceClient<Channel> {
    client(serve(limiter).await).await
}

/// A descriptor of `entries`.
pub fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

/// A descriptor with its own `hits_addend`.
pub fn with_hits(mut d: RateLimitDescriptor, hits: u64) -> RateLimitDescriptor {
    d.hits_addend = Some(UInt64Value { value: hits });
    d
}

/// A descriptor with a `limit` override.
pub fn with_limit(mut d: RateLimitDescriptor, rpu: u32, unit: Unit) -> RateLimitDescriptor {
    d.limit = Some(RateLimitOverride {
        requests_per_unit: rpu,
        unit: unit.proto() as i32,
    });
    d
}

/// A request for `domain` with `descriptors`.
pub fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_string(),
        descriptors,
        hits_addend: 0,
    }
}

/// Sends one request.
pub async fn call(
    client: &mut RateLimitServiceClient<Channel>,
    request: RateLimitRequest,
) -> RateLimitResponse {
    client
        .should_rate_limit(request)
        .await
        .unwrap()
        .into_inner()
}

/// A status's `(code, requests_per_unit, limit_remaining, seconds until reset)`.
pub fn summary(s: &DescriptorStatus) -> (Code, Option<u32>, u32, Option<i64>) {
    (
        Code::try_from(s.code).unwrap(),
        s.current_limit.as_ref().map(|l| l.requests_per_unit),
        s.limit_remaining,
        s.duration_until_reset.as_ref().map(|d| d.seconds),
    )
}

/// The response's overall code.
pub fn overall(r: &RateLimitResponse) -> Code {
    Code::try_from(r.overall_code).unwrap()
}
