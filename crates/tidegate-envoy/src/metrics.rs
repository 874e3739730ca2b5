//! Statistics per domain and descriptor, through the `metrics` crate, named as
//! envoyproxy/ratelimit names them: counters `tidegate_envoy_total_hits`,
//! `tidegate_envoy_over_limit`, `tidegate_envoy_near_limit` (past 80 % of the limit),
//! `tidegate_envoy_within_limit` and `tidegate_envoy_shadow_mode`, labelled `domain` and
//! `descriptor` (the rule's configuration path, e.g. `mydomain.key1_value1.key2`; request
//! values appear only for rules with `detailed_metric` or `value_to_metric`, so the number
//! of series is bounded by the configuration otherwise).

/// Fraction of the limit past which admitted hits count as `near_limit`, in percent.
const NEAR_LIMIT_PERCENT: u64 = 80;

/// Of `hits` just admitted, leaving `used` of `limit` used, how many are past the
/// near-limit threshold `⌊limit × 80 %⌋` (as envoyproxy/ratelimit counts them).
pub(crate) fn near_hits(hits: u64, used: u64, limit: u64) -> u64 {
    let threshold = limit.saturating_mul(NEAR_LIMIT_PERCENT) / 100;
    used.saturating_sub(threshold).min(hits)
}

/// What happened to one descriptor's hits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub hits: u64,
    pub over: bool,
    pub shadow: bool,
    /// Of the admitted hits, those past the near-limit threshold.
    pub near: u64,
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
        if o.near > 0 {
            metrics::counter!("tidegate_envoy_near_limit", &labels).increment(o.near);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::near_hits;

    #[test]
    fn near_limit_counts_the_admitted_hits_past_80_percent() {
        // Limit 5: threshold 4.
        assert_eq!(near_hits(1, 4, 5), 0);
        assert_eq!(near_hits(1, 5, 5), 1);
        assert_eq!(near_hits(3, 5, 5), 1);
        // Limit 10: threshold 8; 7 -> 10 crosses it by 2.
        assert_eq!(near_hits(3, 10, 10), 2);
        assert_eq!(near_hits(2, 10, 10), 2);
    }
}
