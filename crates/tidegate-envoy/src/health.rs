//! gRPC health checking (`grpc.health.v1.Health`, `Check` and `Watch`) for the rate
//! limit service's gRPC listener, as envoyproxy/ratelimit serves it: `SERVING` while the
//! service runs, `NOT_SERVING` from the moment shutdown begins.
//!
//! Three service names answer: `""` (the whole server, the gRPC convention),
//! `ratelimit` (the name envoyproxy/ratelimit registers) and
//! `envoy.service.ratelimit.v3.RateLimitService`; any other name is `NOT_FOUND`. A
//! `Watch` stream gets the status at once, then each change; after it has sent
//! `NOT_SERVING` once shutdown has begun it ends, so that an open stream does not hold
//! a graceful shutdown until its timeout.

use std::pin::Pin;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
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
/// [`HealthStatus::shutting_down`] when shutdown begins.
#[derive(Debug, Clone)]
pub struct HealthStatus {
    reporter: HealthReporter,
    stopping: watch::Sender<bool>,
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
            stopping: watch::channel(false).0,
        }
    }

    /// The `grpc.health.v1.Health` service, for
    /// `tonic::transport::Server::builder().add_service(...)`.
    pub fn service(&self) -> HealthServer<HealthGrpc> {
        HealthServer::new(HealthGrpc {
            inner: HealthService::from_health_reporter(self.reporter.clone()),
            stopping: self.stopping.subscribe(),
        })
    }

    /// Shutdown begins: every name turns `NOT_SERVING` (watchers are told, then their
    /// streams end). Call it before the server stops taking calls.
    pub async fn shutting_down(&self) {
        self.stopping.send_replace(true);
        for name in SERVICE_NAMES {
            self.reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    }
}

/// The tonic service of [`HealthStatus::service`]: tonic-health's `Check` and `Watch`,
/// with `Watch` streams ending once they have told `NOT_SERVING` during shutdown.
#[derive(Debug)]
pub struct HealthGrpc {
    inner: HealthService,
    stopping: watch::Receiver<bool>,
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
        Ok(Response::new(WatchStream {
            inner,
            stopping: self.stopping.clone(),
            done: false,
        }))
    }
}

/// A `Watch` stream: the status, then each change, until `NOT_SERVING` has been sent
/// during shutdown.
pub struct WatchStream {
    inner: tonic_health::server::WatchStream,
    stopping: watch::Receiver<bool>,
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
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(response))) = &next
            && response.status == WireStatus::NotServing as i32
            && *self.stopping.borrow()
        {
            self.done = true;
        }
        next
    }
}
