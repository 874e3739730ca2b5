//! The server's configuration: a TOML file (or the embedded default), then `TIDEGATE_*`
//! environment overrides, read as written ([`raw`]) and then checked section by section
//! into a [`Config`], with errors that name the field ([`ConfigError`]).
//!
//! Every key is documented in `docs/CONFIGURATION.md`; `examples/tidegate.toml` is a
//! complete example. Unknown keys are errors.

mod admin;
mod dashboard;
mod default;
mod envoy;
mod error;
mod load;
mod log;
mod policies;
mod raw;
mod server;
mod settings;
mod store;
mod summary;
mod top;
mod tracker;
mod validate;

#[cfg(test)]
mod tests;

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

pub use default::DEFAULT_CONFIG;
pub(crate) use envoy::EnvoySettings;
pub use error::ConfigError;
pub(crate) use server::ServerSettings;
pub use settings::Config;
pub(crate) use settings::{LogFormat, SinkSettings, StoreSettings, TrackerSettings};

#[allow(unused_imports)]
use {
    admin::*, dashboard::*, envoy::*, load::*, log::*, policies::*, raw::*, server::*, settings::*,
    store::*, top::*, tracker::*, validate::*,
};
