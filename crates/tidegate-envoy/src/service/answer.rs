//! One descriptor's decision, and the status that answers it.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit as ProtoLimit,
};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tidegate::{Clock, Decision, Policy, SystemClock};

use super::RateLimiter;
use crate::backend::RuleLimiter;
use crate::config::RuleRef;
use crate::error::RequestError;
use crate::unit::Unit;

/// What one descriptor is checked against.
pub(super) enum Target {
    /// No rule: OK without a limit.
    None,
    /// An unlimited rule: OK, `limit_remaining` 2^32-1.
    Unlimited,
    /// A rule or an override with a limiter (`None`: a limit of 0).
    Limited {
        rule: Option<RuleRef>,
        limiter: Option<Arc<RuleLimiter>>,
        /// `(requests_per_unit, unit)` of a `rate_limit` rule or an override.
        units: Option<(u32, Unit)>,
        key: String,
        stat_key: String,
    },
}

/// One descriptor's answer.
pub(super) struct Answer {
    pub(super) status: DescriptorStatus,
    /// Over the limit (before shadow mode turns the code to OK).
    pub(super) over: bool,
    pub(super) shadow: bool,
    pub(super) quota: bool,
    /// `(remaining, limit, window, reset)` of a limited descriptor, for the headers.
    pub(super) limited: Option<(u64, u64, Duration, Duration)>,
}

impl RateLimiter {
    /// Decides one descriptor.
    pub(super) async fn answer(
        &self,
        target: &Target,
        hits: u64,
        at: Option<u64>,
        commit: bool,
    ) -> Result<Answer, RequestError> {
        let (rule, limiter, units, key) = match target {
            Target::None => {
                return Ok(Answer {
                    status: DescriptorStatus {
                        code: Code::Ok as i32,
                        ..DescriptorStatus::default()
                    },
                    over: false,
                    shadow: false,
                    quota: false,
                    limited: None,
                });
            }
            Target::Unlimited => {
                return Ok(Answer {
                    status: DescriptorStatus {
                        code: Code::Ok as i32,
                        limit_remaining: u32::MAX,
                        ..DescriptorStatus::default()
                    },
                    over: false,
                    shadow: false,
                    quota: false,
                    limited: None,
                });
            }
            Target::Limited {
                rule,
                limiter,
                units,
                key,
                ..
            } => (rule, limiter, units, key),
        };
        let shadow = rule.as_ref().is_some_and(|r| r.shadow_mode);
        let quota = rule.as_ref().is_some_and(|r| r.quota_mode);
        let name = rule
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        let (over, remaining, limit, reset, window) = match limiter {
            // A limit of 0: every hit is over; the window is the unit's, on the epoch.
            None => {
                let (_, unit) = units.expect("a limiter-less target has units");
                let w = unit.seconds() * 1_000_000;
                let now = at.unwrap_or_else(|| SystemClock.now_micros());
                (hits > 0, 0, 0, w - now % w, unit.window())
            }
            Some(l) => {
                let d = self.decide(l, key, hits, at, commit).await?;
                let binding = binding_policy(l.policies().policies(), &d);
                let reset = if d.allowed {
                    d.reset_after_us
                } else {
                    d.retry_after_us.unwrap_or(d.reset_after_us)
                };
                (!d.allowed, d.remaining, d.limit, reset, binding.window())
            }
        };
        let (rpu, unit) = match units {
            Some((rpu, unit)) => (*rpu, unit.proto() as i32),
            None => (
                u32::try_from(limit).unwrap_or(u32::MAX),
                Unit::of_window(window).map_or(0, |u| u.proto() as i32),
            ),
        };
        let code = if over && !shadow {
            Code::OverLimit
        } else {
            Code::Ok
        };
        let remaining = if over { 0 } else { remaining };
        let reset_d = Duration::from_micros(reset);
        Ok(Answer {
            status: DescriptorStatus {
                code: code as i32,
                current_limit: Some(ProtoLimit {
                    name,
                    requests_per_unit: rpu,
                    unit,
                }),
                limit_remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                duration_until_reset: Some(ProtoDuration {
                    seconds: reset_d.as_secs() as i64,
                    nanos: reset_d.subsec_nanos() as i32,
                }),
                ..DescriptorStatus::default()
            },
            over,
            shadow,
            quota,
            limited: Some((remaining, u64::from(rpu).max(limit), window, reset_d)),
        })
    }

    /// Asks the limiter: `hits` 0 only looks (would one more hit be admitted; the
    /// remaining count is then the one before that hit); more hits than the limit can
    /// ever admit are over without consuming anything.
    async fn decide(
        &self,
        limiter: &RuleLimiter,
        key: &str,
        hits: u64,
        at: Option<u64>,
        commit: bool,
    ) -> Result<Decision, RequestError> {
        let capacity = limiter.capacity();
        let store = |e| RequestError::Store(e);
        if hits == 0 {
            let mut d = limiter.decide(key, 1, at, false).await.map_err(store)?;
            if d.allowed {
                d.remaining += 1;
            }
            return Ok(d);
        }
        if hits > capacity {
            let mut d = limiter
                .decide(key, capacity, at, false)
                .await
                .map_err(store)?;
            d.allowed = false;
            d.remaining = 0;
            d.retry_after_us.get_or_insert(d.reset_after_us);
            return Ok(d);
        }
        limiter.decide(key, hits, at, commit).await.map_err(store)
    }
}

/// The policy a combined decision reports: the first whose limit is the decision's.
fn binding_policy<'a>(policies: &'a [Policy], d: &Decision) -> &'a Policy {
    policies
        .iter()
        .find(|p| p.limit() == d.limit)
        .unwrap_or(&policies[0])
}
