//! The checks of the top-level keys, then of each section in its own file.

use super::*;

/// Parses a listening address, or says why it is not one.
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:8080 or [::1]:8080"))
}

pub(super) type Invalid = (String, String);

pub(super) fn bad(field: &str, message: impl Into<String>) -> Invalid {
    (field.to_string(), message.into())
}

pub(super) fn duration(field: &str, text: &str) -> Result<Duration, Invalid> {
    let d = parse_window(text).map_err(|e| bad(field, e.reason))?;
    if d.is_zero() {
        return Err(bad(field, "must be greater than zero"));
    }
    Ok(d)
}

/// Checks every section of `raw`, in the file's order of sections.
pub(super) fn validate(origin: &str, raw: RawConfig) -> Result<Config, Invalid> {
    let listen_text = raw
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listen = parse_listen(&listen_text).map_err(|message| bad("listen", message))?;
    let max_body_bytes = raw.max_body_bytes.map_or(64 * 1024, |n| n.0);
    if max_body_bytes < 64 {
        return Err(bad("max_body_bytes", "must be at least 64"));
    }
    let max_key_bytes = raw.max_key_bytes.map_or(256, |n| n.0);
    if max_key_bytes == 0 {
        return Err(bad("max_key_bytes", "must be at least 1"));
    }
    let shutdown_timeout = match &raw.shutdown_timeout {
        Some(t) => duration("shutdown_timeout", t)?,
        None => Duration::from_secs(30),
    };
    let shutdown_delay = match &raw.shutdown_delay {
        Some(t) => duration("shutdown_delay", t)?,
        None => Duration::ZERO,
    };

    let server = server_settings(&raw.server)?;

    let store = store_settings(&raw.store)?;
    let admin_token = admin_token(raw.admin)?;
    let policies = policies(raw.policies)?;
    let tracker = tracker_settings(raw.tracker, &store)?;
    let envoy = envoy_settings(raw.envoy, &store)?;
    if let (Some(e), StoreSettings::Redis { namespace, .. }) = (&envoy, &store)
        && e.namespace.as_ref().is_none_or(|n| n == namespace)
        && policies.iter().any(|(name, _)| name == "envoy")
    {
        return Err(bad(
            "envoy.namespace",
            format!(
                "the Envoy counters' keys (`{namespace}:envoy:...`) would be those of the policy `envoy`: set another envoy.namespace, or rename the policy"
            ),
        ));
    }
    if policies.is_empty() && tracker.is_none() && envoy.is_none() {
        return Err(bad(
            "policies",
            "is empty and neither [tracker] nor [envoy] is configured: the server would have nothing to do",
        ));
    }

    let dashboard_queues = dashboard_queues(raw.dashboard, &store, admin_token.as_deref())?;
    let top = top_settings(&raw.top)?;
    let log = log_settings(raw.log)?;

    Ok(Config {
        origin: origin.to_string(),
        listen,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        max_key_bytes: usize::try_from(max_key_bytes).unwrap_or(usize::MAX),
        legacy_headers: raw.legacy_headers.is_some_and(|f| f.0),
        shutdown_timeout,
        shutdown_delay,
        server,
        store,
        admin_token,
        policies,
        tracker,
        envoy,
        dashboard_queues,
        top,
        log,
    })
}
