//! Fuzz targets: one function per input a user or client controls, each taking raw
//! bytes. Every target checks that nothing panics and that each input is answered in
//! bounded time; where a printer exists, an accepted input prints to a form that parses
//! back to the same value. `fuzz_targets/main.rs` runs them under libFuzzer
//! (`scripts/fuzz`); `tests/corpus.rs` runs every file of `corpus/TARGET/` through its
//! target as an ordinary test.

pub mod config;
pub mod envoy;
pub mod http;
pub mod policy;
pub mod tracker_spec;

use std::sync::OnceLock;

/// A target: takes one input, panics on a defect.
pub type Target = fn(&[u8]);

/// Every target by name (its `corpus/` folder, `TIDEGATE_FUZZ_TARGET` of the binary).
pub const TARGETS: &[(&str, Target)] = &[
    ("policy", policy::short_form),
    ("policy_toml", policy::toml_table),
    ("tracker_spec", tracker_spec::spec),
    ("serve_config", config::serve_config),
    ("http", http::request),
    ("envoy_yaml", envoy::yaml_config),
    ("envoy_request", envoy::request),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The one runtime every target runs its async work on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The input as text, if it is UTF-8 (every target reads text but the Envoy protobuf).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
