//! The checked configuration the server runs on: [`Config`] and its sections.

use super::*;

/// Where limits live.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoreSettings {
    /// In memory, per process.
    Memory {
        /// Most keys per policy; `None`: sized from `max_memory_bytes`.
        max_keys: Option<usize>,
        /// Memory for the states of every policy together (sizes `max_keys`).
        max_memory_bytes: usize,
        /// What a full store does with a new key.
        on_full: OnFull,
    },
    /// Redis (one URL) or Redis Cluster (several), shared by every instance.
    Redis {
        /// The URLs.
        urls: Vec<String>,
        /// Connection settings.
        options: RedisOptions,
        /// What answers when Redis does not in time.
        on_error: FailurePolicy,
        /// Key prefix.
        namespace: String,
        /// Local cache of denials.
        deny_cache: bool,
    },
}

/// Where the tracker's deferred batches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SinkSettings {
    /// JSON lines appended to a file (`None`: standard output).
    Jsonl {
        /// The file.
        path: Option<PathBuf>,
    },
    /// `POST` of `{"records":[...]}` to a URL.
    Webhook {
        /// `http://` or `https://`.
        url: String,
        /// Per request.
        timeout: Duration,
        /// Sent with every request (e.g. `Authorization`).
        headers: Vec<(String, String)>,
        /// PEM CA certificates trusted instead of the system's roots (HTTPS).
        ca_file: Option<PathBuf>,
    },
    /// `XADD` of one entry per record to a Redis stream of the configured store.
    RedisStream {
        /// The stream's key.
        key: String,
        /// `MAXLEN ~` trimming, if set.
        maxlen: Option<u64>,
    },
}

/// The tracker's settings.
#[derive(Debug, Clone)]
pub(crate) struct TrackerSettings {
    /// The strategy and its options.
    pub(crate) spec: TrackerSpec,
    /// The spec as written.
    pub(crate) spec_text: String,
    /// Details kept per deferred batch.
    pub(crate) max_details: Option<usize>,
    /// Byte bounds of details and of the in-memory tracker.
    pub(crate) bytes: TrackerBytes,
    /// The sink.
    pub(crate) sink: SinkSettings,
    /// Share records through the server's Redis store under this tracker name
    /// (`store = "redis"`); `None` keeps them in this process.
    pub(crate) shared: Option<String>,
    /// Lease of a batch claimed from Redis.
    pub(crate) lease: Option<std::time::Duration>,
}

/// The tracker's byte bounds; `None` keeps the library's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TrackerBytes {
    /// Largest detail kept.
    pub(crate) max_detail_bytes: Option<usize>,
    /// Most detail bytes kept per deferred batch.
    pub(crate) max_batch_bytes: Option<usize>,
    /// Memory budget of the in-memory tracker.
    pub(crate) max_memory_bytes: Option<usize>,
}

impl TrackerBytes {
    /// Sets the bounds that are given on `b`.
    pub(crate) fn apply(&self, mut b: TrackerBuilder) -> TrackerBuilder {
        if let Some(n) = self.max_detail_bytes {
            b = b.max_detail_bytes(n);
        }
        if let Some(n) = self.max_batch_bytes {
            b = b.max_batch_bytes(n);
        }
        if let Some(n) = self.max_memory_bytes {
            b = b.max_memory_bytes(n);
        }
        b
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    /// The filter (`info`, `tidegate=debug,warn`); `RUST_LOG` replaces it when set.
    pub(crate) filter: Targets,
    /// The text of the filter, for the startup log line.
    pub(crate) level: String,
    /// Output format.
    pub(crate) format: LogFormat,
    /// Also append logs to this file.
    pub(crate) file: Option<PathBuf>,
    /// Log to standard error.
    pub(crate) console: bool,
}

/// A checked configuration, ready for [`Server::bind`](crate::Server::bind): read by
/// [`Config::load`], [`Config::from_toml`] or [`Config::embedded_default`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from.
    pub(crate) origin: String,
    /// Listening address.
    pub(crate) listen: SocketAddr,
    /// Largest request body.
    pub(crate) max_body_bytes: usize,
    /// Longest key (and tracker category / id).
    pub(crate) max_key_bytes: usize,
    /// Send `X-RateLimit-*` too.
    pub(crate) legacy_headers: bool,
    /// Longest wait for in-flight requests at shutdown.
    pub(crate) shutdown_timeout: Duration,
    /// How long health checks fail before the listeners stop, at shutdown.
    pub(crate) shutdown_delay: Duration,
    /// Connections: timeouts and their cap.
    pub(crate) server: ServerSettings,
    /// The store.
    pub(crate) store: StoreSettings,
    /// The admin token; admin routes exist only with one.
    pub(crate) admin_token: Option<String>,
    /// The policies, by name.
    pub(crate) policies: Vec<(String, PolicySet)>,
    /// The tracker, if configured.
    pub(crate) tracker: Option<TrackerSettings>,
    /// The Envoy rate limit service front end, if configured.
    pub(crate) envoy: Option<EnvoySettings>,
    /// The work queues the dashboard watches (`[dashboard] queues`).
    pub(crate) dashboard_queues: Vec<String>,
    /// The capacity of each policy's top-keys summaries; `None`: off.
    pub(crate) top: Option<usize>,
    /// Logging.
    pub(crate) log: LogSettings,
}

impl Config {
    /// Where the configuration came from: the file's path, or `embedded default`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The address the HTTP server listens on (`listen`).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Listens on `addr` instead (port 0 picks a free port: see
    /// [`Server::local_addrs`](crate::Server::local_addrs)).
    pub fn set_listen(&mut self, addr: SocketAddr) {
        self.listen = addr;
    }
}
