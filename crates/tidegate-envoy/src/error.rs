//! The errors of this crate: loading a configuration, and building a limiter.

use std::path::PathBuf;

/// A configuration that cannot be loaded; names the file, and where known the line and
/// the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML, or not the expected shape (an unknown field, a wrong type).
    #[error("{file}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// What is wrong, with its line and column.
        message: String,
        /// The YAML reader's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A field has a value the rate limit service does not accept.
    #[error("{file}:{}: `{field}`: {message}", line.map_or_else(|| "?".to_string(), |l| l.to_string()))]
    Invalid {
        /// The file.
        file: String,
        /// The line (1-based) of the descriptor or field, when known.
        line: Option<usize>,
        /// The field (`domain`, `key`, `rate_limit.unit`, ...).
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The file the error is in (the path as given), if it is about one file.
    pub fn file(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Yaml { file, .. } | ConfigError::Invalid { file, .. } => Some(file),
        }
    }

    /// The 1-based line the error is at, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Yaml { source, .. } => source.location().map(|l| l.line()),
            ConfigError::Invalid { line, .. } => *line,
        }
    }
}

/// A limiter that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A rule's policy was refused by the backend.
    #[error("rule `{rule}`: {source}")]
    Policy {
        /// The rule (domain and descriptor path).
        rule: String,
        /// Why.
        #[source]
        source: tidegate::PolicyError,
    },
}
