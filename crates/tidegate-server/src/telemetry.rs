//! Logs (`tracing`, text or JSON, to standard error and/or a file) and the Prometheus
//! recorder behind `GET /metrics`.

use std::fs::OpenOptions;
use std::sync::Mutex;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::ServeError;
use crate::config::{Config, LogFormat};
use crate::log_escape::EscapeControls;

/// The decision latency histogram.
pub(crate) const DECISION_SECONDS: &str = "tidegate_decision_duration_seconds";

/// Buckets of the decision latency histogram, in seconds (10 µs to 1 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0,
];

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the process's global `tracing` subscriber as `[log]` says (format, file,
/// console), filtered by `RUST_LOG` (as `target=level,...`) when set, else by
/// `log.level`. Log lines never carry raw control characters. Call it once, before
/// [`Server::bind`](crate::Server::bind), unless the program installs a subscriber of
/// its own.
pub fn init_logs(config: &Config) -> Result<(), ServeError> {
    let log = &config.log;
    let filter: Targets = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => text
            .parse()
            .map_err(|source| ServeError::LogFilter { text, source })?,
        _ => log.filter.clone(),
    };
    let mut layers: Vec<BoxedLayer> = Vec::new();
    if log.console {
        layers.push(fmt_layer(log.format, std::io::stderr));
    }
    if let Some(path) = &log.file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ServeError::LogFile {
                path: path.clone(),
                source,
            })?;
        layers.push(fmt_layer(log.format, Mutex::new(file)));
    }
    tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .map_err(ServeError::LogInit)?;
    Ok(())
}

fn fmt_layer<W>(format: LogFormat, writer: W) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(EscapeControls(writer));
    match format {
        LogFormat::Text => layer.with_ansi(false).boxed(),
        LogFormat::Json => layer.json().boxed(),
    }
}

/// The process-wide Prometheus recorder, installed by the first caller (servers bound
/// at the same time share it).
pub(crate) fn metrics_handle() -> Result<PrometheusHandle, ServeError> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = &*slot {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DECISION_SECONDS.into()), LATENCY_BUCKETS)
        .map_err(ServeError::Metrics)?
        .install_recorder()
        .map_err(ServeError::Metrics)?;
    describe();
    *slot = Some(handle.clone());
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "tidegate_decisions_total",
        "Decisions of POST /v1/check by policy and outcome (allowed, denied, error)"
    );
    describe_histogram!(
        DECISION_SECONDS,
        metrics::Unit::Seconds,
        "Time to decide one POST /v1/check, by policy"
    );
    describe_counter!(
        "tidegate_store_errors_total",
        "Redis calls that failed (errors and timeouts)"
    );
    describe_counter!(
        "tidegate_store_timeouts_total",
        "Redis calls that timed out"
    );
    describe_counter!(
        "tidegate_store_refused_total",
        "Redis calls refused by the open circuit breaker"
    );
    describe_gauge!(
        "tidegate_store_circuit_open",
        "1 while the Redis circuit breaker is open"
    );
    describe_counter!(
        "tidegate_store_fallbacks_total",
        "Decisions answered by the failure policy (on_error) because Redis could not, by policy"
    );
    describe_gauge!(
        "tidegate_memory_keys",
        "Keys held by the memory store, by policy"
    );
    describe_gauge!(
        "tidegate_tracker_records",
        "Records held by the event tracker"
    );
    describe_gauge!(
        "tidegate_tracker_waiting",
        "Deferred batches waiting for their due time"
    );
    describe_gauge!(
        "tidegate_tracker_retrying",
        "Batches between sink delivery attempts"
    );
    describe_counter!(
        "tidegate_tracker_events_total",
        "Events tracked, by outcome (immediate, deferred, ignored)"
    );
    describe_counter!(
        "tidegate_tracker_delivered_events_total",
        "Deferred events delivered to the sink"
    );
    describe_counter!(
        "tidegate_tracker_failed_rounds_total",
        "Delivery rounds in which every attempt failed"
    );
    describe_gauge!(
        "tidegate_tracker_memory_bytes",
        "Bytes of the in-memory tracker's budget in use (records and kept details)"
    );
    describe_counter!(
        "tidegate_tracker_details_dropped_by_size_total",
        "Event details left out by a byte bound (max_detail_bytes, max_batch_bytes, max_memory_bytes)"
    );
    describe_gauge!("tidegate_connections_open", "Open HTTP connections");
    describe_counter!(
        "tidegate_connections_refused_total",
        "Connections refused with 503 because server.max_connections were open"
    );
    describe_counter!(
        "tidegate_sink_errors_total",
        "Failed sink deliveries (each retry counts)"
    );
}
