//! Header formatting: IETF `RateLimit-Policy` / `RateLimit` (structured-field lists,
//! draft-ietf-httpapi-ratelimit-headers), `Retry-After`, legacy `X-RateLimit-*`.

use std::fmt::Write as _;
use std::time::Duration;

use axum::http::HeaderName;

/// `RateLimit-Policy`: the quota policies, e.g. `"api";q=100;w=60`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: the current service limits, e.g. `"api";r=42;t=18`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Legacy `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// Legacy `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// Legacy `X-RateLimit-Reset` (epoch seconds).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

const MICROS: u64 = 1_000_000;

/// Microseconds as whole seconds, rounded up (`0` stays `0`).
pub fn secs_ceil(micros: u64) -> u64 {
    micros.div_ceil(MICROS)
}

/// The `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(micros: u64) -> u64 {
    secs_ceil(micros).max(1)
}

/// A duration as whole seconds, rounded up.
pub fn duration_secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Appends `name` as a structured-field string (`"..."`): `"` and `\` escaped, bytes
/// outside printable ASCII replaced by `_`.
pub fn push_sf_string(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
}

/// Appends one `RateLimit-Policy` member: `"name";q=LIMIT;w=WINDOW_SECS`, preceded by
/// `, ` unless `out` is empty.
pub fn push_policy_member(out: &mut String, name: &str, quota: u64, window_secs: u64) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    push_sf_string(out, name);
    let _ = write!(out, ";q={quota};w={window_secs}");
}

/// Appends one `RateLimit` member: `"name";r=REMAINING;t=RESET_SECS`, preceded by `, `
/// unless `out` is empty.
pub fn push_limit_member(out: &mut String, name: &str, remaining: u64, reset_secs: u64) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    push_sf_string(out, name);
    let _ = write!(out, ";r={remaining};t={reset_secs}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_retry_after_is_at_least_one() {
        assert_eq!(secs_ceil(0), 0);
        assert_eq!(secs_ceil(1), 1);
        assert_eq!(secs_ceil(1_000_000), 1);
        assert_eq!(secs_ceil(1_000_001), 2);
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(17_200_000), 18);
        assert_eq!(duration_secs_ceil(Duration::from_millis(1500)), 2);
        assert_eq!(duration_secs_ceil(Duration::from_secs(60)), 60);
    }

    #[test]
    fn members_follow_the_draft_syntax() {
        let mut p = String::new();
        push_policy_member(&mut p, "api", 100, 60);
        assert_eq!(p, r#""api";q=100;w=60"#);
        push_policy_member(&mut p, "daily", 1000, 86_400);
        assert_eq!(p, r#""api";q=100;w=60, "daily";q=1000;w=86400"#);
        let mut l = String::new();
        push_limit_member(&mut l, "api", 42, 18);
        push_limit_member(&mut l, "daily", 0, 3);
        assert_eq!(l, r#""api";r=42;t=18, "daily";r=0;t=3"#);
    }

    #[test]
    fn names_are_escaped_as_structured_field_strings() {
        let mut s = String::new();
        push_sf_string(&mut s, "a\"b\\c d\té");
        assert_eq!(s, r#""a\"b\\c d__""#);
    }
}
