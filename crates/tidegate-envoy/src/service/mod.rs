//! The rate limiter: a configuration, one limiter per rule in a backend, and the answer
//! to `ShouldRateLimit`.
//!
//! - `builder`: [`RateLimiterBuilder`] and [`ServiceOptions`], and the limiters of a
//!   configuration's rules;
//! - `answer`: one descriptor's decision and status.

mod answer;
mod builder;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tidegate::Clock;

pub use builder::{RateLimiterBuilder, ServiceOptions};

use crate::backend::{Backend, RuleLimiter, SharedClock};
use crate::config::rule::units_policy;
use crate::config::{Config, RuleLimit};
use crate::error::{BuildError, ConfigError, RequestError};
use crate::headers;
use crate::join::join_all;
use crate::metrics::{self, Outcome};
use crate::request::{self, Descriptor};
use crate::unit::Unit;
use answer::{Answer, Target};
use builder::{Limiters, build_limiters};

/// Most distinct `limit` overrides (requests per unit and unit) given limiters of their own.
const MAX_OVERRIDES: usize = 10_000;

/// The configuration and its limiters, swapped as a whole on reload.
struct Snapshot {
    config: Config,
    limiters: Limiters,
}

struct Inner {
    snapshot: RwLock<Arc<Snapshot>>,
    backend: Backend,
    clock: SharedClock,
    /// Whether times are given to the store explicitly (an injected clock) rather than
    /// read by each store (Redis: its server time).
    explicit_clock: bool,
    options: ServiceOptions,
    overrides: Mutex<HashMap<(u32, Unit), Arc<RuleLimiter>>>,
    /// Held while a configuration is swapped in, so that two reloads do not interleave.
    reloading: Mutex<()>,
    stats: metrics::Stats,
}

/// Envoy's rate limit service on tidegate. Cheap to clone; clones share everything.
///
/// Build it with [`RateLimiter::builder`]; serve it with [`RateLimiter::grpc_service`]
/// (tonic) and [`RateLimiter::router`] (`POST /json`, `GET /healthcheck`); swap in a
/// changed configuration with [`RateLimiter::reload`].
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("backend", &self.inner.backend)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl RateLimiter {
    /// Starts building a limiter for `config`.
    pub fn builder(config: Config) -> RateLimiterBuilder {
        RateLimiterBuilder::new(config)
    }

    /// Loads the configuration at `path` (a file or a directory) and builds a limiter of
    /// it on `backend` with the default options.
    pub fn from_path(
        path: impl AsRef<std::path::Path>,
        backend: Backend,
    ) -> Result<Self, BuildError> {
        Self::builder(Config::load(path)?).backend(backend).build()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .inner
                .snapshot
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Reloads the configuration from the path it was loaded from and swaps it in
    /// atomically; on an error the current configuration stays and the error is
    /// returned. Rules whose path and limit are unchanged keep their counters.
    pub fn reload(&self) -> Result<(), BuildError> {
        let current = self.snapshot();
        let config = match current.config.reload() {
            Some(r) => r?,
            None => {
                return Err(BuildError::Config(ConfigError::Invalid {
                    file: "<memory>".into(),
                    line: None,
                    field: "source".into(),
                    message: "this configuration was not loaded from a path".into(),
                }));
            }
        };
        self.replace_config(config)
    }

    /// Swaps in `config` atomically (kept as is on an error).
    pub fn replace_config(&self, config: Config) -> Result<(), BuildError> {
        let _one_at_a_time = self
            .inner
            .reloading
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        let limiters = build_limiters(
            &config,
            &self.inner.backend,
            &self.inner.clock,
            Some(&current.limiters),
        )?;
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot { config, limiters });
        Ok(())
    }

    /// Whether at least one domain is configured (for health checks).
    pub fn has_config(&self) -> bool {
        self.snapshot().config.domains().next().is_some()
    }

    /// The configured domains.
    pub fn domains(&self) -> Vec<String> {
        self.snapshot()
            .config
            .domains()
            .map(str::to_string)
            .collect()
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_micros()
    }

    fn override_limiter(&self, rpu: u32, unit: Unit) -> Result<Arc<RuleLimiter>, RequestError> {
        let mut map = self
            .inner
            .overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(&(rpu, unit)) {
            return Ok(Arc::clone(l));
        }
        if map.len() >= MAX_OVERRIDES {
            map.clear();
        }
        let l = Arc::new(
            RuleLimiter::new(
                &self.inner.backend,
                units_policy(rpu, unit),
                &self.inner.clock,
            )
            .map_err(RequestError::Override)?,
        );
        map.insert((rpu, unit), Arc::clone(&l));
        Ok(l)
    }

    /// Finds each descriptor's target, applying `replaces`.
    fn targets(
        &self,
        snapshot: &Snapshot,
        domain: &str,
        descriptors: &[Descriptor<'_>],
    ) -> Result<Vec<Target>, RequestError> {
        let known = snapshot.config.has_domain(domain);
        let mut targets = Vec::with_capacity(descriptors.len());
        let mut replaced: Vec<&str> = Vec::new();
        let matches: Vec<_> = descriptors
            .iter()
            .map(|d| {
                if d.limit.is_some() || !known {
                    None
                } else {
                    snapshot.config.find(domain, &d.entries)
                }
            })
            .collect();
        for m in matches.iter().flatten() {
            replaced.extend(m.rule.replaces.iter().map(String::as_str));
        }
        for (d, m) in descriptors.iter().zip(&matches) {
            let key = match m {
                Some(m) if m.shared_values.iter().any(Option::is_some) => {
                    let entries: Vec<(&str, &str)> = d
                        .entries
                        .iter()
                        .zip(&m.shared_values)
                        .map(|(&(k, v), shared)| (k, shared.as_deref().unwrap_or(v)))
                        .collect();
                    request::counter_key(domain, &entries)
                }
                _ => request::counter_key(domain, &d.entries),
            };
            let target = match (d.limit, m) {
                (Some((rpu, unit)), _) if known => Target::Limited {
                    rule: None,
                    limiter: (rpu > 0)
                        .then(|| self.override_limiter(rpu, unit))
                        .transpose()?,
                    units: Some((rpu, unit)),
                    key: format!("{key}|@{unit}"),
                    stat_key: override_stat_key(domain, &d.entries),
                },
                (_, None) => Target::None,
                (_, Some(m)) => {
                    let rule = &m.rule;
                    if rule.name.as_deref().is_some_and(|n| replaced.contains(&n)) {
                        Target::None
                    } else if rule.limit == RuleLimit::Unlimited {
                        Target::Unlimited
                    } else {
                        let limiter = snapshot
                            .limiters
                            .get(&rule.path)
                            .and_then(|(_, l)| l.clone());
                        let units = match rule.limit {
                            RuleLimit::Units {
                                requests_per_unit,
                                unit,
                            } => Some((requests_per_unit, unit)),
                            _ => None,
                        };
                        Target::Limited {
                            rule: Some(Arc::clone(rule)),
                            limiter,
                            units,
                            key,
                            stat_key: m.stat_key.clone(),
                        }
                    }
                }
            };
            targets.push(target);
        }
        Ok(targets)
    }

    /// Answers one `ShouldRateLimit` request.
    pub async fn should_rate_limit(
        &self,
        request: &RateLimitRequest,
    ) -> Result<RateLimitResponse, RequestError> {
        let descriptors = request::read(request)?;
        let snapshot = self.snapshot();
        let domain = request.domain.as_str();
        let targets = self.targets(&snapshot, domain, &descriptors)?;
        let at = self.inner.explicit_clock.then(|| self.now());
        let mut answers: Vec<Answer> = Vec::new();
        let mut commit = true;
        let all = |commit: bool| {
            join_all(
                targets
                    .iter()
                    .zip(&descriptors)
                    .map(|(t, d)| self.answer(t, d.hits, at, commit))
                    .collect(),
            )
        };
        if self.inner.options.all_or_nothing {
            answers = all(false).await.into_iter().collect::<Result<_, _>>()?;
            commit = !answers.iter().any(|a| a.over && !a.shadow);
        }
        if commit {
            answers = all(true).await.into_iter().collect::<Result<_, _>>()?;
        }
        for ((t, d), a) in targets.iter().zip(&descriptors).zip(&answers) {
            if let Target::Limited { stat_key, .. } = t {
                let near = match a.limited {
                    Some((remaining, limit, _, _)) if !a.over => {
                        metrics::near_hits(d.hits, limit - remaining.min(limit), limit)
                    }
                    _ => 0,
                };
                self.inner.stats.record(
                    domain,
                    stat_key,
                    Outcome {
                        hits: d.hits,
                        over: a.over,
                        shadow: a.shadow,
                        near,
                    },
                );
            }
        }
        let failed = answers
            .iter()
            .filter(|a| a.over && !a.shadow && !a.quota)
            .count();
        let quota_total = answers.iter().filter(|a| a.quota).count();
        let quota_failed = answers
            .iter()
            .filter(|a| a.quota && a.over && !a.shadow)
            .count();
        let over = failed > 0 || (quota_total > 0 && quota_total == quota_failed);
        let response_headers_to_add = headers::build(
            &self.inner.options.headers,
            answers
                .iter()
                .filter_map(|a| a.limited.map(|l| (a.over && !a.shadow, l))),
        );
        Ok(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses: answers.into_iter().map(|a| a.status).collect(),
            response_headers_to_add,
            ..RateLimitResponse::default()
        })
    }
}

/// The statistics key of a descriptor with a `limit` override: `domain.key_value...`.
fn override_stat_key(domain: &str, entries: &[(&str, &str)]) -> String {
    let mut s = String::from(domain);
    for (k, v) in entries {
        s.push('.');
        s.push_str(k);
        if !v.is_empty() {
            s.push('_');
            s.push_str(v);
        }
    }
    s
}
