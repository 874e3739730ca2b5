//! Header formatting: IETF `RateLimit-Policy` / `RateLimit` (structured-field lists,
//! draft-ietf-httpapi-ratelimit-headers), `Retry-After`, legacy `X-RateLimit-*`. The
//! values are written by [`tidegate::headers`], shared with every other front end.

use axum::http::{HeaderName, HeaderValue};
pub use tidegate::headers::{
    HeaderText, LimitMember, decimal, duration_secs_ceil, push_limit_member, push_policy_member,
    push_sf_string, retry_after_secs, secs_ceil,
};

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

/// `text` as a header value (one allocation of its exact length), or `None` if a byte
/// written is not allowed in one.
pub fn header_value(text: &HeaderText) -> Option<HeaderValue> {
    HeaderValue::from_bytes(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_text_becomes_the_same_header_value_inline_or_spilled_and_none_if_invalid() {
        let member = LimitMember::new("a-rather-long-policy-name");
        let mut text = HeaderText::new();
        member.push(&mut text, 42, 18);
        assert_eq!(
            header_value(&text).unwrap(),
            r#""a-rather-long-policy-name";r=42;t=18"#
        );
        while text.as_bytes().len() <= 112 {
            member.push(&mut text, 1, 2);
        }
        assert_eq!(header_value(&text).unwrap().as_bytes(), text.as_bytes());
        text.push(b"\n");
        assert_eq!(header_value(&text), None);
    }
}
