//! `tidegate serve`: the server of `tidegate-server` behind a command line, stopped by
//! SIGTERM or SIGINT; SIGHUP reloads the `[envoy]` configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use tidegate_server::{Config, EnvoyReloader, Server, env, json};

/// Arguments of `tidegate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/CONFIGURATION.md). Without it the embedded
    /// default runs: memory store, policies `api`, `login`, `search`, a tracker writing
    /// deferred batches to standard output. `TIDEGATE_*` variables override keys
    /// (`TIDEGATE_STORE__URL` sets `store.url`).
    #[arg(long, short, env = env::CONFIG)]
    config: Option<PathBuf>,

    /// Address to listen on, overriding `listen` (e.g. `0.0.0.0:8080`; port 0 picks a
    /// free port, logged at start).
    #[arg(long, short, value_parser = listen_addr)]
    listen: Option<SocketAddr>,

    /// Check the configuration, print a summary and exit (nothing is opened or bound).
    #[arg(long)]
    check: bool,
}

/// `--listen`: an address like the configuration's `listen`.
fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:8080 or [::1]:8080"))
}

/// Runs `tidegate serve`.
pub fn run(args: &ServeArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path, std::env::vars()),
        None => Config::embedded_default(std::env::vars()),
    }?;
    if let Some(addr) = args.listen {
        config.set_listen(addr);
    }
    if args.check {
        println!("{}", config.summary());
        return Ok(ExitCode::SUCCESS);
    }
    tidegate_server::init_logs(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tidegate-serve")
        .build()
        .context("starting the async runtime")?;
    let stopped = runtime.block_on(async {
        let server = Server::bind(config).await?;
        if let Some(reloader) = server.envoy_reloader() {
            reload_on_hangup(reloader);
        }
        server.run(shutdown_signal()).await
    })?;
    if !stopped.undelivered.is_empty() {
        tracing::error!(
            undelivered = stopped.undelivered.len(),
            "the records the sink refused follow as JSON lines on standard error"
        );
        for r in &stopped.undelivered {
            eprintln!("{}", json::record_text(r));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reloads the `[envoy]` configuration on every SIGHUP (the reloader logs the outcome).
fn reload_on_hangup(reloader: EnvoyReloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!(
                            signal = "SIGHUP",
                            "received SIGHUP: reloading the envoy config"
                        );
                        let _ = reloader.reload();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGHUP; the envoy config is reloaded only when its files change")
            }
        }
    }
    #[cfg(not(unix))]
    drop(reloader);
}

/// Waits for SIGTERM or SIGINT (Ctrl-C) and logs which.
async fn shutdown_signal() {
    let name = signal().await;
    tracing::info!(signal = name, "received {name}");
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); returns its name.
async fn signal() -> &'static str {
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
