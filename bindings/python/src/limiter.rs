//! `tidegate.Limiter`: any tidegate policy (or several on one key) in memory.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyString;
use tidegate_core::{Limiter as CoreLimiter, PolicySet};

use crate::cost::to_cost;
use crate::decision::Decision;
use crate::errors::{limit_error, not_picklable};
use crate::key::with_key;
use crate::policy::parse_policy;
use crate::seconds::to_micros;
use crate::timeline::Timeline;

/// Decides allow/deny per key with one policy or several guarding each key together.
///
/// `policy` is the short form (`"token_bucket:100/1m,burst=20"`,
/// `"gcra:10/1s;fixed_window:1000/1d"`) or a list of them. `max_keys` bounds the keys
/// held in memory (default 10 million); at the bound, a new key is refused with
/// `StoreFullError`. Safe to share between threads.
#[pyclass(module = "tidegate", frozen)]
pub(crate) struct Limiter {
    inner: Core,
    timeline: Arc<Timeline>,
}

#[pymethods]
impl Limiter {
    #[new]
    #[pyo3(signature = (policy, *, max_keys = None))]
    fn new(policy: &Bound<'_, PyAny>, max_keys: Option<usize>) -> PyResult<Self> {
        let policies = parse_policy(policy)?;
        let timeline = Arc::new(Timeline::default());
        let mut builder = CoreLimiter::builder(policies).clock(Arc::clone(&timeline));
        if let Some(max_keys) = max_keys {
            builder = builder.max_keys(max_keys);
        }
        Ok(Self {
            inner: builder.build(),
            timeline,
        })
    }

    /// The policies, in short form (several separated by `;`).
    #[getter]
    fn policy(&self) -> String {
        self.inner.algorithm().to_string()
    }

    /// Decides now for `key`, consuming `cost` if admitted.
    #[pyo3(signature = (key, cost = None))]
    fn check(&self, key: &Bound<'_, PyAny>, cost: Option<&Bound<'_, PyAny>>) -> PyResult<Decision> {
        let cost = to_cost(cost, self.inner.algorithm())?;
        self.timeline.live()?;
        with_key(key, |key| self.inner.check(key, cost)).and_then(decide)
    }

    /// The decision `check` would give now, consuming nothing.
    #[pyo3(signature = (key, cost = None))]
    fn peek(&self, key: &Bound<'_, PyAny>, cost: Option<&Bound<'_, PyAny>>) -> PyResult<Decision> {
        let cost = to_cost(cost, self.inner.algorithm())?;
        self.timeline.live()?;
        with_key(key, |key| self.inner.peek(key, cost)).and_then(decide)
    }

    /// Decides at `at_seconds` on the caller's own timeline (a replay of recorded
    /// traffic, as `tidegate replay` does). A limiter used with `check_at` cannot also
    /// use `check` or `peek`.
    fn check_at(
        &self,
        key: &Bound<'_, PyAny>,
        cost: &Bound<'_, PyAny>,
        at_seconds: &Bound<'_, PyAny>,
    ) -> PyResult<Decision> {
        self.at(key, cost, at_seconds, CoreLimiter::check_at)
    }

    /// The decision `check_at` would give, consuming nothing.
    fn peek_at(
        &self,
        key: &Bound<'_, PyAny>,
        cost: &Bound<'_, PyAny>,
        at_seconds: &Bound<'_, PyAny>,
    ) -> PyResult<Decision> {
        self.at(key, cost, at_seconds, CoreLimiter::peek_at)
    }

    /// Forgets `key`'s state; returns whether there was one.
    fn reset(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        with_key(key, |key| self.inner.reset(key))
    }

    /// Number of keys held (expired ones are removed in the background).
    fn key_count(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let policy = PyString::new(py, &self.inner.algorithm().to_string());
        Ok(format!(
            "Limiter({}, keys={})",
            policy.repr()?,
            self.inner.len()
        ))
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(not_picklable("Limiter"))
    }
}

type Core = CoreLimiter<PolicySet, String, Arc<Timeline>>;

impl Limiter {
    /// `check_at` or `peek_at`: the cost and the time checked, the timeline moved to
    /// `at_seconds`, then `decide_at` on the core limiter.
    fn at(
        &self,
        key: &Bound<'_, PyAny>,
        cost: &Bound<'_, PyAny>,
        at_seconds: &Bound<'_, PyAny>,
        decide_at: impl FnOnce(&Core, &str, u64, u64) -> CoreResult,
    ) -> PyResult<Decision> {
        let cost = to_cost(Some(cost), self.inner.algorithm())?;
        let now = to_micros(at_seconds, "at_seconds")?;
        self.timeline.replay(now)?;
        with_key(key, |key| decide_at(&self.inner, key, cost, now)).and_then(decide)
    }
}

type CoreResult = Result<tidegate_core::Decision, tidegate_core::LimitError>;

fn decide(
    result: Result<tidegate_core::Decision, tidegate_core::LimitError>,
) -> PyResult<Decision> {
    result.map(Decision).map_err(limit_error)
}
