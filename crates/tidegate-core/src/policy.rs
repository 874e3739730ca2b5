//! Policies chosen at run time: an algorithm with its parameters, written as a short
//! string (`token_bucket:100/1m,burst=20`) or a TOML table
//! (`{ algorithm = "fixed_window", limit = 3, window = "10s" }`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::algorithm::fixed_window::FixedWindowState;
use crate::algorithm::gcra::GcraState;
use crate::algorithm::sliding_log::SlidingLogState;
use crate::algorithm::sliding_window::SlidingWindowState;
use crate::algorithm::throttle::ThrottleState;
use crate::algorithm::token_bucket::TokenBucketState;
use crate::algorithm::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, SlidingLog, SlidingWindow, Throttle, TokenBucket,
};
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::lease::Lease;
use crate::rate::Rate;
use crate::time::micros_to_duration;

/// The name of a limiting algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmKind {
    /// Fixed windows opened by each key's first admitted hit.
    FixedWindow,
    /// Sliding window counter.
    SlidingWindow,
    /// Exact sliding log.
    SlidingLog,
    /// Token bucket.
    TokenBucket,
    /// Shaping leaky bucket (admitted requests get a delay).
    LeakyBucket,
    /// Generic cell rate algorithm.
    Gcra,
    /// First event per key per window.
    Throttle,
}

impl AlgorithmKind {
    /// Every algorithm, in documentation order.
    pub const ALL: [AlgorithmKind; 7] = [
        Self::FixedWindow,
        Self::SlidingWindow,
        Self::SlidingLog,
        Self::TokenBucket,
        Self::LeakyBucket,
        Self::Gcra,
        Self::Throttle,
    ];

    /// The name used in configuration (`fixed_window`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedWindow => "fixed_window",
            Self::SlidingWindow => "sliding_window",
            Self::SlidingLog => "sliding_log",
            Self::TokenBucket => "token_bucket",
            Self::LeakyBucket => "leaky_bucket",
            Self::Gcra => "gcra",
            Self::Throttle => "throttle",
        }
    }

    /// Whether the algorithm takes a `burst` option.
    pub fn takes_burst(self) -> bool {
        matches!(self, Self::TokenBucket | Self::LeakyBucket | Self::Gcra)
    }
}

impl fmt::Display for AlgorithmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlgorithmKind {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, PolicyError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
                PolicyError::new(
                    "algorithm",
                    format!("unknown algorithm `{s}`; valid: {}", valid.join(", ")),
                )
            })
    }
}

/// A validated policy: one algorithm with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// See [`FixedWindow`].
    FixedWindow(FixedWindow),
    /// See [`SlidingWindow`].
    SlidingWindow(SlidingWindow),
    /// See [`SlidingLog`].
    SlidingLog(SlidingLog),
    /// See [`TokenBucket`]; with its `lease` option (see [`Policy::leased`]).
    TokenBucket(TokenBucket, Option<Lease>),
    /// See [`LeakyBucket`].
    LeakyBucket(LeakyBucket),
    /// See [`Gcra`]; with its `lease` option (see [`Policy::leased`]).
    Gcra(Gcra, Option<Lease>),
    /// See [`Throttle`].
    Throttle(Throttle),
}

/// The per-key state of a [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyState {
    /// State of a fixed window.
    FixedWindow(FixedWindowState),
    /// State of a sliding window counter.
    SlidingWindow(SlidingWindowState),
    /// State of a sliding log.
    SlidingLog(Box<SlidingLogState>),
    /// State of a token bucket.
    TokenBucket(TokenBucketState),
    /// State of a GCRA or leaky bucket schedule.
    Gcra(GcraState),
    /// State of a throttle.
    Throttle(ThrottleState),
}

impl Policy {
    /// Builds and validates a policy from its parts. `limit` is required except for
    /// `throttle` (where it may only be 1); `burst` only for the bucket algorithms.
    pub fn new(
        algorithm: AlgorithmKind,
        limit: Option<u64>,
        window: Duration,
        burst: Option<u64>,
    ) -> Result<Self, PolicyError> {
        use AlgorithmKind as K;
        if burst.is_some() && !algorithm.takes_burst() {
            return Err(PolicyError::new(
                "burst",
                format!(
                    "is not an option of {algorithm} (only token_bucket, leaky_bucket and gcra take a burst)"
                ),
            ));
        }
        let need_limit = || {
            limit.ok_or_else(|| PolicyError::new("limit", format!("is required by {algorithm}")))
        };
        Ok(match algorithm {
            K::FixedWindow => Self::FixedWindow(FixedWindow::new(need_limit()?, window)?),
            K::SlidingWindow => Self::SlidingWindow(SlidingWindow::new(need_limit()?, window)?),
            K::SlidingLog => Self::SlidingLog(SlidingLog::new(need_limit()?, window)?),
            K::TokenBucket => Self::TokenBucket(
                TokenBucket::from_rate(Rate::new(need_limit()?, window, burst)?),
                None,
            ),
            K::LeakyBucket => Self::LeakyBucket(LeakyBucket::from_rate(Rate::new(
                need_limit()?,
                window,
                burst,
            )?)),
            K::Gcra => Self::Gcra(
                Gcra::from_rate(Rate::new(need_limit()?, window, burst)?),
                None,
            ),
            K::Throttle => {
                if let Some(l) = limit.filter(|&l| l != 1) {
                    return Err(PolicyError::new(
                        "limit",
                        format!("throttle admits one event per window; limit must be 1, not {l}"),
                    ));
                }
                Self::Throttle(Throttle::new(window)?)
            }
        })
    }

    /// Applies the `align` option: `Some("epoch")` aligns a `fixed_window` to the epoch
    /// (see [`FixedWindow::epoch_aligned`]); any other value, or `align` on another
    /// algorithm, is an error.
    pub fn aligned(self, align: Option<&str>) -> Result<Self, PolicyError> {
        match (align, self) {
            (None, p) => Ok(p),
            (Some("epoch"), Self::FixedWindow(a)) => {
                let (limit, window) = a.params();
                let window = Duration::from_micros(window);
                Ok(Self::FixedWindow(FixedWindow::epoch_aligned(
                    limit, window,
                )?))
            }
            (Some("epoch"), p) => Err(PolicyError::new(
                "align",
                format!(
                    "is not an option of {} (only fixed_window aligns to the epoch)",
                    p.kind()
                ),
            )),
            (Some(other), _) => Err(PolicyError::new(
                "align",
                format!("must be `epoch`, not `{other}`"),
            )),
        }
    }

    /// Applies the `lease` option (see [`crate::lease`]): how much of a key's quota an
    /// instance takes at once from a shared store. Only `fixed_window`, `token_bucket`
    /// and `gcra` take it (see docs/REDIS_STORE.md, "Leases for hot keys", for why);
    /// the lease must fit the policy's capacity.
    pub fn leased(self, lease: Option<Lease>) -> Result<Self, PolicyError> {
        let Some(lease) = lease else {
            return Ok(self);
        };
        let lease = Some(lease.check(self.capacity())?);
        match self {
            Self::FixedWindow(a) => Ok(Self::FixedWindow(a.with_lease(lease))),
            Self::TokenBucket(a, _) => Ok(Self::TokenBucket(a, lease)),
            Self::Gcra(a, _) => Ok(Self::Gcra(a, lease)),
            Self::SlidingWindow(_)
            | Self::SlidingLog(_)
            | Self::LeakyBucket(_)
            | Self::Throttle(_) => {
                let why = match self.kind() {
                    AlgorithmKind::LeakyBucket => {
                        "an admitted request's delay depends on every request before it, which a local slice cannot know"
                    }
                    AlgorithmKind::Throttle => {
                        "a throttle admits one event per window: there is nothing to share out"
                    }
                    _ => "a slice taken now cannot be returned to the right moments of its window",
                };
                Err(PolicyError::new(
                    "lease",
                    format!(
                        "is not an option of {} ({why}; only fixed_window, token_bucket and gcra take a lease)",
                        self.kind()
                    ),
                ))
            }
        }
    }

    /// The `lease` option, if set (see [`Policy::leased`]).
    pub fn lease(&self) -> Option<Lease> {
        match self {
            Self::FixedWindow(a) => a.lease(),
            Self::TokenBucket(_, lease) | Self::Gcra(_, lease) => *lease,
            Self::SlidingWindow(_)
            | Self::SlidingLog(_)
            | Self::LeakyBucket(_)
            | Self::Throttle(_) => None,
        }
    }

    /// The algorithm's name.
    pub fn kind(&self) -> AlgorithmKind {
        match self {
            Self::FixedWindow(_) => AlgorithmKind::FixedWindow,
            Self::SlidingWindow(_) => AlgorithmKind::SlidingWindow,
            Self::SlidingLog(_) => AlgorithmKind::SlidingLog,
            Self::TokenBucket(_, _) => AlgorithmKind::TokenBucket,
            Self::LeakyBucket(_) => AlgorithmKind::LeakyBucket,
            Self::Gcra(_, _) => AlgorithmKind::Gcra,
            Self::Throttle(_) => AlgorithmKind::Throttle,
        }
    }

    /// `(limit, window in µs, burst)`; `burst` only for the bucket algorithms.
    pub fn parts(&self) -> (u64, u64, Option<u64>) {
        let rate = |r: Rate| (r.limit, r.window, Some(r.burst));
        match self {
            Self::FixedWindow(a) => (a.params().0, a.params().1, None),
            Self::SlidingWindow(a) => (a.params().0, a.params().1, None),
            Self::SlidingLog(a) => (a.params().0, a.params().1, None),
            Self::TokenBucket(a, _) => rate(a.rate()),
            Self::LeakyBucket(a) => rate(a.rate()),
            Self::Gcra(a, _) => rate(a.rate()),
            Self::Throttle(a) => (1, a.window_micros(), None),
        }
    }

    /// The policy's limit.
    pub fn limit(&self) -> u64 {
        self.parts().0
    }

    /// The policy's window.
    pub fn window(&self) -> Duration {
        micros_to_duration(self.parts().1)
    }
}

/// Dispatches `$body` on the (policy, state) pair; a mismatched state counts as fresh.
macro_rules! with_state {
    ($policy:expr, $state:expr, |$alg:ident, $s:ident| $body:expr) => {{
        let policy = $policy;
        loop {
            match (policy, &mut *$state) {
                (Policy::FixedWindow($alg), PolicyState::FixedWindow($s)) => break $body,
                (Policy::SlidingWindow($alg), PolicyState::SlidingWindow($s)) => break $body,
                (Policy::SlidingLog($alg), PolicyState::SlidingLog($s)) => {
                    let $s = &mut **$s;
                    break $body;
                }
                (Policy::TokenBucket($alg, _), PolicyState::TokenBucket($s)) => break $body,
                (Policy::LeakyBucket($alg), PolicyState::Gcra($s)) => break $body,
                (Policy::Gcra($alg, _), PolicyState::Gcra($s)) => break $body,
                (Policy::Throttle($alg), PolicyState::Throttle($s)) => break $body,
                _ => *$state = policy.fresh(),
            }
        }
    }};
}

impl Algorithm for Policy {
    type State = PolicyState;

    fn fresh(&self) -> PolicyState {
        match self {
            Self::FixedWindow(a) => PolicyState::FixedWindow(a.fresh()),
            Self::SlidingWindow(a) => PolicyState::SlidingWindow(a.fresh()),
            Self::SlidingLog(a) => PolicyState::SlidingLog(Box::new(a.fresh())),
            Self::TokenBucket(a, _) => PolicyState::TokenBucket(a.fresh()),
            Self::LeakyBucket(a) => PolicyState::Gcra(a.fresh()),
            Self::Gcra(a, _) => PolicyState::Gcra(a.fresh()),
            Self::Throttle(a) => PolicyState::Throttle(a.fresh()),
        }
    }

    fn acquire(&self, state: &mut PolicyState, now: u64, cost: u64) -> Decision {
        with_state!(self, state, |a, s| a.acquire(s, now, cost))
    }

    fn peek(&self, state: &PolicyState, now: u64, cost: u64) -> Decision {
        match (self, state) {
            (Policy::SlidingLog(a), PolicyState::SlidingLog(s)) => a.peek(s, now, cost),
            _ => self.acquire(&mut state.clone(), now, cost),
        }
    }

    fn expires_at(&self, state: &PolicyState) -> u64 {
        match (self, state) {
            (Policy::FixedWindow(a), PolicyState::FixedWindow(s)) => a.expires_at(s),
            (Policy::SlidingWindow(a), PolicyState::SlidingWindow(s)) => a.expires_at(s),
            (Policy::SlidingLog(a), PolicyState::SlidingLog(s)) => a.expires_at(s),
            (Policy::TokenBucket(a, _), PolicyState::TokenBucket(s)) => a.expires_at(s),
            (Policy::LeakyBucket(a), PolicyState::Gcra(s)) => a.expires_at(s),
            (Policy::Gcra(a, _), PolicyState::Gcra(s)) => a.expires_at(s),
            (Policy::Throttle(a), PolicyState::Throttle(s)) => a.expires_at(s),
            // A state of another algorithm is as good as fresh.
            _ => 0,
        }
    }

    fn capacity(&self) -> u64 {
        match self {
            Self::FixedWindow(a) => a.capacity(),
            Self::SlidingWindow(a) => a.capacity(),
            Self::SlidingLog(a) => a.capacity(),
            Self::TokenBucket(a, _) => a.capacity(),
            Self::LeakyBucket(a) => a.capacity(),
            Self::Gcra(a, _) => a.capacity(),
            Self::Throttle(a) => a.capacity(),
        }
    }
}

/// Formats a microsecond window the way the short form writes it (`1m`, `10s`, `1500ms`).
fn format_window(us: u64) -> String {
    humantime::format_duration(micros_to_duration(us))
        .to_string()
        .replace(' ', "")
}

/// Parses a window: a duration like `10s`, `1m30s`, `250ms`, or a bare unit (`s` = `1s`).
pub fn parse_window(text: &str) -> Result<Duration, PolicyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PolicyError::new("window", "is missing"));
    }
    let owned;
    let text = if text.starts_with(|c: char| c.is_ascii_digit()) {
        text
    } else {
        owned = format!("1{text}");
        &owned
    };
    humantime::parse_duration(text).map_err(|e| {
        PolicyError::new(
            "window",
            format!("`{text}` is not a duration ({e}); write e.g. `10s`, `1m`, `1h30m`, `250ms`"),
        )
    })
}

fn parse_count(field: &str, text: &str) -> Result<u64, PolicyError> {
    let text = text.trim();
    text.replace('_', "")
        .parse::<u64>()
        .map_err(|_| PolicyError::new(field, format!("`{text}` is not a whole number")))
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// Parses the short form: `ALGORITHM:LIMIT/WINDOW[,burst=N]`, or `throttle:WINDOW`.
    fn from_str(text: &str) -> Result<Self, PolicyError> {
        let parse = || {
            let (name, rest) = text.trim().split_once(':').ok_or_else(|| {
                PolicyError::new(
                    "policy",
                    "expected `algorithm:limit/window`, e.g. `token_bucket:100/1m,burst=20`, \
                     `fixed_window:3/10s` or `throttle:10s`",
                )
            })?;
            let kind: AlgorithmKind = name.trim().parse()?;
            let mut options = rest.split(',');
            let rate = options.next().unwrap_or_default();
            let (limit, window) = match rate.split_once('/') {
                Some((limit, window)) => (Some(parse_count("limit", limit)?), window),
                None if kind == AlgorithmKind::Throttle => (None, rate),
                None => {
                    return Err(PolicyError::new(
                        "window",
                        format!("is missing: write `{kind}:LIMIT/WINDOW`, e.g. `{kind}:100/1m`"),
                    ));
                }
            };
            let window = parse_window(window)?;
            let (mut burst, mut align, mut lease) = (None, None, None);
            for option in options {
                let (key, value) = option.split_once('=').unwrap_or((option, ""));
                match key.trim() {
                    "burst" => burst = Some(parse_count("burst", value)?),
                    "align" => align = Some(value.trim()),
                    "lease" => lease = Some(value.parse::<Lease>()?),
                    other => {
                        return Err(PolicyError::new(
                            other,
                            "is not a policy option (the options are `burst=N`, `align=epoch` \
                             and `lease=N` or `lease=N%`)",
                        ));
                    }
                }
            }
            Policy::new(kind, limit, window, burst)?
                .aligned(align)?
                .leased(lease)
        };
        parse().map_err(|e| e.in_policy(text.trim()))
    }
}

impl fmt::Display for Policy {
    /// Writes the canonical short form, which parses back to the same policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (limit, window, burst) = self.parts();
        let window = format_window(window);
        match self {
            Self::Throttle(_) => write!(f, "throttle:{window}"),
            _ => {
                write!(f, "{}:{limit}/{window}", self.kind())?;
                if let Some(b) = burst.filter(|&b| b != limit) {
                    write!(f, ",burst={b}")?;
                }
                if let Self::FixedWindow(a) = self
                    && a.is_epoch_aligned()
                {
                    f.write_str(",align=epoch")?;
                }
                if let Some(lease) = self.lease() {
                    write!(f, ",lease={lease}")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Policy {
    /// Accepts the short-form string or a table `{ algorithm, limit, window, burst }`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PolicyVisitor)
    }
}

struct PolicyVisitor;

impl<'de> Visitor<'de> for PolicyVisitor {
    type Value = Policy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a policy: a string like \"token_bucket:100/1m,burst=20\" or a table \
             { algorithm = \"fixed_window\", limit = 3, window = \"10s\" }",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Policy, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Policy, M::Error> {
        let (mut algorithm, mut limit, mut window, mut burst) = (None, None, None, None);
        let (mut align, mut lease) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "algorithm" => algorithm = Some(map.next_value::<String>()?),
                "limit" => limit = Some(map.next_value::<u64>()?),
                "window" => window = Some(map.next_value::<String>()?),
                "burst" => burst = Some(map.next_value::<u64>()?),
                "align" => align = Some(map.next_value::<String>()?),
                "lease" => lease = Some(map.next_value::<Lease>()?),
                other => {
                    return Err(de::Error::custom(PolicyError::new(
                        other,
                        "is not a policy field (expected algorithm, limit, window, burst, align, lease)",
                    )));
                }
            }
        }
        let build = || {
            let algorithm: AlgorithmKind = algorithm
                .ok_or_else(|| PolicyError::new("algorithm", "is required"))?
                .parse()?;
            let window =
                parse_window(&window.ok_or_else(|| PolicyError::new("window", "is required"))?)?;
            Policy::new(algorithm, limit, window, burst)?
                .aligned(align.as_deref())?
                .leased(lease)
        };
        build().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> PolicyError {
        text.parse::<Policy>().unwrap_err()
    }

    #[test]
    fn short_form_parses_every_algorithm_and_round_trips() {
        for text in [
            "fixed_window:3/10s",
            "sliding_window:100/1m",
            "sliding_log:5/1h",
            "token_bucket:100/1m,burst=20",
            "leaky_bucket:20/1m",
            "gcra:10/1s,burst=3",
            "throttle:10s",
            "gcra:7/1m30s",
            "fixed_window:1000/1day",
            "fixed_window:100/1m,align=epoch",
            "fixed_window:1000/1m,lease=50",
            "fixed_window:1000/1m,align=epoch,lease=10%",
            "token_bucket:100/1m,burst=20,lease=5",
            "gcra:10/1s,lease=100%",
        ] {
            let p: Policy = text.parse().unwrap();
            let again: Policy = p.to_string().parse().unwrap();
            assert_eq!(p, again, "{text} -> {p}");
        }
        let p: Policy = "token_bucket:100/1m,burst=20".parse().unwrap();
        assert_eq!(p.to_string(), "token_bucket:100/1m,burst=20");
        assert_eq!(p.parts(), (100, 60_000_000, Some(20)));
    }

    #[test]
    fn short_form_accepts_a_bare_unit_window() {
        let p: Policy = "gcra:10/s".parse().unwrap();
        assert_eq!(p.parts().1, 1_000_000);
    }

    #[test]
    fn invalid_policies_name_the_field_and_the_reason() {
        let e = err("fixed_window:0/10s");
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("limit", "must be at least 1")
        );
        assert_eq!(e.policy.as_deref(), Some("fixed_window:0/10s"));
        assert_eq!(err("fixed_window:3/0s").field, "window");
        let e = err("leaky:3/1s");
        assert_eq!(e.field, "algorithm");
        assert!(e.reason.contains(
            "fixed_window, sliding_window, sliding_log, token_bucket, leaky_bucket, gcra, throttle"
        ));
        assert_eq!(err("fixed_window:3/10s,burst=5").field, "burst");
        assert_eq!(err("token_bucket:3/10s,burst=0").field, "burst");
        assert_eq!(err("token_bucket:3/10s,size=4").field, "size");
        assert_eq!(err("token_bucket:x/10s").field, "limit");
        assert_eq!(err("token_bucket:3/10 parsecs").field, "window");
        assert_eq!(err("token_bucket:3").field, "window");
        assert_eq!(err("throttle:2/10s").field, "limit");
        assert_eq!(err("tokens").field, "policy");
        assert_eq!(
            err("fixed_window:0/10s").to_string(),
            "invalid policy `fixed_window:0/10s`: `limit` must be at least 1"
        );
    }

    #[derive(Debug, Deserialize)]
    struct Config {
        policies: std::collections::BTreeMap<String, Policy>,
    }

    #[test]
    fn toml_accepts_tables_and_short_strings() {
        let cfg: Config = toml::from_str(
            r#"
            [policies]
            api = "token_bucket:100/1m,burst=20"
            login = { algorithm = "fixed_window", limit = 3, window = "10s" }
            once = { algorithm = "throttle", window = "10s" }
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.policies["api"].to_string(),
            "token_bucket:100/1m,burst=20"
        );
        assert_eq!(cfg.policies["login"].to_string(), "fixed_window:3/10s");
        assert_eq!(cfg.policies["once"].to_string(), "throttle:10s");
    }

    #[test]
    fn toml_errors_name_the_field() {
        let e = toml::from_str::<Config>(
            "[policies]\nlogin = { algorithm = \"fixed_window\", limit = 3, window = \"10s\", burts = 2 }",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`burts` is not a policy field"), "{e}");
        let e = toml::from_str::<Config>(
            "[policies]\nlogin = { algorithm = \"fixed_window\", window = \"10s\" }",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`limit` is required by fixed_window"), "{e}");
    }

    #[test]
    fn policy_dispatch_matches_the_typed_algorithm() {
        let p: Policy = "token_bucket:5/1m".parse().unwrap();
        let mut s = p.fresh();
        for _ in 0..5 {
            assert!(p.acquire(&mut s, 0, 1).allowed);
        }
        assert_eq!(p.acquire(&mut s, 0, 1).retry_after_us, Some(12_000_000));
        assert_eq!(p.capacity(), 5);
        // A state of another algorithm counts as fresh.
        let mut other = PolicyState::Throttle(ThrottleState { last: Some(0) });
        assert!(p.acquire(&mut other, 0, 5).allowed);
    }

    #[test]
    fn align_epoch_is_an_option_of_fixed_window_only() {
        let p: Policy = "fixed_window:100/1m,align=epoch".parse().unwrap();
        assert!(matches!(p, Policy::FixedWindow(a) if a.is_epoch_aligned()));
        assert_eq!(p.to_string(), "fixed_window:100/1m,align=epoch");
        let plain: Policy = "fixed_window:100/1m".parse().unwrap();
        assert_ne!(p, plain);
        assert_eq!(
            err("gcra:10/1s,align=epoch").to_string(),
            "invalid policy `gcra:10/1s,align=epoch`: `align` is not an option of gcra \
             (only fixed_window aligns to the epoch)"
        );
        assert_eq!(
            err("fixed_window:1/1s,align=hour").to_string(),
            "invalid policy `fixed_window:1/1s,align=hour`: `align` must be `epoch`, not `hour`"
        );
        let table: Policy = toml::from_str::<std::collections::BTreeMap<String, Policy>>(
            "p = { algorithm = \"fixed_window\", limit = 5, window = \"1s\", align = \"epoch\" }",
        )
        .unwrap()
        .remove("p")
        .unwrap();
        assert_eq!(table.to_string(), "fixed_window:5/1s,align=epoch");
    }

    #[test]
    fn lease_is_an_option_of_fixed_window_and_the_buckets_that_grant_in_advance() {
        let p: Policy = "fixed_window:1000/1m,lease=50".parse().unwrap();
        assert_eq!(p.lease(), Some(Lease::Units(50)));
        assert_eq!(p.to_string(), "fixed_window:1000/1m,lease=50");
        assert_ne!(p, "fixed_window:1000/1m".parse::<Policy>().unwrap());
        let p: Policy = "token_bucket:100/1m,burst=20,lease=10%".parse().unwrap();
        assert_eq!(p.lease().map(|l| l.units(p.capacity())), Some(2));
        let aligned: Policy = "fixed_window:10/1s,align=epoch,lease=3".parse().unwrap();
        assert!(
            matches!(aligned, Policy::FixedWindow(a) if a.is_epoch_aligned() && a.lease().is_some())
        );
        for text in [
            "sliding_window:100/1m,lease=5",
            "sliding_log:100/1m,lease=5",
            "leaky_bucket:100/1m,lease=5",
            "throttle:1s,lease=1",
        ] {
            let e = err(text);
            assert_eq!(e.field, "lease", "{text}");
            assert!(e.reason.contains("is not an option of"), "{e}");
            assert!(
                e.reason
                    .contains("only fixed_window, token_bucket and gcra"),
                "{e}"
            );
        }
        assert_eq!(
            err("fixed_window:10/1m,lease=11").to_string(),
            "invalid policy `fixed_window:10/1m,lease=11`: `lease` 11 is larger than the \
             policy's capacity 10 (its limit, or burst)"
        );
        assert_eq!(err("token_bucket:100/1m,burst=20,lease=21").field, "lease");
        assert_eq!(err("fixed_window:10/1m,lease=0").field, "lease");
        assert_eq!(err("fixed_window:10/1m,lease=lots").field, "lease");
        assert_eq!(err("fixed_window:10/1m,lease=0%").field, "lease");
    }

    #[test]
    fn toml_tables_take_a_lease_as_units_or_a_percentage() {
        let cfg: Config = toml::from_str(
            r#"
            [policies]
            units = { algorithm = "fixed_window", limit = 1000, window = "1m", lease = 50 }
            share = { algorithm = "gcra", limit = 100, window = "1s", lease = "10%" }
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.policies["units"].to_string(),
            "fixed_window:1000/1m,lease=50"
        );
        assert_eq!(cfg.policies["share"].to_string(), "gcra:100/1s,lease=10%");
        let e = toml::from_str::<Config>(
            "[policies]\np = { algorithm = \"sliding_log\", limit = 3, window = \"10s\", lease = 2 }",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`lease` is not an option of sliding_log"), "{e}");
        let e = toml::from_str::<Config>(
            "[policies]\np = { algorithm = \"fixed_window\", limit = 3, window = \"10s\", lease = -1 }",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`lease` must be at least 1"), "{e}");
    }

    #[test]
    fn a_lease_changes_no_decision_of_the_algorithm_itself() {
        // The memory store runs the algorithm as it is: the lease only matters to a
        // shared store.
        for (plain, leased) in [
            ("fixed_window:5/1s", "fixed_window:5/1s,lease=2"),
            (
                "token_bucket:5/1s,burst=3",
                "token_bucket:5/1s,burst=3,lease=2",
            ),
            ("gcra:7/1s", "gcra:7/1s,lease=50%"),
        ] {
            let (a, b): (Policy, Policy) = (plain.parse().unwrap(), leased.parse().unwrap());
            let (mut sa, mut sb) = (a.fresh(), b.fresh());
            for step in 0..200u64 {
                let (now, cost) = (step * 37_000, 1 + step % 3);
                assert_eq!(
                    a.acquire(&mut sa, now, cost),
                    b.acquire(&mut sb, now, cost),
                    "{leased}"
                );
            }
        }
    }
}
