//! `tidegate serve`: rate-limit decisions and the event tracker over HTTP.
//!
//! `POST /v1/check`, `POST /v1/events`, admin routes behind a bearer token, `/metrics`,
//! `/healthz`, `/readyz`. Configuration: [`config`] (`docs/CONFIGURATION.md`). On
//! SIGTERM or SIGINT the server stops accepting, lets in-flight requests finish, then
//! shuts the tracker down so every deferred event reaches the sink.

mod app;
mod body;
mod config;
mod connections;
mod limits;
mod log_escape;
mod log_every;
mod sink;
mod telemetry;
pub(crate) mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tidegate::SystemClock;
use tidegate::store::redis::RedisStore;
use tidegate::tracker::{EventTracker, TrackerStore};

use config::{Settings, SinkSettings, StoreSettings};

/// Arguments of `tidegate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/CONFIGURATION.md). Without it the embedded
    /// default runs: memory store, policies `api`, `login`, `search`, a tracker writing
    /// deferred batches to standard output. `TIDEGATE_*` variables override keys
    /// (`TIDEGATE_STORE__URL` sets `store.url`).
    #[arg(long, short, env = config::CONFIG_ENV)]
    config: Option<PathBuf>,

    /// Address to listen on, overriding `listen` (e.g. `0.0.0.0:8080`; port 0 picks a
    /// free port, logged at start).
    #[arg(long, short)]
    listen: Option<String>,

    /// Check the configuration, print a summary and exit (nothing is opened or bound).
    #[arg(long)]
    check: bool,
}

/// Runs `tidegate serve`.
pub fn run(args: &ServeArgs) -> Result<ExitCode> {
    let settings = config::load(
        args.config.as_deref(),
        std::env::vars(),
        args.listen.as_deref(),
    )?;
    if args.check {
        println!("{}", summary(&settings));
        return Ok(ExitCode::SUCCESS);
    }
    telemetry::init_logs(&settings.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tidegate-serve")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings))?;
    Ok(ExitCode::SUCCESS)
}

/// One line per policy, the store, the tracker.
fn summary(s: &Settings) -> String {
    let mut out = format!(
        "configuration {} is valid\nlisten: {}\n",
        s.origin, s.listen
    );
    match &s.store {
        StoreSettings::Memory {
            max_keys,
            max_memory_bytes,
            on_full,
        } => {
            let share = max_memory_bytes / s.policies.len().max(1);
            let keys: Vec<String> = s
                .policies
                .iter()
                .map(|(name, set)| {
                    let n = max_keys
                        .unwrap_or_else(|| limits::keys_in_budget(set, share, s.max_key_bytes));
                    format!("{name} {n}")
                })
                .collect();
            out.push_str(&format!(
                "store: memory (max_memory_bytes {max_memory_bytes}, on_full {on_full:?}, max_keys per policy: {})\n",
                keys.join(", ")
            ));
        }
        StoreSettings::Redis {
            urls,
            on_error,
            options,
            ..
        } => out.push_str(&format!(
            "store: redis {} (on_error {on_error:?}, timeout {:?})\n",
            urls.join(","),
            options.timeout
        )),
    }
    for (name, set) in &s.policies {
        out.push_str(&format!("policy {name}: {set}\n"));
    }
    if let Some(t) = &s.tracker {
        let sink = match &t.sink {
            SinkSettings::Jsonl { path: None } => "jsonl to standard output".to_string(),
            SinkSettings::Jsonl { path: Some(p) } => format!("jsonl to {}", p.display()),
            SinkSettings::Webhook { url, .. } => format!("webhook {url}"),
            SinkSettings::RedisStream { key, .. } => format!("redis stream {key}"),
        };
        out.push_str(&format!("tracker: {} -> {sink}\n", t.spec_text));
    }
    out.push_str(&format!(
        "admin: {}",
        if s.admin_token.is_some() { "on" } else { "off" }
    ));
    out
}

async fn serve(settings: Settings) -> Result<()> {
    let metrics = telemetry::metrics_handle()?;
    let policies =
        limits::Policies::build(&settings.store, &settings.policies, settings.max_key_bytes)
            .await?;

    let tracker = match &settings.tracker {
        None => None,
        Some(t) => {
            let redis = match &settings.store {
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
                    .context("`tracker.store`")?;
                builder = builder.store(TrackerStore::redis(store, name.clone()));
            }
            let deliver = sink.clone();
            let tracker = builder
                .processor(move |batch| {
                    let sink = deliver.clone();
                    async move { sink.deliver(batch).await }
                })
                .build()
                .context("`tracker`")?;
            tracing::info!(sink = sink.label(), spec = %t.spec_text, "event tracker ready");
            Some(tracker)
        }
    };

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("`listen`: cannot bind {}", settings.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(app::App::new(
        policies,
        tracker.clone(),
        settings.admin_token.clone(),
        settings.max_key_bytes,
        settings.max_body_bytes,
        settings.legacy_headers,
        metrics.clone(),
        (stop_rx.clone(), settings.server.body_timeout),
    ));
    let router = app::router(Arc::clone(&app));

    // Histogram upkeep every 5 s (the recorder is not drained by a background exporter
    // here), and warnings about full memory stores (at most one per policy per 10 s).
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

    let mut names: Vec<&str> = settings.policies.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    tracing::info!(
        %addr,
        config = %settings.origin,
        store = match &settings.store { StoreSettings::Memory { .. } => "memory", StoreSettings::Redis { .. } => "redis" },
        policies = %names.join(","),
        admin = settings.admin_token.is_some(),
        log_level = %settings.log.level,
        "tidegate serve listening on http://{addr}"
    );

    let signal_app = Arc::clone(&app);
    tokio::spawn(async move {
        let name = shutdown_signal().await;
        signal_app.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            signal = name,
            "shutting down: no new connections, finishing in-flight requests"
        );
        let _ = stop_tx.send(true);
    });
    let max_connections = connections::effective_max_connections(settings.server.max_connections);
    let closed = connections::serve(
        listener,
        router,
        settings.server.clone(),
        max_connections,
        stop_rx,
        settings.shutdown_timeout,
    )
    .await;
    if !closed {
        tracing::warn!(
            timeout = ?settings.shutdown_timeout,
            "in-flight requests did not finish within shutdown_timeout; closing them"
        );
    }
    upkeep.abort();

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
                "tracker shut down: the sink refused some batches; they follow as JSON lines on standard error"
            );
            for r in &report.undelivered {
                eprintln!("{}", crate::json::record_text(r));
            }
        }
    }
    tracing::info!("tidegate serve stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); returns its name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
