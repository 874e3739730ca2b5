//! A rule: the limit a descriptor of the configuration puts on the requests it matches.

use std::sync::Arc;
use std::time::Duration;

use tidegate::{Policy, PolicySet};

use crate::unit::Unit;

/// What a rule limits requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleLimit {
    /// `rate_limit: { unlimited: true }`: always OK, `limit_remaining` 2^32-1.
    Unlimited,
    /// `rate_limit: { requests_per_unit, unit }`: a fixed window of one unit aligned to
    /// the Unix epoch (tidegate's `fixed_window:N/unit,align=epoch`); 0 refuses every hit.
    Units {
        /// Hits admitted per window.
        requests_per_unit: u32,
        /// The window.
        unit: Unit,
    },
    /// tidegate's `policy:` extension: any policy or list of policies.
    Policy(PolicySet),
}

impl RuleLimit {
    /// The tidegate policies that decide for this limit; `None` for unlimited and for a
    /// limit of 0 (which no policy can express: every hit is refused).
    pub fn policies(&self) -> Option<PolicySet> {
        match self {
            RuleLimit::Unlimited
            | RuleLimit::Units {
                requests_per_unit: 0,
                ..
            } => None,
            RuleLimit::Units {
                requests_per_unit,
                unit,
            } => Some(units_policy(*requests_per_unit, *unit)),
            RuleLimit::Policy(set) => Some(set.clone()),
        }
    }
}

/// `fixed_window:N/unit,align=epoch`, the window envoyproxy/ratelimit counts in.
pub(crate) fn units_policy(requests_per_unit: u32, unit: Unit) -> PolicySet {
    let policy = tidegate::algorithm::FixedWindow::epoch_aligned(
        u64::from(requests_per_unit.max(1)),
        unit.window(),
    )
    .expect("a unit's window and a u32 limit are valid");
    PolicySet::new(vec![Policy::FixedWindow(policy)]).expect("one policy")
}

/// One rule of the configuration, at the end of a descriptor path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rule {
    /// `domain.key_value.key...`: the configuration path, as envoyproxy/ratelimit names
    /// its statistics.
    pub path: String,
    /// The limit.
    pub limit: RuleLimit,
    /// `rate_limit.name`, for `replaces` and `current_limit.name`.
    pub name: Option<String>,
    /// `rate_limit.replaces`: names of the rules this one drops when both match.
    pub replaces: Vec<String>,
    /// `shadow_mode`: decisions are made and counted, but always answered OK.
    pub shadow_mode: bool,
    /// `quota_mode`: over the limit only fails the request when every quota descriptor
    /// of it is over.
    pub quota_mode: bool,
    /// `detailed_metric`: statistics per request value rather than per rule.
    pub detailed_metric: bool,
    /// `metadata`, as written.
    pub metadata: Option<serde_yaml_ng::Mapping>,
}

/// A shared rule.
pub type RuleRef = Arc<Rule>;

impl Rule {
    /// The window a response reports for this rule, when it has one.
    pub fn window(&self) -> Option<Duration> {
        match &self.limit {
            RuleLimit::Unlimited => None,
            RuleLimit::Units { unit, .. } => Some(unit.window()),
            RuleLimit::Policy(set) => set.policies().first().map(Policy::window),
        }
    }
}
