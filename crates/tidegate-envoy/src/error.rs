//! The errors of this crate: loading a configuration, building a limiter, answering a
//! request.

use std::path::PathBuf;

use tidegate::LimitError;

use crate::request::InvalidRequest;

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

/// A request the service cannot answer: invalid (`INVALID_ARGUMENT`) or the store failed
/// (`UNAVAILABLE`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request breaks the protocol's rules (empty domain, no descriptors, empty key).
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The store could not decide (e.g. the memory store is full).
    #[error("cannot decide: {0}")]
    Store(#[source] LimitError),
    /// A descriptor's `limit` override gives no valid policy.
    #[error("invalid limit override: {0}")]
    Override(#[source] tidegate::PolicyError),
}

impl From<RequestError> for tonic::Status {
    fn from(e: RequestError) -> tonic::Status {
        match e {
            RequestError::Invalid(e) => tonic::Status::invalid_argument(e.0),
            RequestError::Store(e) => tonic::Status::unavailable(e.to_string()),
            RequestError::Override(e) => tonic::Status::invalid_argument(e.to_string()),
        }
    }
}
