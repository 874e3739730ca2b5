//! The checked configuration the server runs on.

use super::*;

/// Where limits live.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreSettings {
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
pub enum SinkSettings {
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
pub struct TrackerSettings {
    /// The strategy and its options.
    pub spec: TrackerSpec,
    /// The spec as written.
    pub spec_text: String,
    /// Details kept per deferred batch.
    pub max_details: Option<usize>,
    /// Byte bounds of details and of the in-memory tracker.
    pub bytes: TrackerBytes,
    /// The sink.
    pub sink: SinkSettings,
    /// Share records through the server's Redis store under this tracker name
    /// (`store = "redis"`); `None` keeps them in this process.
    pub shared: Option<String>,
    /// Lease of a batch claimed from Redis.
    pub lease: Option<std::time::Duration>,
}

/// The tracker's byte bounds; `None` keeps the library's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackerBytes {
    /// Largest detail kept.
    pub max_detail_bytes: Option<usize>,
    /// Most detail bytes kept per deferred batch.
    pub max_batch_bytes: Option<usize>,
    /// Memory budget of the in-memory tracker.
    pub max_memory_bytes: Option<usize>,
}

impl TrackerBytes {
    /// Sets the bounds that are given on `b`.
    pub fn apply(&self, mut b: TrackerBuilder) -> TrackerBuilder {
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
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The filter (`info`, `tidegate=debug,warn`); `RUST_LOG` replaces it when set.
    pub filter: Targets,
    /// The text of the filter, for the startup log line.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
    /// Also append logs to this file.
    pub file: Option<PathBuf>,
    /// Log to standard error.
    pub console: bool,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the config came from.
    pub origin: String,
    /// Listening address.
    pub listen: SocketAddr,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest key (and tracker category / id).
    pub max_key_bytes: usize,
    /// Send `X-RateLimit-*` too.
    pub legacy_headers: bool,
    /// Longest wait for in-flight requests at shutdown.
    pub shutdown_timeout: Duration,
    /// Connections: timeouts and their cap.
    pub server: ServerSettings,
    /// The store.
    pub store: StoreSettings,
    /// The admin token; admin routes exist only with one.
    pub admin_token: Option<String>,
    /// The policies, by name.
    pub policies: Vec<(String, PolicySet)>,
    /// The tracker, if configured.
    pub tracker: Option<TrackerSettings>,
    /// Logging.
    pub log: LogSettings,
}
