//! gRPC health checking (`grpc.health.v1.Health`, `Check` and `Watch`) for the rate
//! limit service's gRPC listener, as envoyproxy/ratelimit serves it: `SERVING` while the
//! service runs, `NOT_SERVING` from the moment shutdown begins.
//!
//! Three service names answer: `""` (the whole server, the gRPC convention),
//! `ratelimit` (the name envoyproxy/ratelimit registers) and
//! `envoy.service.ratelimit.v3.RateLimitService`; any other name is `NOT_FOUND`. A
//! `Watch` stream gets the status at once, then each change; it ends on
//! [`HealthStatus::close`] (once it has sent every change), so that an open stream does
//! not hold a graceful shutdown until its timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use crate::grpc::GrpcService;

/// The health client's generated types (`grpc.health.v1`), re-exported for clients and
/// tests.
pub use tonic_health::pb as proto;

/// The name envoyproxy/ratelimit registers its health status under.
pub const RATELIMIT_SERVICE_NAME: &str = "ratelimit";

/// The service names whose status [`HealthStatus`] reports: the whole server (`""`),
/// envoyproxy/ratelimit's `ratelimit`, and the rate limit service's own name.
pub const SERVICE_NAMES: [&str; 3] = [
    "",
    RATELIMIT_SERVICE_NAME,
    <RateLimitServiceServer<GrpcService> as NamedService>::NAME,
];

/// The health of the rate limit service: [`HealthStatus::service`] to add to the tonic
/// server beside [`RateLimiter::grpc_service`](crate::RateLimiter::grpc_service),
/// [`HealthStatus::shutting_down`] when shutdown begins, [`HealthStatus::close`] when
/// the server stops taking calls.
#[derive(Debug, Clone)]
pub struct HealthStatus {
    reporter: HealthReporter,
    /// Set by the first [`HealthStatus::shutting_down`] (later calls change nothing).
    not_serving: Arc<AtomicBool>,
    closed: watch::Sender<bool>,
}

impl HealthStatus {
    /// Every name of [`SERVICE_NAMES`] `SERVING`.
    pub async fn new() -> HealthStatus {
        let reporter = HealthReporter::new();
        for name in SERVICE_NAMES {
            reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        HealthStatus {
            reporter,
            not_serving: Arc::new(AtomicBool::new(false)),
            closed: watch::channel(false).0,
        }
    }

    /// The `grpc.health.v1.Health` service, for
    /// `tonic::transport::Server::builder().add_service(...)`.
    pub fn service(&self) -> HealthServer<HealthGrpc> {
        HealthServer::new(HealthGrpc {
            inner: HealthService::from_health_reporter(self.reporter.clone()),
            closed: self.closed.subscribe(),
        })
    }

    /// Shutdown begins: every name turns `NOT_SERVING` (open `Watch` streams are told,
    /// once however often it is called).
    pub async fn shutting_down(&self) {
        if self.not_serving.swap(true, Ordering::SeqCst) {
            return;
        }
        for name in SERVICE_NAMES {
            self.reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    }

    /// The server stops taking calls: every `Watch` stream ends, once it has sent the
    /// changes before this call (call [`HealthStatus::shutting_down`] first).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// The tonic service of [`HealthStatus::service`]: tonic-health's `Check` and `Watch`,
/// with `Watch` streams ending on [`HealthStatus::close`].
#[derive(Debug)]
pub struct HealthGrpc {
    inner: HealthService,
    closed: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Health for HealthGrpc {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let inner = self.inner.watch(request).await?.into_inner();
        let mut closed = self.closed.clone();
        Ok(Response::new(WatchStream {
            inner,
            closed: Box::pin(async move {
                let _ = closed.wait_for(|c| *c).await;
            }),
            done: false,
        }))
    }
}

/// A `Watch` stream: the status, then each change, until [`HealthStatus::close`].
pub struct WatchStream {
    inner: tonic_health::server::WatchStream,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("done", &self.done)
            .finish()
    }
}

impl tokio_stream::Stream for WatchStream {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A change first, so that the last one (NOT_SERVING) is sent before the end.
        if let Poll::Ready(next) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(next);
        }
        if self.closed.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}
