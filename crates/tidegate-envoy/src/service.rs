//! The rate limiter: a configuration, one limiter per rule in a backend, and the answer
//! to `ShouldRateLimit`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit as ProtoLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tidegate::{Clock, CoarseClock, Decision, LimitError, Policy, SystemClock};

use crate::backend::{Backend, RuleLimiter, SharedClock};
use crate::config::rule::units_policy;
use crate::config::{Config, RuleLimit, RuleRef};
use crate::error::{BuildError, ConfigError};
use crate::headers::{self, HeaderOptions};
use crate::join::join_all;
use crate::metrics::{self, NEAR_LIMIT_PERCENT, Outcome};
use crate::request::{self, Descriptor, InvalidRequest};
use crate::unit::Unit;

/// Most distinct `limit` overrides (requests per unit and unit) given limiters of their own.
const MAX_OVERRIDES: usize = 10_000;

/// A request the service cannot answer: invalid (`INVALID_ARGUMENT`) or the store failed
/// (`UNAVAILABLE`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request breaks the protocol's rules (empty domain, no descriptors, empty key).
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The store could not decide (e.g. the memory store is full).
    #[error("cannot decide: {0}")]
    Store(#[source] LimitError),
    /// A descriptor's `limit` override gives no valid policy.
    #[error("invalid limit override: {0}")]
    Override(#[source] tidegate::PolicyError),
}

impl From<RequestError> for tonic::Status {
    fn from(e: RequestError) -> tonic::Status {
        match e {
            RequestError::Invalid(e) => tonic::Status::invalid_argument(e.0),
            RequestError::Store(e) => tonic::Status::unavailable(e.to_string()),
            RequestError::Override(e) => tonic::Status::invalid_argument(e.to_string()),
        }
    }
}

/// How the limiter answers, beyond the configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServiceOptions {
    /// Charge no descriptor when any non-shadow descriptor is over its limit (each is
    /// peeked first, then all are charged); by default every matched descriptor is
    /// charged, as envoyproxy/ratelimit does.
    pub all_or_nothing: bool,
    /// Which response headers to add (none by default).
    pub headers: HeaderOptions,
}

/// The configuration and its limiters, swapped as a whole on reload.
struct Snapshot {
    config: Config,
    limiters: HashMap<String, (Option<tidegate::PolicySet>, Option<Arc<RuleLimiter>>)>,
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

/// Builds a [`RateLimiter`].
pub struct RateLimiterBuilder {
    config: Config,
    backend: Backend,
    clock: Option<SharedClock>,
    options: ServiceOptions,
}

impl std::fmt::Debug for RateLimiterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("backend", &self.backend)
            .field("options", &self.options)
            .finish()
    }
}

impl RateLimiterBuilder {
    /// Where counters live (default [`Backend::memory`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Reads time from `clock` (Unix µs) instead of each store's own clock (for tests and
    /// replays: Redis is then given explicit times rather than using its server time).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Charge no descriptor when any is over (see [`ServiceOptions::all_or_nothing`]).
    pub fn all_or_nothing(mut self, on: bool) -> Self {
        self.options.all_or_nothing = on;
        self
    }

    /// Which response headers to add.
    pub fn headers(mut self, headers: HeaderOptions) -> Self {
        self.options.headers = headers;
        self
    }

    /// All options at once.
    pub fn options(mut self, options: ServiceOptions) -> Self {
        self.options = options;
        self
    }

    /// The limiter, with one limiter per rule in the backend.
    pub fn build(self) -> Result<RateLimiter, BuildError> {
        let explicit_clock = self.clock.is_some();
        let clock = self.clock.unwrap_or_else(|| Arc::new(CoarseClock));
        let limiters = build_limiters(&self.config, &self.backend, &clock, None)?;
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                snapshot: RwLock::new(Arc::new(Snapshot {
                    config: self.config,
                    limiters,
                })),
                backend: self.backend,
                clock,
                explicit_clock,
                options: self.options,
                overrides: Mutex::new(HashMap::new()),
            }),
        })
    }
}

type Limiters = HashMap<String, (Option<tidegate::PolicySet>, Option<Arc<RuleLimiter>>)>;

/// One limiter per rule; a rule whose path and policies are unchanged keeps its limiter
/// (and so its counters, in memory) from `old`.
fn build_limiters(
    config: &Config,
    backend: &Backend,
    clock: &SharedClock,
    old: Option<&Limiters>,
) -> Result<Limiters, BuildError> {
    let mut out = HashMap::new();
    for rule in config.rules() {
        let policies = rule.limit.policies();
        if let Some(old) = old.and_then(|o| o.get(&rule.path))
            && old.0 == policies
        {
            out.insert(rule.path.clone(), old.clone());
            continue;
        }
        let limiter = match &policies {
            Some(set) => Some(Arc::new(
                RuleLimiter::new(backend, set.clone(), clock).map_err(|source| {
                    BuildError::Policy {
                        rule: rule.path.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        out.insert(rule.path.clone(), (policies, limiter));
    }
    Ok(out)
}

/// What one descriptor is checked against.
enum Target {
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
struct Answer {
    status: DescriptorStatus,
    /// Over the limit (before shadow mode turns the code to OK).
    over: bool,
    shadow: bool,
    quota: bool,
    /// Remaining and limit, for the response headers.
    limited: Option<(u64, u64, Duration, Duration)>,
}

impl RateLimiter {
    /// Starts building a limiter for `config`.
    pub fn builder(config: Config) -> RateLimiterBuilder {
        RateLimiterBuilder {
            config,
            backend: Backend::memory(),
            clock: None,
            options: ServiceOptions::default(),
        }
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
                let near = a.limited.is_some_and(|(remaining, limit, _, _)| {
                    (limit - remaining.min(limit)) * 100 > limit * NEAR_LIMIT_PERCENT
                });
                metrics::record(
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

    /// Decides one descriptor.
    async fn answer(
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
