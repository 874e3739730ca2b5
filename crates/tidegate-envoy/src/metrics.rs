//! Statistics per domain and descriptor, through the `metrics` crate, named as
//! envoyproxy/ratelimit names them: counters `tidegate_envoy_total_hits`,
//! `tidegate_envoy_over_limit`, `tidegate_envoy_near_limit` (past 80 % of the limit),
//! `tidegate_envoy_within_limit` and `tidegate_envoy_shadow_mode`, labelled `domain` and
//! `descriptor` (the rule's configuration path, e.g. `mydomain.key1_value1.key2`; request
//! values appear only for rules with `detailed_metric` or `value_to_metric`, so the number
//! of series is bounded by the configuration otherwise).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::map::Map;

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

/// How many descriptors' counters [`Stats`] keeps; past that (only with
/// `detailed_metric` and many request values) the others are looked up at every call.
const CACHED_DESCRIPTORS: usize = 10_000;

/// The five counters of one domain and descriptor.
#[derive(Debug)]
struct Counters {
    total: metrics::Counter,
    over: metrics::Counter,
    shadow: metrics::Counter,
    within: metrics::Counter,
    near: metrics::Counter,
}

impl Counters {
    fn new(domain: &str, descriptor: &str) -> Self {
        let labels = [
            ("domain", domain.to_string()),
            ("descriptor", descriptor.to_string()),
        ];
        Self {
            total: metrics::counter!("tidegate_envoy_total_hits", &labels),
            over: metrics::counter!("tidegate_envoy_over_limit", &labels),
            shadow: metrics::counter!("tidegate_envoy_shadow_mode", &labels),
            within: metrics::counter!("tidegate_envoy_within_limit", &labels),
            near: metrics::counter!("tidegate_envoy_near_limit", &labels),
        }
    }

    fn record(&self, o: Outcome) {
        self.total.increment(o.hits);
        if o.over {
            self.over.increment(o.hits);
            if o.shadow {
                self.shadow.increment(o.hits);
            }
        } else {
            self.within.increment(o.hits);
            if o.near > 0 {
                self.near.increment(o.near);
            }
        }
    }
}

/// The counters of the descriptors seen so far, by domain and descriptor, so that a call
/// increments them without building labels or looking them up in the recorder (which
/// costs more than the decision).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    by_domain: RwLock<Map<String, Map<String, Counters>>>,
    cached: AtomicUsize,
}

impl Stats {
    /// Counts one descriptor's outcome.
    pub(crate) fn record(&self, domain: &str, descriptor: &str, o: Outcome) {
        {
            let map = self
                .by_domain
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(counters) = map.get(domain).and_then(|d| d.get(descriptor)) {
                return counters.record(o);
            }
        }
        let counters = Counters::new(domain, descriptor);
        counters.record(o);
        if self.cached.load(Ordering::Relaxed) < CACHED_DESCRIPTORS {
            let mut map = self
                .by_domain
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let slot = map
                .entry(domain.to_string())
                .or_default()
                .entry(descriptor.to_string());
            if let std::collections::hash_map::Entry::Vacant(v) = slot {
                v.insert(counters);
                self.cached.fetch_add(1, Ordering::Relaxed);
            }
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
