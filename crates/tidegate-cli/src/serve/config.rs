//! The configuration of `tidegate serve`: a TOML file (or the embedded default), then
//! `TIDEGATE_*` environment overrides, checked at start with errors that name the field.
//!
//! Every key is documented in `docs/CONFIGURATION.md`; `examples/tidegate.toml` is a
//! complete example. Unknown keys are errors.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use tidegate::policy::parse_window;
use tidegate::store::FailurePolicy;
use tidegate::store::memory::OnFull;
use tidegate::store::redis::{RedisOptions, parse_urls};
use tidegate::tracker::{TrackerBuilder, TrackerSpec};
use tidegate::{Policy, PolicySet};
use tracing_subscriber::filter::Targets;

/// The configuration used when no file is given: memory store, example policies, a
/// tracker writing deferred batches as JSON lines to standard output.
pub const DEFAULT_CONFIG: &str = r#"# tidegate serve: the embedded default configuration.
listen = "127.0.0.1:8080"

[policies]
api = "token_bucket:100/1m"
login = "fixed_window:3/10s"
search = ["gcra:10/1s", "fixed_window:1000/1d"]

[tracker]
spec = "simple:limit=5,defer=30s"
sink = { type = "jsonl", path = "-" }
"#;

/// The environment variable naming the config file (read by `--config`); not an override.
pub const CONFIG_ENV: &str = crate::env::CONFIG;

/// Prefix of the environment overrides: `TIDEGATE_STORE__URL` sets `store.url`.
pub const ENV_PREFIX: &str = "TIDEGATE_";

/// Longest policy name.
const MAX_POLICY_NAME: usize = 64;

/// A configuration that cannot be used: where it came from, the field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or `embedded default`.
    pub origin: String,
    /// The dotted path of the field at fault (`store.url`, `policies.login`), or empty
    /// for a syntax error.
    pub field: String,
    /// Why, with the environment variable that set the field, if one did.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(
                f,
                "invalid configuration ({}): {}",
                self.origin, self.message
            )
        } else {
            write!(
                f,
                "invalid configuration ({}): `{}`: {}",
                self.origin, self.field, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A string or a number, for numeric keys that environment overrides set as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Num(u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                u64::try_from(v)
                    .map(Num)
                    .map_err(|_| E::custom(format!("must not be negative, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.trim()
                    .replace('_', "")
                    .parse()
                    .map(Num)
                    .map_err(|_| E::custom(format!("`{v}` is not a whole number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean, or the text `true` / `false` (environment overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim() {
                    "true" => Ok(Flag(true)),
                    "false" => Ok(Flag(false)),
                    _ => Err(E::custom(format!("`{v}` is not true or false"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One `[policies]` entry: a short-form string (`;` separates several policies), a
/// table, or a list of either; always a [`PolicySet`].
#[derive(Debug, Clone)]
struct PolicyEntry(PolicySet);

impl<'de> Deserialize<'de> for PolicyEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a policy: a string like \"token_bucket:100/1m,burst=20\", a table \
                     { algorithm = \"fixed_window\", limit = 3, window = \"10s\" }, or a list of them",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyEntry, E> {
                v.parse::<PolicySet>().map(PolicyEntry).map_err(E::custom)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<PolicyEntry, M::Error> {
                Policy::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|p| PolicyEntry(PolicySet::from(p)))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<PolicyEntry, S::Error> {
                let mut policies = Vec::new();
                while let Some(p) = seq.next_element::<Policy>()? {
                    policies.push(p);
                }
                PolicySet::new(policies)
                    .map(PolicyEntry)
                    .map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The file as written (after environment overrides), before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    max_body_bytes: Option<Num>,
    max_key_bytes: Option<Num>,
    legacy_headers: Option<Flag>,
    shutdown_timeout: Option<String>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    policies: BTreeMap<String, PolicyEntry>,
    tracker: Option<RawTracker>,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    on_error: Option<String>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
    namespace: Option<String>,
    tls_ca_file: Option<PathBuf>,
    deny_cache: Option<Flag>,
    max_keys: Option<Num>,
    max_memory_bytes: Option<Num>,
    on_full: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracker {
    spec: Option<String>,
    max_details: Option<Num>,
    max_detail_bytes: Option<Num>,
    max_batch_bytes: Option<Num>,
    max_memory_bytes: Option<Num>,
    sink: Option<RawSink>,
    store: Option<String>,
    name: Option<String>,
    lease: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawSink {
    Jsonl(RawJsonl),
    Webhook(RawWebhook),
    RedisStream(RawRedisStream),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonl {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisStream {
    key: String,
    maxlen: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
    file: Option<PathBuf>,
    console: Option<Flag>,
}

/// Longest `store.timeout`: a decision never waits longer for Redis.
pub const MAX_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default memory budget of the memory store (all policies together).
pub const DEFAULT_STORE_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

fn memory_store(s: &RawStore) -> Result<StoreSettings, Invalid> {
    let max_keys = match s.max_keys {
        None => None,
        Some(Num(0)) => {
            return Err(bad(
                "store.max_keys",
                "must be at least 1 (remove it to size the store from store.max_memory_bytes)",
            ));
        }
        Some(Num(n)) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let max_memory_bytes = s
        .max_memory_bytes
        .map_or(DEFAULT_STORE_MEMORY_BYTES, |n| n.0);
    if max_memory_bytes < 1024 * 1024 {
        return Err(bad(
            "store.max_memory_bytes",
            "must be at least 1048576 (1 MiB)",
        ));
    }
    let on_full = match s.on_full.as_deref().map(str::trim) {
        None | Some("reject") => OnFull::Reject,
        Some("evict") => OnFull::Evict,
        Some("admit_untracked") => OnFull::AdmitUntracked,
        Some(other) => {
            return Err(bad(
                "store.on_full",
                format!("`{other}` is not one of reject, evict, admit_untracked"),
            ));
        }
    };
    Ok(StoreSettings::Memory {
        max_keys,
        max_memory_bytes: usize::try_from(max_memory_bytes).unwrap_or(usize::MAX),
        on_full,
    })
}

/// How connections are served (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Longest wait for a request's complete headers.
    pub header_timeout: Duration,
    /// Longest wait for a request's complete body.
    pub body_timeout: Duration,
    /// A connection without a request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
}

fn server_settings(raw: &RawServer) -> Result<ServerSettings, Invalid> {
    let d = |field: &str, text: &Option<String>, default: u64| match text {
        Some(t) => duration(field, t),
        None => Ok(Duration::from_secs(default)),
    };
    let max_connections = raw.max_connections.map_or(4_096, |n| n.0 as usize);
    if max_connections == 0 {
        return Err(bad("server.max_connections", "must be at least 1"));
    }
    Ok(ServerSettings {
        header_timeout: d("server.header_timeout", &raw.header_timeout, 10)?,
        body_timeout: d("server.body_timeout", &raw.body_timeout, 10)?,
        idle_timeout: d("server.idle_timeout", &raw.idle_timeout, 60)?,
        max_connections,
    })
}

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

/// Loads `path` (or the embedded default), applies the `TIDEGATE_*` variables of `env`
/// and `listen` (the `--listen` flag), and checks everything.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    listen: Option<&str>,
) -> Result<Settings, ConfigError> {
    let (origin, text) = match path {
        Some(p) => {
            let origin = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                origin: origin.clone(),
                field: String::new(),
                message: format!("cannot read the config file: {e}"),
            })?;
            (origin, text)
        }
        None => ("embedded default".to_string(), DEFAULT_CONFIG.to_string()),
    };
    parse(&origin, &text, env, listen)
}

/// [`load`] from text.
pub fn parse(
    origin: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    listen: Option<&str>,
) -> Result<Settings, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    crate::env::check(env.iter().map(|(k, _)| k)).map_err(|e| ConfigError {
        origin: origin.to_string(),
        field: String::new(),
        message: e.to_string(),
    })?;
    let overrides = env_overrides(env);
    let fail = |field: &str, message: String| ConfigError {
        origin: origin.to_string(),
        field: field.to_string(),
        message: with_env_note(field, &overrides, message),
    };
    let raw: RawConfig = if overrides.is_empty() {
        // Straight from the text: errors carry the line and column.
        let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(origin, text, &e))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            fail(&field_or_empty(&field), located(text, &inner))
        })?
    } else {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| syntax_error(origin, text, &e))?;
        for (path, (var, value)) in &overrides {
            set_path(&mut table, path, value.clone()).map_err(|message| ConfigError {
                origin: origin.to_string(),
                field: path.join("."),
                message: format!("{message} (set by {var})"),
            })?;
        }
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let field = e.path().to_string();
            fail(
                &field_or_empty(&field),
                e.into_inner().message().to_string(),
            )
        })?
    };
    validate(origin, raw, listen).map_err(|(field, message)| fail(&field, message))
}

fn field_or_empty(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_string()
    }
}

/// `TIDEGATE_A__B=v` → (`["a","b"]`, (`TIDEGATE_A__B`, `v`)), sorted; the variables of
/// other subcommands (`TIDEGATE_CONFIG`, `TIDEGATE_QUEUE__NAME`, ...) excepted.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<Vec<String>, (String, String)> {
    env.into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !crate::env::belongs_to_another_subcommand(k))
        .map(|(k, v)| {
            let path = k[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            (path, (k, v))
        })
        .collect()
}

/// Appends `(set by VAR)` when `field` (or a table holding it) came from the environment.
fn with_env_note(
    field: &str,
    overrides: &BTreeMap<Vec<String>, (String, String)>,
    message: String,
) -> String {
    let parts: Vec<&str> = field.split('.').collect();
    for (path, (var, _)) in overrides {
        let n = path.len().min(parts.len());
        if n > 0 && path[..n].iter().zip(&parts[..n]).all(|(a, b)| a == b) {
            return format!("{message} (set by {var})");
        }
    }
    message
}

/// Sets the string `value` at `path`, creating tables on the way.
fn set_path(table: &mut toml::Table, path: &[String], value: String) -> Result<(), String> {
    let (last, head) = path.split_last().ok_or("empty variable name")?;
    if path.iter().any(String::is_empty) {
        return Err("is not a valid key path (empty segment)".into());
    }
    let mut t = table;
    for (i, seg) in head.iter().enumerate() {
        let entry = t
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("cannot be set: `{}` is not a table", path[..=i].join(".")))?;
    }
    t.insert(last.clone(), toml::Value::String(value));
    Ok(())
}

fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError {
        origin: origin.to_string(),
        field: String::new(),
        message: located(text, e),
    }
}

/// The error's message with `line L, column C` when it has a position.
fn located(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{message} (line {line}, column {column})")
        }
        None => message,
    }
}

type Invalid = (String, String);

fn bad(field: &str, message: impl Into<String>) -> Invalid {
    (field.to_string(), message.into())
}

fn duration(field: &str, text: &str) -> Result<Duration, Invalid> {
    let d = parse_window(text).map_err(|e| bad(field, e.reason))?;
    if d.is_zero() {
        return Err(bad(field, "must be greater than zero"));
    }
    Ok(d)
}

/// Whether an admin token is an example's placeholder (`change-me-...`, `CHANGEME`).
fn is_placeholder(token: &str) -> bool {
    let letters: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    letters.contains("changeme")
}

fn validate(origin: &str, raw: RawConfig, listen: Option<&str>) -> Result<Settings, Invalid> {
    let (listen_field, listen_text) = match listen {
        Some(l) => ("--listen", l.to_string()),
        None => (
            "listen",
            raw.listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8080".to_string()),
        ),
    };
    let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
        bad(
            listen_field,
            format!("`{listen_text}` is not an address like 127.0.0.1:8080 or [::1]:8080"),
        )
    })?;
    let max_body_bytes = raw.max_body_bytes.map_or(64 * 1024, |n| n.0);
    if max_body_bytes < 64 {
        return Err(bad("max_body_bytes", "must be at least 64"));
    }
    let max_key_bytes = raw.max_key_bytes.map_or(256, |n| n.0);
    if max_key_bytes == 0 {
        return Err(bad("max_key_bytes", "must be at least 1"));
    }
    let shutdown_timeout = match &raw.shutdown_timeout {
        Some(t) => duration("shutdown_timeout", t)?,
        None => Duration::from_secs(30),
    };

    let server = server_settings(&raw.server)?;

    let s = &raw.store;
    if s.url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(bad(
            "store.url",
            "is empty: set a Redis URL, or remove it (and TIDEGATE_STORE__URL) for the memory store",
        ));
    }
    let store = match s.url.as_deref().map(str::trim) {
        None => {
            for (field, set) in [
                ("store.on_error", s.on_error.is_some()),
                ("store.timeout", s.timeout.is_some()),
                ("store.connect_timeout", s.connect_timeout.is_some()),
                ("store.namespace", s.namespace.is_some()),
                ("store.tls_ca_file", s.tls_ca_file.is_some()),
                ("store.deny_cache", s.deny_cache.is_some()),
            ] {
                if set {
                    return Err(bad(
                        field,
                        "applies only to a Redis store: set `store.url` too (or remove it)",
                    ));
                }
            }
            memory_store(s)?
        }
        Some(url) => {
            for (field, set) in [
                ("store.max_keys", s.max_keys.is_some()),
                ("store.max_memory_bytes", s.max_memory_bytes.is_some()),
                ("store.on_full", s.on_full.is_some()),
            ] {
                if set {
                    return Err(bad(
                        field,
                        "applies only to the memory store (Redis keys expire by themselves)",
                    ));
                }
            }
            let urls = parse_urls(url).map_err(|e| bad("store.url", e.to_string()))?;
            let on_error = match s.on_error.as_deref().map(str::trim) {
                None | Some("local") => FailurePolicy::Local,
                Some("fail_open") => FailurePolicy::FailOpen,
                Some("fail_closed") => FailurePolicy::FailClosed,
                Some(other) => {
                    return Err(bad(
                        "store.on_error",
                        format!("`{other}` is not one of fail_open, fail_closed, local"),
                    ));
                }
            };
            let mut options = RedisOptions::default();
            if let Some(t) = &s.timeout {
                options.timeout = duration("store.timeout", t)?;
                if options.timeout > MAX_STORE_TIMEOUT {
                    return Err(bad(
                        "store.timeout",
                        format!(
                            "{:?} is longer than {MAX_STORE_TIMEOUT:?}: every decision may wait that long while Redis is down",
                            options.timeout
                        ),
                    ));
                }
            }
            if let Some(t) = &s.connect_timeout {
                options.connect_timeout = duration("store.connect_timeout", t)?;
            }
            if let Some(ca) = &s.tls_ca_file {
                if !ca.is_file() {
                    return Err(bad(
                        "store.tls_ca_file",
                        format!("`{}` is not a readable file", ca.display()),
                    ));
                }
                options.tls_ca_file = Some(ca.clone());
            }
            let namespace = s.namespace.clone().unwrap_or_else(|| "tidegate".into());
            if namespace.is_empty() || namespace.contains(['{', '}', ':']) {
                return Err(bad(
                    "store.namespace",
                    format!("`{namespace}` must be non-empty and free of `{{`, `}}` and `:`"),
                ));
            }
            StoreSettings::Redis {
                urls,
                options,
                on_error,
                namespace,
                deny_cache: s.deny_cache.is_some_and(|f| f.0),
            }
        }
    };

    let admin_token = match raw.admin.token {
        None => None,
        Some(t) if t.trim().is_empty() => {
            return Err(bad(
                "admin.token",
                "must not be empty (remove it to turn the admin routes off)",
            ));
        }
        Some(t) if t.trim() != t || t.chars().any(char::is_control) => {
            return Err(bad(
                "admin.token",
                "must not contain spaces or control characters at its ends or inside (a trailing newline from a file?): no request could ever match it",
            ));
        }
        Some(t) if t.len() < 16 => {
            return Err(bad(
                "admin.token",
                "is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        Some(t) if is_placeholder(&t) => {
            return Err(bad(
                "admin.token",
                "is a placeholder (it says `change me`): set a secret of your own, e.g. \
                 TIDEGATE_ADMIN__TOKEN=$(openssl rand -hex 32)",
            ));
        }
        Some(t) => Some(t),
    };

    let mut policies = Vec::with_capacity(raw.policies.len());
    for (name, PolicyEntry(set)) in raw.policies {
        let field = format!("policies.{name}");
        if name.is_empty()
            || name.len() > MAX_POLICY_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad(
                &field,
                format!(
                    "is not a valid policy name: use 1 to {MAX_POLICY_NAME} letters, digits, `_`, `-` or `.`"
                ),
            ));
        }
        policies.push((name, set));
    }

    let tracker = match raw.tracker {
        None => None,
        Some(t) => {
            let spec_text = t.spec.unwrap_or_else(|| "simple".into());
            let spec: TrackerSpec = spec_text
                .parse::<TrackerSpec>()
                .map_err(|e| bad("tracker.spec", e.to_string()))?;
            let bytes = TrackerBytes {
                max_detail_bytes: t.max_detail_bytes.map(|n| n.0 as usize),
                max_batch_bytes: t.max_batch_bytes.map(|n| n.0 as usize),
                max_memory_bytes: t.max_memory_bytes.map(|n| n.0 as usize),
            };
            // Build once, outside any runtime, to check every value now.
            bytes
                .apply(spec.apply(tidegate::tracker::EventTracker::builder()))
                .manual_ticks()
                .processor(|_| async { Ok::<_, String>(()) })
                .build()
                .map_err(|e: tidegate::tracker::TrackError| match e {
                    tidegate::tracker::TrackError::Invalid { field, reason }
                        if field == "max_memory_bytes" =>
                    {
                        bad("tracker.max_memory_bytes", reason)
                    }
                    e => bad("tracker.spec", e.to_string()),
                })?;
            let max_details = t.max_details.map(|n| n.0 as usize);
            let sink = match t.sink {
                None => {
                    return Err(bad(
                        "tracker.sink",
                        "is required: deferred batches must go somewhere, e.g. \
                         sink = { type = \"jsonl\", path = \"events.jsonl\" }",
                    ));
                }
                Some(RawSink::Jsonl(RawJsonl { path })) => {
                    let path = path.trim();
                    if path.is_empty() {
                        return Err(bad(
                            "tracker.sink.path",
                            "must be a file path, or `-` for standard output",
                        ));
                    }
                    SinkSettings::Jsonl {
                        path: (path != "-").then(|| PathBuf::from(path)),
                    }
                }
                Some(RawSink::Webhook(RawWebhook {
                    url,
                    timeout,
                    headers,
                    ca_file,
                })) => {
                    let url = url.trim().to_string();
                    super::webhook::check_url(&url)
                        .map_err(|e| bad("tracker.sink.url", format!("`{url}` {e:#}")))?;
                    let timeout = match timeout {
                        Some(t) => duration("tracker.sink.timeout", &t)?,
                        None => Duration::from_secs(5),
                    };
                    for (k, v) in &headers {
                        if axum::http::HeaderName::try_from(k.as_str()).is_err()
                            || axum::http::HeaderValue::try_from(v.as_str()).is_err()
                        {
                            return Err(bad(
                                &format!("tracker.sink.headers.{k}"),
                                "is not a valid HTTP header name and value",
                            ));
                        }
                    }
                    if let Some(ca) = &ca_file
                        && !ca.is_file()
                    {
                        return Err(bad(
                            "tracker.sink.ca_file",
                            format!("`{}` is not a readable file", ca.display()),
                        ));
                    }
                    SinkSettings::Webhook {
                        url,
                        timeout,
                        headers: headers.into_iter().collect(),
                        ca_file,
                    }
                }
                Some(RawSink::RedisStream(RawRedisStream { key, maxlen })) => {
                    if !matches!(store, StoreSettings::Redis { .. }) {
                        return Err(bad(
                            "tracker.sink.type",
                            "`redis_stream` needs a Redis store: set `store.url`",
                        ));
                    }
                    if key.trim().is_empty() {
                        return Err(bad("tracker.sink.key", "must not be empty"));
                    }
                    SinkSettings::RedisStream {
                        key,
                        maxlen: maxlen.map(|n| n.0),
                    }
                }
            };
            let shared = match t.store.as_deref().map(str::trim) {
                None | Some("memory") => None,
                Some("redis") => {
                    if !matches!(store, StoreSettings::Redis { .. }) {
                        return Err(bad(
                            "tracker.store",
                            "`redis` shares the tracker through the server's Redis store: set `store.url`",
                        ));
                    }
                    let name = t.name.unwrap_or_else(|| "default".into());
                    if name.trim().is_empty() {
                        return Err(bad("tracker.name", "must not be empty"));
                    }
                    Some(name)
                }
                Some(other) => {
                    return Err(bad(
                        "tracker.store",
                        format!("`{other}` is not a tracker store; use `memory` or `redis`"),
                    ));
                }
            };
            let lease = match t.lease {
                Some(text) => {
                    let lease = duration("tracker.lease", &text)?;
                    let interval = spec.processing_interval();
                    if lease <= interval {
                        return Err(bad(
                            "tracker.lease",
                            format!(
                                "{lease:?} must be longer than the processing interval ({interval:?}) and the sink's longest delivery"
                            ),
                        ));
                    }
                    Some(lease)
                }
                None => None,
            };
            Some(TrackerSettings {
                spec,
                spec_text,
                max_details,
                bytes,
                sink,
                shared,
                lease,
            })
        }
    };
    if policies.is_empty() && tracker.is_none() {
        return Err(bad(
            "policies",
            "is empty and no [tracker] is configured: the server would have nothing to do",
        ));
    }

    let level = raw.log.level.unwrap_or_else(|| "info".into());
    let filter: Targets = level.parse().map_err(|e| {
        bad(
            "log.level",
            format!(
                "`{level}` is not a level or filter like `info` or `tidegate=debug,warn` ({e})"
            ),
        )
    })?;
    let format = match raw.log.format.as_deref().map(str::trim) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(bad(
                "log.format",
                format!("`{other}` is not one of text, json"),
            ));
        }
    };
    let log = LogSettings {
        filter,
        level,
        format,
        file: raw.log.file,
        console: raw.log.console.is_none_or(|f| f.0),
    };

    Ok(Settings {
        origin: origin.to_string(),
        listen,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        max_key_bytes: usize::try_from(max_key_bytes).unwrap_or(usize::MAX),
        legacy_headers: raw.legacy_headers.is_some_and(|f| f.0),
        shutdown_timeout,
        server,
        store,
        admin_token,
        policies,
        tracker,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(text: &str) -> ConfigError {
        let e = parse("t.toml", text, env(&[]), None).unwrap_err();
        eprintln!("{e}");
        e
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let s = load(None, env(&[]), None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            s.store,
            StoreSettings::Memory {
                max_keys: None,
                max_memory_bytes: DEFAULT_STORE_MEMORY_BYTES as usize,
                on_full: OnFull::Reject
            }
        );
        let names: Vec<&str> = s.policies.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["api", "login", "search"]);
        assert_eq!(s.policies[2].1.policies().len(), 2);
        assert!(s.admin_token.is_none());
        assert_eq!(s.tracker.unwrap().sink, SinkSettings::Jsonl { path: None });
    }

    #[test]
    fn policies_take_strings_tables_and_lists() {
        let s = parse(
            "t.toml",
            r#"
            [policies]
            a = "token_bucket:100/1m,burst=20"
            b = { algorithm = "fixed_window", limit = 3, window = "10s" }
            c = ["gcra:10/1s", { algorithm = "fixed_window", limit = 1000, window = "1d" }]
            d = "gcra:10/1s;fixed_window:1000/1d"
            "#,
            env(&[]),
            None,
        )
        .unwrap();
        let text: Vec<String> = s.policies.iter().map(|(_, p)| p.to_string()).collect();
        assert_eq!(
            text,
            [
                "token_bucket:100/1m,burst=20",
                "fixed_window:3/10s",
                "gcra:10/1s;fixed_window:1000/1day",
                "gcra:10/1s;fixed_window:1000/1day"
            ]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = err("colour = 1\n[policies]\na = \"gcra:1/1s\"");
        assert_eq!(e.field, "colour");
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        assert!(e.message.contains("line 1, column 1"), "{e}");
        let e = err(
            "[store]\nurl = \"redis://x:1\"\nonerror = \"local\"\n[policies]\na = \"gcra:1/1s\"",
        );
        assert_eq!(e.field, "store.onerror");
        assert!(e.message.contains("unknown field `onerror`"), "{e}");
        let e = err("[policies]\nlogin = \"fixed_window:0/10s\"");
        assert_eq!(e.field, "policies.login");
        assert!(e.message.contains("`limit` must be at least 1"), "{e}");
        assert!(
            e.to_string()
                .starts_with("invalid configuration (t.toml): `policies.login`: invalid policy"),
            "{e}"
        );
        let e = err("[policies]\nlogin = { algorithm = \"fixed_window\", limit = 3 }");
        assert_eq!(e.field, "policies.login");
        let e = err(
            "[store]\nurl = \"redis://x:1\"\non_error = \"open\"\n[policies]\na = \"gcra:1/1s\"",
        );
        assert_eq!(e.field, "store.on_error");
        let e = err("[store]\ntimeout = \"50ms\"\n[policies]\na = \"gcra:1/1s\"");
        assert_eq!(e.field, "store.timeout");
        let e = err("[admin]\ntoken = \"short\"\n[policies]\na = \"gcra:1/1s\"");
        assert_eq!(e.field, "admin.token");
        let e = err("[policies]\n\"a b\" = \"gcra:1/1s\"");
        assert_eq!(e.field, "policies.a b");
        let e =
            err("[tracker]\nspec = \"simple:limit=0\"\nsink = { type = \"jsonl\", path = \"-\" }");
        assert_eq!(e.field, "tracker.spec");
        let e = err("[tracker]\nsink = { type = \"jsonl\", path = \"-\", colour = 1 }");
        assert_eq!(e.field, "tracker.sink");
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        let e = err("[tracker]\nsink = { type = \"redis_stream\", key = \"k\" }");
        assert_eq!(e.field, "tracker.sink.type");
        let e = err("[tracker]\nsink = { type = \"webhook\", url = \"ftp://x\" }");
        assert_eq!(e.field, "tracker.sink.url");
        let e = err(
            "[tracker]\nsink = { type = \"webhook\", url = \"http://x\", headers = { \"a b\" = \"1\" } }",
        );
        assert_eq!(e.field, "tracker.sink.headers.a b");
        let sink = "sink = { type = \"jsonl\", path = \"e.jsonl\" }";
        let e = err(&format!("[tracker]\nstore = \"redis\"\n{sink}"));
        assert_eq!(e.field, "tracker.store", "{e}");
        let e = err(&format!("[tracker]\nstore = \"disk\"\n{sink}"));
        assert_eq!(e.field, "tracker.store");
        let redis = "[store]\nurl = \"redis://127.0.0.1:1\"\n";
        let e = err(&format!(
            "{redis}[tracker]\nstore = \"redis\"\nname = \" \"\n{sink}"
        ));
        assert_eq!(e.field, "tracker.name");
        let e = err(&format!(
            "{redis}[tracker]\nstore = \"redis\"\nlease = \"soon\"\n{sink}"
        ));
        assert_eq!(e.field, "tracker.lease");
        let e = err("[log]\nformat = \"xml\"\n[policies]\na = \"gcra:1/1s\"");
        assert_eq!(e.field, "log.format");
        let e = err("listen = \"nowhere\"\n[policies]\na = \"gcra:1/1s\"");
        assert_eq!(e.field, "listen");
        let e = err("");
        assert_eq!(e.field, "policies");
        let e = err("[policies\n");
        assert_eq!(e.field, "");
    }

    #[test]
    fn environment_overrides_apply_and_are_named_in_errors() {
        let text = "listen = \"127.0.0.1:1\"\n[policies]\na = \"gcra:1/1s\"";
        let s = parse(
            "t.toml",
            text,
            env(&[
                ("TIDEGATE_LISTEN", "127.0.0.1:2"),
                ("TIDEGATE_ADMIN__TOKEN", "1234567890123456"),
                ("TIDEGATE_POLICIES__B", "fixed_window:3/10s"),
                ("TIDEGATE_MAX_KEY_BYTES", "64"),
                ("TIDEGATE_CONFIG", "ignored.toml"),
                ("OTHER", "x"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(s.admin_token.as_deref(), Some("1234567890123456"));
        assert_eq!(s.policies.len(), 2);
        assert_eq!(s.max_key_bytes, 64);
        let s = parse("t.toml", text, env(&[]), Some("127.0.0.1:3")).unwrap();
        assert_eq!(s.listen.port(), 3);
        let e = parse(
            "t.toml",
            text,
            env(&[("TIDEGATE_STORE__TIMEOUT", "50ms")]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "store.timeout");
        assert!(
            e.message.ends_with("(set by TIDEGATE_STORE__TIMEOUT)"),
            "{e}"
        );
        let e = parse("t.toml", text, env(&[("TIDEGATE_COLOUR", "red")]), None).unwrap_err();
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        assert!(e.message.contains("TIDEGATE_COLOUR"), "{e}");
        let e = parse(
            "t.toml",
            text,
            env(&[("TIDEGATE_POLICIES__A__LIMIT", "3")]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "policies.a.limit");
    }

    #[test]
    fn a_placeholder_admin_token_is_refused() {
        for token in [
            "change-me-to-a-long-random-secret",
            "CHANGEME-0123456789abcdef",
            "please_change_me_0123456789",
        ] {
            let e = err(&format!(
                "[admin]\ntoken = \"{token}\"\n[policies]\na = \"gcra:1/1s\""
            ));
            assert_eq!(e.field, "admin.token", "{token}");
            assert!(e.message.starts_with("is a placeholder"), "{e}");
        }
        let s = parse(
            "t.toml",
            "[admin]\ntoken = \"0f3c9a1e7b2d4c6e8a0b\"\n[policies]\na = \"gcra:1/1s\"",
            env(&[]),
            None,
        )
        .unwrap();
        assert_eq!(s.admin_token.as_deref(), Some("0f3c9a1e7b2d4c6e8a0b"));
    }

    #[test]
    fn variables_of_other_subcommands_are_ignored() {
        let text = "[policies]\na = \"gcra:1/1s\"";
        let s = parse(
            "t.toml",
            text,
            env(&[
                ("TIDEGATE_QUEUE__NAME", "wallet-audit"),
                ("TIDEGATE_QUEUE__TIMEOUT", "5s"),
                ("TIDEGATE_JOB_ID", "7"),
                ("TIDEGATE_STORE__URL", "redis://127.0.0.1:6379"),
            ]),
            None,
        )
        .unwrap();
        assert!(matches!(s.store, StoreSettings::Redis { .. }));
    }

    #[test]
    fn old_variable_names_and_unknown_queue_variables_are_refused_by_name() {
        let text = "[policies]\na = \"gcra:1/1s\"";
        let e = parse("t.toml", text, env(&[("TIDEGATE_QUEUE", "audit")]), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration (t.toml): environment variable TIDEGATE_QUEUE is no longer \
             read: set TIDEGATE_QUEUE__NAME instead (every subcommand reads the same names, \
             see docs/CONFIGURATION.md)"
        );
        let e = parse(
            "t.toml",
            text,
            env(&[("TIDEGATE_REDIS_URL", "redis://127.0.0.1:6379")]),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("set TIDEGATE_STORE__URL instead"), "{e}");
        let e = parse("t.toml", text, env(&[("TIDEGATE_QUEUE__NAEM", "a")]), None).unwrap_err();
        assert_eq!(
            e.message,
            "unknown environment variable TIDEGATE_QUEUE__NAEM: the queue reads \
             TIDEGATE_QUEUE__NAME, TIDEGATE_QUEUE__TIMEOUT"
        );
    }
}
