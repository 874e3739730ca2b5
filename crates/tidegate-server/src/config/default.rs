//! The configuration used when no file is given.

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
