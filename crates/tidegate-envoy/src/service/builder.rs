//! Building a [`RateLimiter`]: its options, and one limiter per rule of a configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::{Inner, RateLimiter, Snapshot};
use crate::backend::{Backend, RuleLimiter, SharedClock};
use crate::config::Config;
use crate::error::BuildError;
use crate::headers::HeaderOptions;
use crate::map::Map;
use tidegate::{Clock, CoarseClock};

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
    /// A builder for `config` on the memory backend, with the default options.
    pub(super) fn new(config: Config) -> Self {
        Self {
            config,
            backend: Backend::memory(),
            clock: None,
            options: ServiceOptions::default(),
        }
    }

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
                reloading: Mutex::new(()),
                stats: Default::default(),
            }),
        })
    }
}

pub(super) type Limiters = Map<String, (Option<tidegate::PolicySet>, Option<Arc<RuleLimiter>>)>;

/// One limiter per rule; a rule whose path and policies are unchanged keeps its limiter
/// (and so its counters, in memory) from `old`.
pub(super) fn build_limiters(
    config: &Config,
    backend: &Backend,
    clock: &SharedClock,
    old: Option<&Limiters>,
) -> Result<Limiters, BuildError> {
    let mut out = Limiters::default();
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
