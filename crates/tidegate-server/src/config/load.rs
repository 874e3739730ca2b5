//! Reading a configuration: the file or the embedded default, then `TIDEGATE_*`
//! overrides, then the checks of each section ([`validate`](super::validate)).

use super::*;
use crate::env;

impl Config {
    /// Reads the TOML file at `path`, applies the `TIDEGATE_*` overrides among `env`
    /// (`TIDEGATE_STORE__URL` sets `store.url`; pass [`std::env::vars`] for the
    /// process's) and checks everything.
    pub fn load<K, V>(
        path: impl AsRef<Path>,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            field: String::new(),
            message: "cannot read the config file".to_string(),
            source: Some(Box::new(e)),
        })?;
        Config::from_toml(&origin, &text, env)
    }

    /// [`DEFAULT_CONFIG`] (memory store, example policies, a tracker writing to
    /// standard output) with the `TIDEGATE_*` overrides among `env`.
    pub fn embedded_default<K, V>(
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        Config::from_toml("embedded default", DEFAULT_CONFIG, env)
    }

    /// [`Config::load`] from TOML text; `origin` names it in errors.
    pub fn from_toml<K, V>(
        origin: &str,
        text: &str,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let env: Vec<(String, String)> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        parse(origin, text, env)
    }
}

fn parse(origin: &str, text: &str, env: Vec<(String, String)>) -> Result<Config, ConfigError> {
    env::check(env.iter().map(|(k, _)| k)).map_err(|e| ConfigError {
        origin: origin.to_string(),
        field: String::new(),
        message: String::new(),
        source: Some(Box::new(e)),
    })?;
    let overrides = env_overrides(env);
    let fail = |field: &str, message: String| ConfigError {
        origin: origin.to_string(),
        field: field.to_string(),
        message: with_env_note(field, &overrides, message),
        source: None,
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
                source: None,
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
    validate(origin, raw).map_err(|(field, message)| fail(&field, message))
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
        .filter(|(k, _)| k.starts_with(env::PREFIX) && !env::belongs_to_another_subcommand(k))
        .map(|(k, v)| {
            let path = k[env::PREFIX.len()..]
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
        source: None,
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
