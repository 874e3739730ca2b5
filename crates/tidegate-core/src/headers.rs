//! The values of the IETF `RateLimit-Policy` / `RateLimit` header fields
//! (structured-field lists, draft-ietf-httpapi-ratelimit-headers) and the seconds of
//! `Retry-After`: one formatter for every front end (the HTTP layer, `tidegate serve`,
//! the Node package's Express middleware), so that they send the same text.

use std::fmt::Write as _;
use std::time::Duration;

use crate::PolicySet;

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

/// The `RateLimit-Policy` value of a limit named `name` that `policies` guard: one
/// member per policy, the first named `name`, the next ones `name-2`, `name-3`, ...
pub fn policy_set_value(name: &str, policies: &PolicySet) -> String {
    let mut out = String::new();
    for (i, policy) in policies.policies().iter().enumerate() {
        let window = duration_secs_ceil(policy.window());
        if i == 0 {
            push_policy_member(&mut out, name, policy.limit(), window);
        } else {
            push_policy_member(
                &mut out,
                &format!("{name}-{}", i + 1),
                policy.limit(),
                window,
            );
        }
    }
    out
}

/// Appends one `RateLimit` member: `"name";r=REMAINING;t=RESET_SECS`, preceded by `, `
/// unless `out` is empty.
pub fn push_limit_member(out: &mut String, name: &str, remaining: u64, reset_secs: u64) {
    let mut text = HeaderText::new();
    LimitMember::new(name).push(&mut text, remaining, reset_secs);
    if !out.is_empty() {
        out.push_str(", ");
    }
    // Only ASCII was written (the name escaped as a structured-field string).
    out.push_str(std::str::from_utf8(text.as_bytes()).unwrap_or_default());
}

/// One limit's member of the `RateLimit` header with its name escaped once, so that a
/// request only writes its two numbers: [`push`](Self::push) appends
/// `"name";r=REMAINING;t=RESET_SECS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitMember {
    /// `"name";r=`
    prefix: Box<[u8]>,
}

impl LimitMember {
    /// The member of the limit named `name`.
    pub fn new(name: &str) -> Self {
        let mut prefix = String::with_capacity(name.len() + 5);
        push_sf_string(&mut prefix, name);
        prefix.push_str(";r=");
        Self {
            prefix: prefix.into_bytes().into_boxed_slice(),
        }
    }

    /// Appends `"name";r=REMAINING;t=RESET_SECS` to `out`, preceded by `, ` unless `out`
    /// is empty.
    pub fn push(&self, out: &mut HeaderText, remaining: u64, reset_secs: u64) {
        if !out.is_empty() {
            out.push(b", ");
        }
        out.push(&self.prefix);
        out.push_u64(remaining);
        out.push(b";t=");
        out.push_u64(reset_secs);
    }
}

/// Bytes a [`HeaderText`] holds without allocating: a few `RateLimit` members.
const INLINE: usize = 112;

/// A header value being written: held inline up to 112 bytes, on the heap past that.
#[derive(Clone)]
pub struct HeaderText {
    inline: [u8; INLINE],
    len: usize,
    heap: Vec<u8>,
}

impl Default for HeaderText {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HeaderText({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

impl HeaderText {
    /// An empty value.
    pub const fn new() -> Self {
        Self {
            inline: [0; INLINE],
            len: 0,
            heap: Vec::new(),
        }
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was written.
    pub fn as_bytes(&self) -> &[u8] {
        if self.len <= INLINE {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    /// Appends `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        let len = self.len + bytes.len();
        if len <= INLINE {
            self.inline[self.len..len].copy_from_slice(bytes);
        } else {
            if self.len <= INLINE {
                self.heap.reserve(len.max(2 * INLINE));
                self.heap.extend_from_slice(&self.inline[..self.len]);
            }
            self.heap.extend_from_slice(bytes);
        }
        self.len = len;
    }

    /// Appends `n` in decimal.
    pub fn push_u64(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        self.push(decimal(n, &mut buf));
    }
}

/// `n` in decimal, written at the end of `buf` (`u64::MAX` has 20 digits).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
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
    fn a_policy_set_lists_every_policy_the_later_ones_numbered() {
        let one: PolicySet = "fixed_window:2/1h".parse().unwrap();
        assert_eq!(policy_set_value("login", &one), r#""login";q=2;w=3600"#);
        let two: PolicySet = "gcra:10/1s;fixed_window:1000/1d".parse().unwrap();
        assert_eq!(
            policy_set_value("api", &two),
            r#""api";q=10;w=1, "api-2";q=1000;w=86400"#
        );
    }

    #[test]
    fn decimal_digits_match_display() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            999_999_999,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = [0; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn header_text_spills_to_the_heap_past_its_inline_bytes_and_keeps_every_member() {
        let member = LimitMember::new("a-rather-long-policy-name");
        let mut text = HeaderText::new();
        let mut expected = String::new();
        for i in 0..10u64 {
            member.push(&mut text, u64::MAX - i, i);
            push_limit_member(&mut expected, "a-rather-long-policy-name", u64::MAX - i, i);
            assert_eq!(
                text.as_bytes(),
                expected.as_bytes(),
                "after {} members",
                i + 1
            );
        }
        assert!(text.as_bytes().len() > INLINE);
    }

    #[test]
    fn a_limit_member_escapes_its_name_once_and_writes_the_numbers() {
        let mut text = HeaderText::new();
        assert!(text.is_empty());
        LimitMember::new("a\"b").push(&mut text, 42, 18);
        LimitMember::new("daily").push(&mut text, 0, 3);
        assert_eq!(text.as_bytes(), br#""a\"b";r=42;t=18, "daily";r=0;t=3"#);
    }

    #[test]
    fn names_are_escaped_as_structured_field_strings() {
        let mut s = String::new();
        push_sf_string(&mut s, "a\"b\\c d\té");
        assert_eq!(s, r#""a\"b\\c d__""#);
    }
}
