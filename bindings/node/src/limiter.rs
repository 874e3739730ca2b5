//! `Limiter`: any tidegate policy (or several on one key) in this process's memory.

use std::sync::Arc;

use napi::bindgen_prelude::{Float64ArraySlice, Unknown};
use napi::{Env, Result};
use napi_derive::napi;
use tidegate_core::headers::policy_set_value;
use tidegate_core::{Limiter as CoreLimiter, PolicySet};

use crate::checker::new_checker;
use crate::cost::to_cost;
use crate::decision::{DECISION_SLOTS, Decision, write_decision};
use crate::errors::{limit_error, range_error};
use crate::millis_clock::MillisClock;
use crate::policy::{PolicyArg, parse_policy};
use crate::quota::{Quota, quotas};

/// Options of a memory `Limiter`.
#[napi(object)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LimiterOptions {
    /// Most keys held in memory (default 10 million); at the bound a new key is refused
    /// with an error, never admitted unlimited.
    pub max_keys: Option<f64>,
}

/// Decides allow/deny per key, in memory, with one policy or several guarding each key
/// together (all admit and consume, or none).
/// Time is read on each decision, to the millisecond (`MillisClock`).
#[napi]
pub struct Limiter {
    inner: Arc<MemoryLimiter>,
}

/// The engine's memory limiter as the package holds it.
pub(crate) type MemoryLimiter = CoreLimiter<PolicySet, String, MillisClock>;

#[napi]
impl Limiter {
    /// `policy`: the short form (`"token_bucket:100/1m,burst=20"`,
    /// `"gcra:10/1s;fixed_window:1000/1d"`) or an array of them.
    #[napi(constructor)]
    pub fn new(policy: PolicyArg, options: Option<LimiterOptions>) -> Result<Self> {
        let policies = parse_policy(policy)?;
        let mut builder = CoreLimiter::builder(policies).clock(MillisClock);
        if let Some(max_keys) = options.and_then(|o| o.max_keys) {
            if !(max_keys >= 1.0 && max_keys.fract() == 0.0) {
                return Err(range_error(format!(
                    "maxKeys must be a whole number of at least 1, got {max_keys}"
                )));
            }
            builder = builder.max_keys(max_keys as usize);
        }
        Ok(Self {
            inner: Arc::new(builder.build()),
        })
    }

    /// The policies, in short form (several separated by `;`).
    #[napi(getter)]
    pub fn policy(&self) -> String {
        self.inner.algorithm().to_string()
    }

    /// Each policy's limit and window, for `RateLimit-Policy`.
    #[napi]
    pub fn quotas(&self) -> Vec<Quota> {
        quotas(self.inner.algorithm())
    }

    /// Decides now for `key`, consuming `cost` (default 1) if admitted.
    #[napi]
    pub fn check(&self, key: String, cost: Option<f64>) -> Result<Decision> {
        let cost = to_cost(cost)?;
        self.inner
            .check(key.as_str(), cost)
            .map(Decision::from)
            .map_err(limit_error)
    }

    /// `check` without building an object: answers whether the request was admitted and
    /// writes the decision's numbers into `out` (limit, remaining, retry after or `NaN`,
    /// reset after, delay or `NaN`; milliseconds), for the middleware's one call per
    /// request.
    #[napi]
    pub fn check_into(
        &self,
        key: String,
        cost: Option<f64>,
        mut out: Float64ArraySlice<'_>,
    ) -> Result<bool> {
        // SAFETY: the typed array outlives this call, and nothing else reads or writes
        // it while this call runs (JavaScript waits for it).
        let out = unsafe { out.as_mut() };
        if out.len() < DECISION_SLOTS {
            return Err(range_error(format!(
                "out must hold {DECISION_SLOTS} numbers, it holds {}",
                out.len()
            )));
        }
        let cost = to_cost(cost)?;
        let d = self.inner.check(key.as_str(), cost).map_err(limit_error)?;
        write_decision(&d, out);
        Ok(d.allowed)
    }

    /// `check(key)` with a cost of 1 as a function of its own, for the middleware's one
    /// call per request: it writes the decision's numbers into `slots`, a
    /// `Float64Array` (as `checkInto`), which the function holds as its `slots`
    /// property for as long as it lives. It answers whether the request was admitted;
    /// given a limit `name`, it answers instead the `RateLimit` value
    /// (`"name";r=REMAINING;t=RESET_SECONDS`) when admitted and `false` when refused.
    #[napi(
        ts_args_type = "slots: Float64Array, name?: string",
        ts_return_type = "(key: string) => boolean | string"
    )]
    pub fn checker<'env>(
        &self,
        env: &'env Env,
        slots: Unknown<'env>,
        name: Option<String>,
    ) -> Result<Unknown<'env>> {
        new_checker(env, Arc::clone(&self.inner), slots, name.as_deref())
    }

    /// The `RateLimit-Policy` value of a limit named `name`: one
    /// `"name";q=LIMIT;w=WINDOW_SECONDS` member per policy, the second and later named
    /// `name-2`, `name-3`, ...
    #[napi]
    pub fn rate_limit_policy(&self, name: String) -> String {
        policy_set_value(&name, self.inner.algorithm())
    }

    /// The decision `check` would give now, consuming nothing.
    #[napi]
    pub fn peek(&self, key: String, cost: Option<f64>) -> Result<Decision> {
        let cost = to_cost(cost)?;
        self.inner
            .peek(key.as_str(), cost)
            .map(Decision::from)
            .map_err(limit_error)
    }

    /// Forgets `key`'s state; returns whether there was one.
    #[napi]
    pub fn reset(&self, key: String) -> bool {
        self.inner.reset(key.as_str())
    }

    /// Number of keys held (expired ones are removed in the background).
    #[napi]
    pub fn key_count(&self) -> u32 {
        u32::try_from(self.inner.len()).unwrap_or(u32::MAX)
    }
}
