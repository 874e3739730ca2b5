//! gRPC health checking (`grpc.health.v1.Health`) beside `ShouldRateLimit` on one
//! loopback tonic server, called with the generated health client: `Check` and `Watch`,
//! `SERVING` then `NOT_SERVING` once shutdown begins, and `Watch` streams that end when
//! the server stops so that its graceful shutdown completes.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tidegate_envoy::health::SERVICE_NAMES;
use tidegate_envoy::health::proto::health_check_response::ServingStatus;
use tidegate_envoy::health::proto::health_client::HealthClient;
use tidegate_envoy::health::proto::{HealthCheckRequest, HealthCheckResponse};
use tidegate_envoy::{Backend, Config, HealthStatus, RateLimiter};
use tokio_stream::StreamExt;
use tonic::Streaming;
use tonic::transport::Channel;

const CONFIG: &str = "\
domain: edge
descriptors:
  - key: client
    rate_limit: { unit: minute, requests_per_unit: 3 }
";

const SERVING: i32 = ServingStatus::Serving as i32;
const NOT_SERVING: i32 = ServingStatus::NotServing as i32;

/// A served limiter with its health service, stopping gracefully once `stop` fires; the
/// task ends when the server has stopped.
struct Served {
    addr: SocketAddr,
    health: HealthStatus,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

async fn serve_with_health() -> Served {
    let limiter = RateLimiter::builder(Config::from_yaml("edge.yaml", CONFIG).unwrap())
        .backend(Backend::memory())
        .build()
        .unwrap();
    let health = HealthStatus::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (grpc, health_service) = (limiter.grpc_service(), health.service());
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(grpc)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    Served {
        addr,
        health,
        stop,
        server,
    }
}

async fn health_client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<i32, tonic::Status> {
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

async fn watch(
    client: &mut HealthClient<Channel>,
    service: &str,
) -> Streaming<HealthCheckResponse> {
    client
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The next message of a `Watch` stream (at most 10 s): `None` when it ended.
async fn next(stream: &mut Streaming<HealthCheckResponse>) -> Option<i32> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a Watch message or the stream's end within 10 s")
        .map(|r| r.unwrap().status)
}

#[tokio::test]
async fn check_answers_serving_for_the_server_ratelimit_and_the_service_name() {
    let served = serve_with_health().await;
    let mut hc = health_client(served.addr).await;
    assert_eq!(
        SERVICE_NAMES,
        [
            "",
            "ratelimit",
            "envoy.service.ratelimit.v3.RateLimitService"
        ]
    );
    for name in SERVICE_NAMES {
        assert_eq!(check(&mut hc, name).await.unwrap(), SERVING, "{name:?}");
    }
    // ShouldRateLimit is served beside it.
    let mut rls = client(served.addr).await;
    let response = rls
        .should_rate_limit(request("edge", vec![descriptor(&[("client", "a")])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.statuses[0].limit_remaining, 2);
}

#[tokio::test]
async fn check_of_an_unknown_service_name_is_not_found() {
    let served = serve_with_health().await;
    let mut hc = health_client(served.addr).await;
    let status = check(&mut hc, "no.such.Service").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn check_answers_not_serving_once_shutdown_begins() {
    let served = serve_with_health().await;
    let mut hc = health_client(served.addr).await;
    assert_eq!(check(&mut hc, "").await.unwrap(), SERVING);
    served.health.shutting_down().await;
    for name in SERVICE_NAMES {
        assert_eq!(check(&mut hc, name).await.unwrap(), NOT_SERVING, "{name:?}");
    }
}

#[tokio::test]
async fn watch_sends_serving_then_not_serving_at_shutdown_and_ends_when_the_server_stops() {
    let served = serve_with_health().await;
    let mut hc = health_client(served.addr).await;
    let mut whole = watch(&mut hc, "").await;
    let mut ratelimit = watch(&mut hc, "ratelimit").await;
    assert_eq!(next(&mut whole).await, Some(SERVING));
    assert_eq!(next(&mut ratelimit).await, Some(SERVING));

    // What serve does when shutdown begins: health first, streams stay open...
    served.health.shutting_down().await;
    assert_eq!(next(&mut whole).await, Some(NOT_SERVING));
    let open = tokio::time::timeout(Duration::from_millis(300), whole.next()).await;
    assert!(open.is_err(), "open until close: {open:?}");
    // ... then they end as the server stops.
    served.health.close();
    served.stop.send(()).unwrap();
    assert_eq!(next(&mut whole).await, None, "the stream ends on close");
    assert_eq!(next(&mut ratelimit).await, Some(NOT_SERVING));
    assert_eq!(next(&mut ratelimit).await, None);
    // The open streams did not hold the graceful shutdown.
    tokio::time::timeout(Duration::from_secs(10), served.server)
        .await
        .expect("the server stops within 10 s although two Watch streams were open")
        .unwrap();
}

#[tokio::test]
async fn a_watch_opened_while_serving_stays_open_without_a_change() {
    let served = serve_with_health().await;
    let mut hc = health_client(served.addr).await;
    let mut stream = watch(&mut hc, "").await;
    assert_eq!(next(&mut stream).await, Some(SERVING));
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(
        quiet.is_err(),
        "no message and no end without a change: {quiet:?}"
    );
}

#[tokio::test]
async fn shutting_down_twice_tells_a_watch_stream_once() {
    let served = serve_with_health().await;
    let mut hc = health_client(served.addr).await;
    let mut stream = watch(&mut hc, "ratelimit").await;
    assert_eq!(next(&mut stream).await, Some(SERVING));
    served.health.shutting_down().await;
    served.health.shutting_down().await;
    served.health.close();
    assert_eq!(next(&mut stream).await, Some(NOT_SERVING));
    assert_eq!(next(&mut stream).await, None);
}
