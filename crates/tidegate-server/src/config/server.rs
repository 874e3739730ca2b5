//! `[server]`: how connections are served (timeouts, connection cap).

use super::*;

/// How connections are served (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerSettings {
    /// Longest wait for a request's complete headers.
    pub(crate) header_timeout: Duration,
    /// Longest wait for a request's complete body.
    pub(crate) body_timeout: Duration,
    /// A connection without a request in progress is closed after this long.
    pub(crate) idle_timeout: Duration,
    /// Most open connections.
    pub(crate) max_connections: usize,
}

pub(super) fn server_settings(raw: &RawServer) -> Result<ServerSettings, Invalid> {
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
