//! Several policies guarding one key together (e.g. `10/s` and `1000/day`): a request is
//! admitted only if every policy admits it, and consumed from all of them or none.

use std::fmt;
use std::str::FromStr;

use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::policy::{Policy, PolicyState};

/// A non-empty list of policies applied to the same key, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// Guards each key with all of `policies` (at least one).
    pub fn new(policies: Vec<Policy>) -> Result<Self, PolicyError> {
        if policies.is_empty() {
            return Err(PolicyError::new(
                "policies",
                "must list at least one policy",
            ));
        }
        Ok(Self { policies })
    }

    /// The policies, in order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Decides and returns each policy's own decision as well as the combined one.
    ///
    /// Every policy is first asked without consuming; only if all admit is the cost
    /// consumed from each. The per-policy decisions describe the state after that.
    pub fn acquire_each(
        &self,
        state: &mut Vec<PolicyState>,
        now: u64,
        cost: u64,
        each: &mut Vec<Decision>,
    ) -> Decision {
        if state.len() != self.policies.len() {
            *state = self.fresh();
        }
        each.clear();
        each.extend(
            self.policies
                .iter()
                .zip(state.iter())
                .map(|(p, s)| p.peek(s, now, cost)),
        );
        if each.iter().all(|d| d.allowed) {
            for ((p, s), d) in self
                .policies
                .iter()
                .zip(state.iter_mut())
                .zip(each.iter_mut())
            {
                *d = p.acquire(s, now, cost);
            }
        }
        Decision::combine(each)
    }
}

impl Algorithm for PolicySet {
    type State = Vec<PolicyState>;

    fn fresh(&self) -> Vec<PolicyState> {
        self.policies.iter().map(Policy::fresh).collect()
    }

    fn acquire(&self, state: &mut Vec<PolicyState>, now: u64, cost: u64) -> Decision {
        if let [only] = self.policies.as_slice() {
            if state.len() != 1 {
                *state = self.fresh();
            }
            return only.acquire(&mut state[0], now, cost);
        }
        self.acquire_each(
            state,
            now,
            cost,
            &mut Vec::with_capacity(self.policies.len()),
        )
    }

    fn peek(&self, state: &Vec<PolicyState>, now: u64, cost: u64) -> Decision {
        let fresh;
        let state = if state.len() == self.policies.len() {
            state
        } else {
            fresh = self.fresh();
            &fresh
        };
        let each: Vec<Decision> = self
            .policies
            .iter()
            .zip(state)
            .map(|(p, s)| p.peek(s, now, cost))
            .collect();
        let mut combined = Decision::combine(&each);
        if !combined.allowed {
            combined.delay_us = None;
        }
        combined
    }

    fn expires_at(&self, state: &Vec<PolicyState>) -> u64 {
        self.policies
            .iter()
            .zip(state)
            .map(|(p, s)| p.expires_at(s))
            .max()
            .unwrap_or(0)
    }

    fn capacity(&self) -> u64 {
        self.policies
            .iter()
            .map(Policy::capacity)
            .min()
            .unwrap_or(0)
    }
}

impl FromStr for PolicySet {
    type Err = PolicyError;

    /// Parses policies separated by `;`: `gcra:10/1s;fixed_window:1000/1d`.
    fn from_str(text: &str) -> Result<Self, PolicyError> {
        let policies = text
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Policy>, _>>()?;
        Self::new(policies).map_err(|e| e.in_policy(text))
    }
}

impl fmt::Display for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.policies.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl From<Policy> for PolicySet {
    fn from(policy: Policy) -> Self {
        Self {
            policies: vec![policy],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn several_policies_consume_from_all_or_none() {
        let set: PolicySet = "fixed_window:2/1s;fixed_window:3/1h".parse().unwrap();
        let mut s = set.fresh();
        assert!(set.acquire(&mut s, 0, 1).allowed);
        assert!(set.acquire(&mut s, 0, 1).allowed);
        // Per-second limit denies: the hourly one must not be charged.
        let d = set.acquire(&mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!((d.limit, d.retry_after_us), (2, Some(S)));
        assert!(set.acquire(&mut s, S, 1).allowed);
        // The hourly limit (3) is now exhausted, although the second has room.
        let d = set.acquire(&mut s, 2 * S, 1);
        assert!(!d.allowed);
        assert_eq!((d.limit, d.retry_after_us), (3, Some(3_598 * S)));
    }

    #[test]
    fn policy_set_capacity_is_the_smallest_and_reports_each_decision() {
        let set: PolicySet = "gcra:10/1s,burst=4;sliding_log:100/1m".parse().unwrap();
        assert_eq!(set.capacity(), 4);
        let mut s = set.fresh();
        let mut each = Vec::new();
        let d = set.acquire_each(&mut s, 0, 3, &mut each);
        assert!(d.allowed);
        assert_eq!(each.len(), 2);
        assert_eq!((each[0].remaining, each[1].remaining), (1, 97));
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn empty_policy_set_is_rejected() {
        assert_eq!(";".parse::<PolicySet>().unwrap_err().field, "policies");
    }
}
