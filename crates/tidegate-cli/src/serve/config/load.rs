//! Reading a configuration: the file or the embedded default, then `TIDEGATE_*`
//! overrides, then the checks of each section.

use super::*;

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

pub(super) fn field_or_empty(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_string()
    }
}

/// `TIDEGATE_A__B=v` → (`["a","b"]`, (`TIDEGATE_A__B`, `v`)), sorted; the variables of
/// other subcommands (`TIDEGATE_CONFIG`, `TIDEGATE_QUEUE__NAME`, ...) excepted.
pub(super) fn env_overrides(
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
pub(super) fn with_env_note(
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
pub(super) fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: String,
) -> Result<(), String> {
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

pub(super) fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError {
        origin: origin.to_string(),
        field: String::new(),
        message: located(text, e),
    }
}

/// The error's message with `line L, column C` when it has a position.
pub(super) fn located(text: &str, e: &toml::de::Error) -> String {
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

pub(super) type Invalid = (String, String);

pub(super) fn bad(field: &str, message: impl Into<String>) -> Invalid {
    (field.to_string(), message.into())
}

pub(super) fn duration(field: &str, text: &str) -> Result<Duration, Invalid> {
    let d = parse_window(text).map_err(|e| bad(field, e.reason))?;
    if d.is_zero() {
        return Err(bad(field, "must be greater than zero"));
    }
    Ok(d)
}

pub(super) fn validate(
    origin: &str,
    raw: RawConfig,
    listen: Option<&str>,
) -> Result<Settings, Invalid> {
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

    let store = store_settings(&raw.store)?;
    let admin_token = admin_token(raw.admin)?;
    let policies = policies(raw.policies)?;
    let tracker = tracker_settings(raw.tracker, &store)?;
    if policies.is_empty() && tracker.is_none() {
        return Err(bad(
            "policies",
            "is empty and no [tracker] is configured: the server would have nothing to do",
        ));
    }

    let log = log_settings(raw.log)?;

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
