//! Why a server could not start: [`ServeError`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use metrics_exporter_prometheus::BuildError;
use thiserror::Error;
use tidegate::PolicyError;
use tidegate::store::redis::RedisStoreError;
use tidegate::tracker::TrackError;

use crate::webhook::WebhookError;

/// Why [`Server::bind`](crate::Server::bind) or [`init_logs`](crate::init_logs) failed:
/// the configuration was valid but something it names could not be opened. Each message
/// names the configuration field; the cause is its [`source`](std::error::Error::source).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listening address could not be bound (in use, not an address of this host).
    #[error("`listen`: cannot bind {addr}")]
    Bind {
        /// The address of `listen`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The gRPC address of the Envoy front end could not be bound.
    #[error("`envoy.grpc_listen`: cannot bind {addr}")]
    GrpcBind {
        /// The address of `envoy.grpc_listen`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The Envoy front end's configuration could not be loaded or set up on the store.
    #[error("`envoy.config`")]
    Envoy(#[source] tidegate_envoy::BuildError),
    /// The bound listener could not say its address.
    #[error("reading the bound address")]
    LocalAddr(#[source] io::Error),
    /// The Redis store could not be set up (a malformed URL, a TLS CA file, a cluster
    /// that does not answer); a single node that is down is not an error.
    #[error("`store.url`: cannot connect to {urls}")]
    Redis {
        /// The URLs of `store.url`, joined by commas.
        urls: String,
        /// Why.
        #[source]
        source: RedisStoreError,
    },
    /// A policy could not be set up on the store.
    #[error("`policies.{policy}`")]
    Policy {
        /// The policy's name.
        policy: String,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// The tracker's shared Redis store could not be set up.
    #[error("`tracker.store`")]
    TrackerStore(#[source] RedisStoreError),
    /// The tracker could not be built.
    #[error("`tracker`")]
    Tracker(#[source] TrackError),
    /// The JSON-lines sink's file could not be opened.
    #[error("`tracker.sink.path`: cannot open {}", path.display())]
    SinkFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The webhook sink could not be set up (its CA file, its TLS settings).
    #[error("`tracker.sink`: the webhook")]
    Webhook(#[source] WebhookError),
    /// The Prometheus recorder could not be installed (another recorder is installed
    /// in this process already).
    #[error("installing the metrics recorder")]
    Metrics(#[source] BuildError),
    /// `RUST_LOG` is set to something that is not a log filter.
    #[error("RUST_LOG `{text}` is not a filter like `info` or `tidegate=debug,warn`")]
    LogFilter {
        /// The value of `RUST_LOG`.
        text: String,
        /// Why.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The file of `log.file` could not be opened.
    #[error("`log.file`: cannot open {}", path.display())]
    LogFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A global log subscriber is installed in this process already.
    #[error("installing the log subscriber")]
    LogInit(#[source] tracing_subscriber::util::TryInitError),
}
