//! The answer a limiter gives for one request.

use std::time::Duration;

use serde::Serialize;

use crate::time::micros_to_duration;

/// The outcome of one rate-limit decision. Times are whole microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the request was admitted (and its cost consumed).
    pub allowed: bool,
    /// The policy's limit (the binding policy's, when several guard a key).
    pub limit: u64,
    /// Cost that could still be admitted right now, after this decision.
    pub remaining: u64,
    /// Microseconds until this cost could be admitted; `None` when allowed.
    pub retry_after_us: Option<u64>,
    /// Microseconds until the full quota is back (`remaining == limit`).
    pub reset_after_us: u64,
    /// For `leaky_bucket`: microseconds the admitted request must wait before proceeding.
    pub delay_us: Option<u64>,
}

impl Decision {
    /// Time until this cost could be admitted; `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_us.map(micros_to_duration)
    }

    /// Time until the full quota is back.
    pub fn reset_after(&self) -> Duration {
        micros_to_duration(self.reset_after_us)
    }

    /// For `leaky_bucket`: how long the admitted request waits before proceeding.
    pub fn delay(&self) -> Option<Duration> {
        self.delay_us.map(micros_to_duration)
    }

    /// Combines the decisions of several policies that guard one key together.
    ///
    /// Allowed only if all allowed. The binding policy (reported `limit` and
    /// `remaining`) is the denying one that waits longest, or when all allowed the
    /// one with the least remaining. `retry_after` is the longest wait (every policy
    /// admits by then, since waiting never lowers a policy's capacity), `reset_after`
    /// the longest reset, `delay` the longest delay.
    pub fn combine(decisions: &[Decision]) -> Decision {
        let mut iter = decisions.iter();
        let mut out = *iter.next().expect("combine needs at least one decision");
        for d in iter {
            let binding = match (out.allowed, d.allowed) {
                (true, false) => true,
                (false, true) => false,
                (false, false) => d.retry_after_us > out.retry_after_us,
                (true, true) => d.remaining < out.remaining,
            };
            let reset_after_us = out.reset_after_us.max(d.reset_after_us);
            let delay_us = out.delay_us.max(d.delay_us);
            if binding {
                out = *d;
            }
            out.reset_after_us = reset_after_us;
            out.delay_us = if out.allowed { delay_us } else { None };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(limit: u64, remaining: u64, reset: u64) -> Decision {
        Decision {
            allowed: true,
            limit,
            remaining,
            retry_after_us: None,
            reset_after_us: reset,
            delay_us: None,
        }
    }

    fn denied(limit: u64, retry: u64, reset: u64) -> Decision {
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            retry_after_us: Some(retry),
            reset_after_us: reset,
            delay_us: None,
        }
    }

    #[test]
    fn combine_reports_the_policy_with_least_remaining_when_all_allow() {
        let d = Decision::combine(&[allowed(10, 9, 100), allowed(1000, 5, 50)]);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining, d.reset_after_us), (1000, 5, 100));
    }

    #[test]
    fn combine_reports_the_longest_wait_when_any_denies() {
        let d = Decision::combine(&[denied(10, 7, 9), allowed(1000, 5, 50), denied(3, 30, 30)]);
        assert!(!d.allowed);
        assert_eq!(d.limit, 3);
        assert_eq!(d.retry_after_us, Some(30));
        assert_eq!(d.reset_after_us, 50);
    }
}
