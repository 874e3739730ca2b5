//! The tidegate server as a library: rate-limit decisions and the event tracker over
//! HTTP (`POST /v1/check`, `POST /v1/events`), admin routes behind a bearer token,
//! Prometheus metrics (`/metrics`), health and readiness probes (`/healthz`, `/readyz`),
//! and with `[envoy]` Envoy's rate limit service (gRPC `ShouldRateLimit` on its own
//! listener, `POST /json` and `GET /healthcheck` on the HTTP one; reloaded through
//! [`Server::envoy_reloader`] and when its files change).
//! A [`Config`] is read from TOML and `TIDEGATE_*` environment variables
//! ([`Config::load`]) and checked section by section, each error naming its field;
//! [`Server::bind`] opens the stores, the tracker and its sink and binds the listener;
//! [`Server::run`] serves until the future it is given completes, then lets in-flight
//! requests finish and shuts the tracker down so every deferred event reaches its sink.
//! The `tidegate serve` command is this crate behind a command line; every key is
//! documented in `docs/CONFIGURATION.md`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tidegate_server::{Config, Server};
//!
//! let mut config = Config::load("tidegate.toml", std::env::vars())?;
//! config.set_listen("127.0.0.1:0".parse()?);
//! let server = Server::bind(config).await?;
//! println!("listening on http://{}", server.local_addrs().http);
//! let stopped = server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! assert!(stopped.undelivered.is_empty());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod app;
mod body;
mod config;
mod connections;
mod dashboard;
mod envoy;
mod error;
mod error_text;
mod limits;
mod log_escape;
mod log_every;
mod server;
mod sink;
mod telemetry;
mod top;

pub mod env;
pub mod json;
pub mod webhook;

pub use config::{Config, ConfigError, DEFAULT_CONFIG};
pub use envoy::EnvoyReloader;
pub use error::ServeError;
pub use server::{LocalAddrs, Server, Stopped};
pub use telemetry::init_logs;
