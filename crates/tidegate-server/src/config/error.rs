//! A configuration that cannot be used: [`ConfigError`].

use std::error::Error;

use thiserror::Error;

/// A configuration that cannot be used: where it came from, the field at fault and why.
///
/// Its message reads `invalid configuration (ORIGIN): `FIELD`: REASON`; when the cause is
/// another error (the file could not be read, a `TIDEGATE_*` variable that is no longer
/// read), that error is its [`source`](Error::source).
#[derive(Debug, Error)]
#[error("invalid configuration ({origin}){}", detail(field, message))]
pub struct ConfigError {
    /// The file, or `embedded default`.
    pub(crate) origin: String,
    /// The dotted path of the field at fault, or empty.
    pub(crate) field: String,
    /// Why, with the environment variable that set the field, if one did.
    pub(crate) message: String,
    /// The error behind it, if any.
    #[source]
    pub(crate) source: Option<Box<dyn Error + Send + Sync>>,
}

/// `: `FIELD`: REASON`, `: REASON` or nothing.
fn detail(field: &str, message: &str) -> String {
    match (field.is_empty(), message.is_empty()) {
        (false, _) => format!(": `{field}`: {message}"),
        (true, false) => format!(": {message}"),
        (true, true) => String::new(),
    }
}

impl ConfigError {
    /// Where the configuration came from: the file's path, or `embedded default`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The dotted path of the field at fault (`store.url`, `policies.login`); empty when
    /// no field is (a syntax error, a file that cannot be read).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why the field (or the file) cannot be used, naming the environment variable that
    /// set it, if one did; empty when the [`source`](Error::source) says it all.
    pub fn reason(&self) -> &str {
        &self.message
    }
}
