//! The server: [`Server::bind`] opens everything the configuration names, then
//! [`Server::run`] serves until its shutdown future completes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tidegate::SystemClock;
use tidegate::store::redis::RedisStore;
use tidegate::tracker::{DeliveredRecord, EventTracker, TrackerStore};
use tokio::net::TcpListener;

use tidegate_envoy::RateLimiter;

use crate::config::{StoreSettings, TrackerSettings};
use crate::{
    Config, EnvoyReloader, ServeError, app, connections, dashboard, envoy, limits, sink, telemetry,
};

/// The addresses a bound [`Server`] listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalAddrs {
    /// The HTTP API (`listen`): the port actually bound when `listen` asked for port 0.
    pub http: SocketAddr,
    /// The Envoy rate limit service's gRPC listener (`envoy.grpc_listen`), if `[envoy]`
    /// is configured.
    pub grpc: Option<SocketAddr>,
}

/// What a server left when it stopped.
#[derive(Debug)]
#[non_exhaustive]
pub struct Stopped {
    /// Whether every in-flight request finished within `shutdown_timeout` (those that
    /// did not were closed).
    pub drained: bool,
    /// Deferred records the tracker's sink refused to the end: persist them yourself
    /// (`tidegate serve` writes them as JSON lines to standard error, see
    /// [`json::record_text`](crate::json::record_text)).
    pub undelivered: Vec<DeliveredRecord>,
}

/// A bound server: its stores, tracker and sink are open and its listener is bound, but
/// it accepts no connection before [`Server::run`].
pub struct Server {
    config: Config,
    listener: TcpListener,
    addrs: LocalAddrs,
    policies: limits::Policies,
    tracker: Option<EventTracker>,
    envoy: Option<(RateLimiter, TcpListener)>,
    metrics: PrometheusHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("origin", &self.config.origin)
            .field("addrs", &self.addrs)
            .field("tracker", &self.tracker.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens what `config` names: the memory or Redis store of every policy (a single
    /// Redis node that is down is not an error: decisions follow `store.on_error` and
    /// `/readyz` answers 503 until it answers), the tracker and its sink, the process's
    /// Prometheus recorder, the Envoy front end of `[envoy]` (its YAML and its limiters on
    /// the same store); then binds `listen` (and `envoy.grpc_listen`). Must run inside a
    /// Tokio runtime with its time and I/O drivers enabled.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let metrics = telemetry::metrics_handle()?;
        let policies = limits::Policies::build(
            &config.store,
            &config.policies,
            config.max_key_bytes,
            config.top,
        )
        .await?;
        let tracker = match &config.tracker {
            None => None,
            Some(t) => Some(tracker(t, &config.store).await?),
        };
        let listener = listen(config.listen).map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let http = listener.local_addr().map_err(ServeError::LocalAddr)?;
        let envoy = match &config.envoy {
            None => None,
            Some(settings) => {
                let limiter = envoy::limiter(settings, &config.store, policies.redis.as_ref())?;
                let grpc = envoy::bind_grpc(settings).await?;
                Some((limiter, grpc))
            }
        };
        let grpc = match &envoy {
            Some((_, l)) => Some(l.local_addr().map_err(ServeError::LocalAddr)?),
            None => None,
        };
        Ok(Server {
            config,
            listener,
            addrs: LocalAddrs { http, grpc },
            policies,
            tracker,
            envoy,
            metrics,
        })
    }

    /// The addresses bound.
    pub fn local_addrs(&self) -> LocalAddrs {
        self.addrs
    }

    /// What reloads the `[envoy]` configuration (e.g. on SIGHUP), if there is one; its
    /// files are also reloaded by themselves when they change.
    pub fn envoy_reloader(&self) -> Option<EnvoyReloader> {
        let (limiter, _) = self.envoy.as_ref()?;
        let settings = self.config.envoy.as_ref()?;
        Some(EnvoyReloader::new(limiter, &settings.config))
    }

    /// The routes [`Server::run`] would serve (with `[envoy]`'s `/json` and
    /// `/healthcheck`), without the listener, the connection limits or the tracker's
    /// ticks: for driving whole requests in-process, e.g. with
    /// `tower::ServiceExt::oneshot` in tests and fuzzing. The server never stops.
    pub fn into_router(self) -> axum::Router {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (app, mut router) = routes(
            &self.config,
            self.policies,
            self.tracker,
            self.metrics,
            stop_rx,
        );
        if let Some((limiter, _)) = &self.envoy {
            router = router.merge(envoy::router(limiter, &app));
        }
        // The sender lives as long as the routes: a request never sees a shutdown.
        router.layer(axum::Extension(Arc::new(stop_tx)))
    }

    /// Serves until `shutdown` completes (e.g. on SIGTERM), then answers `/readyz` (and
    /// `/healthcheck`, gRPC health) as failing, serves on for `shutdown_delay`, stops
    /// accepting, lets the requests in progress finish (at most
    /// `shutdown_timeout`; idle connections are closed at once) and shuts the tracker
    /// down, delivering every deferred batch it still holds.
    pub async fn run<F>(self, shutdown: F) -> Result<Stopped, ServeError>
    where
        F: Future<Output = ()>,
    {
        let Server {
            config,
            listener,
            addrs,
            policies,
            tracker,
            envoy,
            metrics,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let (app, mut router) = routes(
            &config,
            policies,
            tracker.clone(),
            metrics.clone(),
            stop_rx.clone(),
        );
        let mut envoy_tasks = None;
        if let (Some((limiter, grpc)), Some(settings)) = (envoy, &config.envoy) {
            router = router.merge(envoy::router(&limiter, &app));
            let watch = EnvoyReloader::new(&limiter, &settings.config).watch();
            let serving = envoy::serve_grpc(&limiter, grpc, drain_rx, stop_rx.clone());
            let mut domains = limiter.domains();
            domains.sort_unstable();
            tracing::info!(
                config = %settings.config.display(),
                domains = %domains.join(","),
                grpc = ?addrs.grpc,
                "envoy rate limit service listening on grpc://{}",
                addrs.grpc.map_or_else(String::new, |a| a.to_string())
            );
            envoy_tasks = Some((serving, watch));
        }

        // Histogram upkeep every 5 s (the recorder is not drained by a background
        // exporter here), and warnings about full memory stores (at most one per policy
        // per 10 s).
        let watched = Arc::clone(&app);
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut full = limits::FullWatch::default();
            for n in 0u64.. {
                tick.tick().await;
                if n % 5 == 0 {
                    metrics.run_upkeep();
                }
                full.check(&watched.policies);
            }
        });

        let addr = addrs.http;
        let mut names: Vec<&str> = config.policies.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        tracing::info!(
            %addr,
            config = %config.origin,
            store = match &config.store { StoreSettings::Memory { .. } => "memory", StoreSettings::Redis { .. } => "redis" },
            policies = %names.join(","),
            admin = config.admin_token.is_some(),
            log_level = %config.log.level,
            "tidegate serve listening on http://{addr}"
        );

        let max_connections = connections::effective_max_connections(config.server.max_connections);
        let serving = connections::serve(
            listener,
            router,
            config.server.clone(),
            max_connections,
            stop_rx,
            config.shutdown_timeout,
        );
        tokio::pin!(serving);
        let drained = tokio::select! {
            drained = &mut serving => drained,
            // Health checks fail from here; everything else is served for shutdown_delay.
            () = async {
                shutdown.await;
                app.draining.store(true, Ordering::Relaxed);
                let _ = drain_tx.send(true);
                if !config.shutdown_delay.is_zero() {
                    tracing::info!(delay = ?config.shutdown_delay, "shutting down: health checks fail, serving on for shutdown_delay");
                    tokio::time::sleep(config.shutdown_delay).await;
                }
            } => {
                tracing::info!("shutting down: no new connections, finishing in-flight requests");
                let _ = stop_tx.send(true);
                serving.await
            }
        };
        if !drained {
            tracing::warn!(
                timeout = ?config.shutdown_timeout,
                "in-flight requests did not finish within shutdown_timeout; closing them"
            );
        }
        upkeep.abort();
        if let Some((serving, watch)) = envoy_tasks {
            watch.abort();
            if tokio::time::timeout(config.shutdown_timeout, serving)
                .await
                .is_err()
            {
                tracing::warn!("gRPC calls did not finish within shutdown_timeout; closing them");
            }
        }

        let returned = app.policies.release_leases().await;
        if returned > 0 {
            tracing::info!(units = returned, "returned unspent lease slices to Redis");
        }

        let mut undelivered = Vec::new();
        if let Some(tracker) = tracker {
            let pending = tracker.stats();
            let report = tracker.shutdown().await;
            if report.undelivered.is_empty() {
                tracing::info!(
                    delivered = report.delivered,
                    dead_lettered = report.dead_lettered,
                    left_in_redis = report.persisted,
                    waiting_before = pending.waiting,
                    "tracker shut down: every pending batch was delivered"
                );
            } else {
                tracing::error!(
                    delivered = report.delivered,
                    undelivered = report.undelivered.len(),
                    "tracker shut down: the sink refused some batches"
                );
            }
            undelivered = report.undelivered;
        }
        tracing::info!("tidegate serve stopped");
        Ok(Stopped {
            drained,
            undelivered,
        })
    }
}

/// The event tracker of `[tracker]`, delivering to its sink.
async fn tracker(t: &TrackerSettings, store: &StoreSettings) -> Result<EventTracker, ServeError> {
    let redis = match store {
        StoreSettings::Redis { urls, options, .. } => Some((urls.as_slice(), options)),
        StoreSettings::Memory { .. } => None,
    };
    let sink = sink::Sink::open(&t.sink, redis).await?;
    let mut builder = t
        .bytes
        .apply(t.spec.apply(EventTracker::builder()))
        .clock(SystemClock);
    if let Some(n) = t.max_details {
        builder = builder.max_details(n);
    }
    if let Some(lease) = t.lease {
        builder = builder.lease(lease);
    }
    if let (Some(name), Some((urls, options))) = (&t.shared, redis) {
        let store = RedisStore::open(urls, options.clone())
            .await
            .map_err(ServeError::TrackerStore)?;
        builder = builder.store(TrackerStore::redis(store, name.clone()));
    }
    let deliver = sink.clone();
    let tracker = builder
        .processor(move |batch| {
            let sink = deliver.clone();
            async move { sink.deliver(batch).await }
        })
        .build()
        .map_err(ServeError::Tracker)?;
    tracing::info!(sink = sink.label(), spec = %t.spec_text, "event tracker ready");
    Ok(tracker)
}

/// The shared state of the routes and the routes of `app.rs` over it.
fn routes(
    config: &Config,
    policies: limits::Policies,
    tracker: Option<EventTracker>,
    metrics: PrometheusHandle,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Arc<app::App>, axum::Router) {
    let app = Arc::new(app::App::new(
        policies,
        tracker,
        config.admin_token.clone(),
        config.max_key_bytes,
        config.max_body_bytes,
        config.legacy_headers,
        metrics,
        (stop, config.server.body_timeout),
    ));
    let mut router = app::router(Arc::clone(&app));
    if app.admin_token.is_some() {
        router = router.merge(dashboard::router(&app, &config.dashboard_queues));
    }
    (app, router)
}

/// Connections the kernel queues for `accept` (it caps this at `net.core.somaxconn`).
/// The usual 128 overflows under a burst of new connections, and the kernel then drops
/// handshakes that clients retry only after a second or more.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
