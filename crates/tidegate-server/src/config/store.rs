//! `[store]`: the memory store and its bounds, or Redis and its failure policy.

use super::*;

/// Longest `store.timeout`: a decision never waits longer for Redis.
pub(crate) const MAX_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default memory budget of the memory store (all policies together).
pub(crate) const DEFAULT_STORE_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

pub(super) fn memory_store(s: &RawStore) -> Result<StoreSettings, Invalid> {
    let max_keys = match s.max_keys {
        None => None,
        Some(Num(0)) => {
            return Err(bad(
                "store.max_keys",
                "must be at least 1 (remove it to size the store from store.max_memory_bytes)",
            ));
        }
        Some(Num(n)) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let max_memory_bytes = s
        .max_memory_bytes
        .map_or(DEFAULT_STORE_MEMORY_BYTES, |n| n.0);
    if max_memory_bytes < 1024 * 1024 {
        return Err(bad(
            "store.max_memory_bytes",
            "must be at least 1048576 (1 MiB)",
        ));
    }
    let on_full = match s.on_full.as_deref().map(str::trim) {
        None | Some("reject") => OnFull::Reject,
        Some("evict") => OnFull::Evict,
        Some("admit_untracked") => OnFull::AdmitUntracked,
        Some(other) => {
            return Err(bad(
                "store.on_full",
                format!("`{other}` is not one of reject, evict, admit_untracked"),
            ));
        }
    };
    Ok(StoreSettings::Memory {
        max_keys,
        max_memory_bytes: usize::try_from(max_memory_bytes).unwrap_or(usize::MAX),
        on_full,
    })
}

/// `[store]`: the memory store (the default) or Redis.
pub(super) fn store_settings(s: &RawStore) -> Result<StoreSettings, Invalid> {
    if s.url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(bad(
            "store.url",
            "is empty: set a Redis URL, or remove it (and TIDEGATE_STORE__URL) for the memory store",
        ));
    }
    Ok(match s.url.as_deref().map(str::trim) {
        None => {
            for (field, set) in [
                ("store.on_error", s.on_error.is_some()),
                ("store.timeout", s.timeout.is_some()),
                ("store.connect_timeout", s.connect_timeout.is_some()),
                ("store.namespace", s.namespace.is_some()),
                ("store.tls_ca_file", s.tls_ca_file.is_some()),
                ("store.deny_cache", s.deny_cache.is_some()),
            ] {
                if set {
                    return Err(bad(
                        field,
                        "applies only to a Redis store: set `store.url` too (or remove it)",
                    ));
                }
            }
            memory_store(s)?
        }
        Some(url) => {
            for (field, set) in [
                ("store.max_keys", s.max_keys.is_some()),
                ("store.max_memory_bytes", s.max_memory_bytes.is_some()),
                ("store.on_full", s.on_full.is_some()),
            ] {
                if set {
                    return Err(bad(
                        field,
                        "applies only to the memory store (Redis keys expire by themselves)",
                    ));
                }
            }
            let urls = parse_urls(url).map_err(|e| bad("store.url", e.to_string()))?;
            let on_error = match s.on_error.as_deref().map(str::trim) {
                None | Some("local") => FailurePolicy::Local,
                Some("fail_open") => FailurePolicy::FailOpen,
                Some("fail_closed") => FailurePolicy::FailClosed,
                Some(other) => {
                    return Err(bad(
                        "store.on_error",
                        format!("`{other}` is not one of fail_open, fail_closed, local"),
                    ));
                }
            };
            let mut options = RedisOptions::default();
            if let Some(t) = &s.timeout {
                options.timeout = duration("store.timeout", t)?;
                if options.timeout > MAX_STORE_TIMEOUT {
                    return Err(bad(
                        "store.timeout",
                        format!(
                            "{:?} is longer than {MAX_STORE_TIMEOUT:?}: every decision may wait that long while Redis is down",
                            options.timeout
                        ),
                    ));
                }
            }
            if let Some(t) = &s.connect_timeout {
                options.connect_timeout = duration("store.connect_timeout", t)?;
            }
            if let Some(ca) = &s.tls_ca_file {
                if !ca.is_file() {
                    return Err(bad(
                        "store.tls_ca_file",
                        format!("`{}` is not a readable file", ca.display()),
                    ));
                }
                options.tls_ca_file = Some(ca.clone());
            }
            let namespace = s.namespace.clone().unwrap_or_else(|| "tidegate".into());
            if namespace.is_empty() || namespace.contains(['{', '}', ':']) {
                return Err(bad(
                    "store.namespace",
                    format!("`{namespace}` must be non-empty and free of `{{`, `}}` and `:`"),
                ));
            }
            StoreSettings::Redis {
                urls,
                options,
                on_error,
                namespace,
                deny_cache: s.deny_cache.is_some_and(|f| f.0),
            }
        }
    })
}
