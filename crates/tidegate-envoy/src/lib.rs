//! tidegate-envoy: Envoy's rate limit service (`envoy.service.ratelimit.v3`) on
//! tidegate, a drop-in for envoyproxy/ratelimit: the same YAML configuration, the same
//! matching and the same answers, with tidegate's algorithms and stores behind it.
//!
//! - [`Config`]: envoyproxy/ratelimit's YAML from a file or a directory, plus tidegate's
//!   `policy:` extension (any tidegate policy on a descriptor).
//! - [`RateLimiter`]: a configuration and a [`Backend`] (memory or Redis); answers
//!   `ShouldRateLimit`, reloads its configuration.
//! - [`RateLimiter::grpc_service`]: the tonic service for a tonic `Server`.
//! - [`RateLimiter::router`]: an axum `Router` with `POST /json` and `GET /healthcheck`.
//! - [`HealthStatus`]: gRPC health checking (`grpc.health.v1.Health`) for the gRPC
//!   listener, `NOT_SERVING` once shutdown begins.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tidegate_envoy::{Backend, RateLimiter};
//!
//! let limiter = RateLimiter::from_path("config/", Backend::memory())?;
//! tonic::transport::Server::builder()
//!     .add_service(limiter.grpc_service())
//!     .serve("127.0.0.1:8081".parse()?)
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! How requests are matched and answered, and how it differs from envoyproxy/ratelimit:
//! `docs/ENVOY.md`.
#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod error;
pub mod grpc;
pub mod headers;
pub mod health;
pub mod http;
mod join;
pub mod json;
mod map;
mod metrics;
pub mod request;
pub mod service;
pub mod unit;

pub use backend::Backend;
pub use config::{Config, LoadOptions, Rule, RuleLimit};
pub use error::{BuildError, ConfigError, RequestError};
pub use grpc::GrpcService;
pub use headers::HeaderOptions;
pub use health::HealthStatus;
pub use request::InvalidRequest;
pub use service::{RateLimiter, RateLimiterBuilder, ServiceOptions};
pub use unit::Unit;

/// The protocol's types (envoy-types), re-exported for clients and tests.
pub use envoy_types::pb::envoy::service::ratelimit::v3 as proto;
