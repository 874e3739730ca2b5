//! The whole `tidegate serve` configuration: TOML text and `TIDEGATE_*` overrides.

use tidegate_server::Config;

/// The line that separates the TOML text from the environment in an input.
pub const ENV_SEPARATOR: &str = "\n#-- environment --\n";

/// Reads the input as `TOML [ENV_SEPARATOR NAME=VALUE lines]` and checks it as
/// `tidegate serve` does; an error must name where it comes from.
pub fn serve_config(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let (toml, env) = text.split_once(ENV_SEPARATOR).unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Err(e) = Config::from_toml("fuzz.toml", toml, env) {
        let message = e.to_string();
        assert!(
            message.contains("fuzz.toml"),
            "error without its origin: {message}"
        );
    }
}
