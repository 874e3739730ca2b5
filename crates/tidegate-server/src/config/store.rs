//! `[store]`: the memory store and its bounds, or Redis and its failure policy.

use super::*;

/// Longest `store.timeout`: a decision never waits longer for Redis.
pub(crate) const MAX_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default memory budget of the memory store (all policies together).
pub(crate) const DEFAULT_STORE_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// Smallest memory budget of the memory store.
const MIN_STORE_MEMORY_BYTES: u64 = 1024 * 1024;

/// A size in bytes from a whole number and an optional unit: `B`, `KB`, `MB`, `GB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), in any case, with or
/// without a space (`"256MB"`, `"64 MiB"`, `"1_000_000"`).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let hint = "write a whole number with a unit, e.g. \"256MB\", \"64MiB\", \"1GB\" \
                (KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024)";
    let number: u64 = match number.replace('_', "").parse() {
        Ok(n) => n,
        Err(_) if number.is_empty() => return Err(format!("`{text}` is not a size: {hint}")),
        Err(_) => return Err(format!("`{text}` is too large")),
    };
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit `{}`: {hint}",
                unit.trim()
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

pub(super) fn memory_store(s: &RawStore) -> Result<StoreSettings, Invalid> {
    let max_keys = match s.max_keys {
        None => None,
        Some(Num(0)) => {
            return Err(bad(
                "store.max_keys",
                "must be at least 1 (remove it to size the store from store.max_memory)",
            ));
        }
        Some(Num(n)) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let (field, max_memory_bytes) = match (&s.max_memory, s.max_memory_bytes) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "store.max_memory",
                "and store.max_memory_bytes are both set: keep one (max_memory = \"256MB\" \
                 is the same budget as max_memory_bytes = 256000000)",
            ));
        }
        (Some(size), None) => (
            "store.max_memory",
            parse_size(&size.0).map_err(|m| bad("store.max_memory", m))?,
        ),
        (None, Some(n)) => ("store.max_memory_bytes", n.0),
        (None, None) => ("store.max_memory", DEFAULT_STORE_MEMORY_BYTES),
    };
    if max_memory_bytes < MIN_STORE_MEMORY_BYTES {
        return Err(bad(
            field,
            format!("must be at least 1 MiB (1048576 bytes), got {max_memory_bytes} bytes"),
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
                ("store.max_memory", s.max_memory.is_some()),
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

#[cfg(test)]
mod tests {
    use super::parse_size;
    use crate::config::{Config, StoreSettings};

    fn budget(toml: &str, env: &[(&str, &str)]) -> usize {
        let text = format!("{toml}\n[policies]\na = \"gcra:1/1s\"\n");
        match Config::from_toml("t.toml", &text, env.iter().copied())
            .unwrap()
            .store
        {
            StoreSettings::Memory {
                max_memory_bytes, ..
            } => max_memory_bytes,
            StoreSettings::Redis { .. } => unreachable!("a memory store"),
        }
    }

    #[test]
    fn max_memory_is_read_with_units_from_the_file_and_the_environment() {
        assert_eq!(budget("[store]\nmax_memory = \"8MB\"", &[]), 8_000_000);
        assert_eq!(budget("[store]\nmax_memory = 16777216", &[]), 16 << 20);
        assert_eq!(budget("[store]\nmax_memory_bytes = 4194304", &[]), 4 << 20);
        assert_eq!(
            budget("", &[("TIDEGATE_STORE__MAX_MEMORY", "64MiB")]),
            64 << 20
        );
        assert_eq!(budget("", &[]), 256 << 20);
    }

    #[test]
    fn sizes_read_decimal_and_binary_units_in_any_case() {
        for (text, bytes) in [
            ("256MB", 256_000_000),
            ("256 MiB", 256 << 20),
            ("8mb", 8_000_000),
            ("1GB", 1_000_000_000),
            ("2GiB", 2 << 30),
            ("512KiB", 512 << 10),
            ("64KB", 64_000),
            ("1_048_576", 1 << 20),
            ("4096 B", 4096),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn sizes_without_a_number_with_an_unknown_unit_or_too_large_are_errors() {
        let hint = "write a whole number with a unit, e.g. \"256MB\", \"64MiB\", \"1GB\" \
                    (KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024)";
        assert_eq!(parse_size("MB"), Err(format!("`MB` is not a size: {hint}")));
        assert_eq!(parse_size(""), Err(format!("`` is not a size: {hint}")));
        assert_eq!(
            parse_size("1.5GB"),
            Err(format!("`1.5GB` has an unknown unit `.5GB`: {hint}"))
        );
        assert_eq!(
            parse_size("256 megabytes"),
            Err(format!(
                "`256 megabytes` has an unknown unit `megabytes`: {hint}"
            ))
        );
        assert_eq!(
            parse_size("-1MB"),
            Err(format!("`-1MB` is not a size: {hint}"))
        );
        assert_eq!(
            parse_size("99999999999GB"),
            Err("`99999999999GB` is too large".to_string())
        );
        assert_eq!(
            parse_size("99999999999999999999"),
            Err("`99999999999999999999` is too large".to_string())
        );
    }
}
