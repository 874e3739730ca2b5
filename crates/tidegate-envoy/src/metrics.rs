//! Statistics per domain and descriptor, through the `metrics` crate, named as
//! envoyproxy/ratelimit names them: counters `tidegate_envoy_total_hits`,
//! `tidegate_envoy_over_limit`, `tidegate_envoy_near_limit` (past 80 % of the limit),
//! `tidegate_envoy_within_limit` and `tidegate_envoy_shadow_mode`, labelled `domain` and
//! `descriptor` (the rule's configuration path, e.g. `mydomain.key1_value1.key2`; request
//! values appear only for rules with `detailed_metric` or `value_to_metric`, so the number
//! of series is bounded by the configuration otherwise).

/// Fraction of the limit past which admitted hits count as `near_limit`, in percent.
pub(crate) const NEAR_LIMIT_PERCENT: u64 = 80;

/// What happened to one descriptor's hits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub hits: u64,
    pub over: bool,
    pub shadow: bool,
    /// Admitted and past the near-limit threshold.
    pub near: bool,
}

/// Counts one descriptor's outcome.
pub(crate) fn record(domain: &str, descriptor: &str, o: Outcome) {
    let labels = [
        ("domain", domain.to_string()),
        ("descriptor", descriptor.to_string()),
    ];
    metrics::counter!("tidegate_envoy_total_hits", &labels).increment(o.hits);
    if o.over {
        metrics::counter!("tidegate_envoy_over_limit", &labels).increment(o.hits);
        if o.shadow {
            metrics::counter!("tidegate_envoy_shadow_mode", &labels).increment(o.hits);
        }
    } else {
        metrics::counter!("tidegate_envoy_within_limit", &labels).increment(o.hits);
        if o.near {
            metrics::counter!("tidegate_envoy_near_limit", &labels).increment(o.hits);
        }
    }
}
