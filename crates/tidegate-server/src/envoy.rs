//! The Envoy rate limit service front end of `[envoy]`: the limiter on the server's
//! store, its gRPC listener (`ShouldRateLimit` and gRPC health checking), `POST /json`
//! and `GET /healthcheck` on the HTTP listener, and its reloads ([`EnvoyReloader`] on demand, and a watch of its files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tidegate::store::redis::RedisStore;
use tidegate_envoy::{Backend, BuildError, HealthStatus, RateLimiter};
use tokio::net::TcpListener;

use crate::ServeError;
use crate::app::App;
use crate::config::{EnvoySettings, StoreSettings};

/// How often the configuration's files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Builds the limiter of `settings` on the server's store (`redis`: its connection).
pub(crate) fn limiter(
    settings: &EnvoySettings,
    store: &StoreSettings,
    redis: Option<&RedisStore>,
) -> Result<RateLimiter, ServeError> {
    let backend = match (store, redis) {
        (
            StoreSettings::Redis {
                on_error,
                namespace,
                ..
            },
            Some(redis),
        ) => Backend::redis(redis.clone())
            .namespace(settings.namespace.as_deref().unwrap_or(namespace))
            .on_error(*on_error),
        (
            StoreSettings::Memory {
                max_keys, on_full, ..
            },
            _,
        ) => Backend::memory_with(max_keys.unwrap_or(1_000_000), *on_full),
        (StoreSettings::Redis { .. }, None) => Backend::memory(),
    };
    let config = tidegate_envoy::Config::load_with(&settings.config, settings.load_options())
        .map_err(|e| ServeError::Envoy(BuildError::Config(e)))?;
    RateLimiter::builder(config)
        .backend(backend)
        .all_or_nothing(settings.all_or_nothing)
        .headers(settings.headers.clone())
        .build()
        .map_err(ServeError::Envoy)
}

/// Binds `grpc_listen`.
pub(crate) async fn bind_grpc(settings: &EnvoySettings) -> Result<TcpListener, ServeError> {
    TcpListener::bind(settings.grpc_listen)
        .await
        .map_err(|source| ServeError::GrpcBind {
            addr: settings.grpc_listen,
            source,
        })
}

/// Serves `ShouldRateLimit` and gRPC health checking (`grpc.health.v1.Health`,
/// `SERVING`) over gRPC (HTTP/2) on `listener`: health turns `NOT_SERVING` when
/// `draining` turns true (open `Watch` streams are told); when `stop` does, the `Watch`
/// streams end, the listener stops and the calls in progress finish.
pub(crate) fn serve_grpc(
    limiter: &RateLimiter,
    listener: TcpListener,
    mut draining: tokio::sync::watch::Receiver<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let service = limiter.grpc_service();
    tokio::spawn(async move {
        let health = HealthStatus::new().await;
        let reporter = health.clone();
        tokio::spawn(async move {
            if draining.wait_for(|d| *d).await.is_ok() {
                reporter.shutting_down().await;
            }
        });
        let result = tonic::transport::Server::builder()
            .add_service(health.service())
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
                // NOT_SERVING first, should `stop` come with `draining`.
                health.shutting_down().await;
                health.close();
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the gRPC listener of the envoy front end failed");
        }
    })
}

/// `POST /json` and `GET /healthcheck` for the HTTP listener: any `Content-Type` (as
/// envoyproxy/ratelimit), bodies up to `max_body_bytes`; `/healthcheck` answers 503
/// once shutdown begins.
pub(crate) fn router(limiter: &RateLimiter, app: &Arc<App>) -> Router {
    limiter
        .router()
        .layer(DefaultBodyLimit::max(app.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(app), health))
}

async fn health(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if req.method() == Method::GET
        && req.uri().path() == "/healthcheck"
        && app.draining.load(Ordering::Relaxed)
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    next.run(req).await
}

/// Reloads the `[envoy]` configuration: from [`Server::envoy_reloader`](crate::Server::envoy_reloader).
#[derive(Debug, Clone)]
pub struct EnvoyReloader {
    limiter: RateLimiter,
    path: PathBuf,
}

impl EnvoyReloader {
    pub(crate) fn new(limiter: &RateLimiter, path: &Path) -> Self {
        Self {
            limiter: limiter.clone(),
            path: path.to_path_buf(),
        }
    }

    /// Loads the YAML again and swaps it in; an invalid one leaves the current
    /// configuration in place. Logs the outcome (an error with its file and line).
    pub fn reload(&self) -> Result<(), BuildError> {
        match self.limiter.reload() {
            Ok(()) => {
                let mut domains = self.limiter.domains();
                domains.sort_unstable();
                tracing::info!(
                    config = %self.path.display(),
                    domains = %domains.join(","),
                    "envoy config reloaded"
                );
                Ok(())
            }
            Err(e) => {
                let (file, line) = match &e {
                    BuildError::Config(c) => (c.file().map(str::to_string), c.line()),
                    _ => (None, None),
                };
                tracing::error!(
                    config = %self.path.display(),
                    file = file.as_deref().unwrap_or(""),
                    line = line.unwrap_or(0),
                    error = %e,
                    "envoy config reload failed, the previous configuration stays"
                );
                Err(e)
            }
        }
    }

    /// Reloads whenever a file of the configuration changes (looked at every second).
    pub(crate) fn watch(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last = fingerprint(&self.path);
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = fingerprint(&self.path);
                if now != last {
                    last = now;
                    let _ = self.reload();
                }
            }
        })
    }
}

/// The names, sizes and modification times of the configuration's files.
fn fingerprint(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let stat = |p: PathBuf| {
        let meta = std::fs::metadata(&p).ok();
        let len = meta.as_ref().map_or(u64::MAX, std::fs::Metadata::len);
        let modified = meta.and_then(|m| m.modified().ok());
        (p, len, modified)
    };
    let mut out = vec![stat(path.to_path_buf())];
    if let Ok(entries) = std::fs::read_dir(path) {
        let mut files: Vec<_> = entries.flatten().map(|e| stat(e.path())).collect();
        files.sort();
        out.extend(files);
    }
    out
}
