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
    /// Longest request head (request line and headers) read, in bytes.
    pub(crate) max_header_bytes: usize,
}

/// The range of `server.max_header_bytes`: the upper end is hyper's read buffer.
const HEADER_BYTES: std::ops::RangeInclusive<u64> = 4_096..=409_600;

pub(super) fn server_settings(raw: &RawServer) -> Result<ServerSettings, Invalid> {
    let d = |field: &str, text: &Option<String>, default: u64| match text {
        Some(t) => duration(field, t),
        None => Ok(Duration::from_secs(default)),
    };
    let max_connections = raw.max_connections.map_or(4_096, |n| n.0 as usize);
    if max_connections == 0 {
        return Err(bad("server.max_connections", "must be at least 1"));
    }
    let max_header_bytes = raw.max_header_bytes.map_or(65_536, |n| n.0);
    if !HEADER_BYTES.contains(&max_header_bytes) {
        return Err(bad(
            "server.max_header_bytes",
            format!(
                "must be from {} to {} bytes (got {max_header_bytes})",
                HEADER_BYTES.start(),
                HEADER_BYTES.end()
            ),
        ));
    }
    Ok(ServerSettings {
        header_timeout: d("server.header_timeout", &raw.header_timeout, 10)?,
        body_timeout: d("server.body_timeout", &raw.body_timeout, 10)?,
        idle_timeout: d("server.idle_timeout", &raw.idle_timeout, 60)?,
        max_connections,
        max_header_bytes: max_header_bytes as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header_bytes(n: Option<u64>) -> Result<ServerSettings, Invalid> {
        server_settings(&RawServer {
            max_header_bytes: n.map(Num),
            ..RawServer::default()
        })
    }

    #[test]
    fn max_header_bytes_defaults_to_64_kib_and_names_the_field_and_range_when_out_of_it() {
        assert_eq!(with_header_bytes(None).unwrap().max_header_bytes, 65_536);
        assert_eq!(
            with_header_bytes(Some(409_600)).unwrap().max_header_bytes,
            409_600
        );
        for n in [0, 4_095, 409_601] {
            let (field, message) = with_header_bytes(Some(n)).unwrap_err();
            assert_eq!(field, "server.max_header_bytes");
            assert_eq!(
                message,
                format!("must be from 4096 to 409600 bytes (got {n})")
            );
        }
    }
}
