//! `tidegate.RedisLimiter`: limits shared through Redis with every process (Python or
//! `tidegate serve`) using the same Redis, namespace, name and policies.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use tidegate::store::redis::{
    RedisLimiter as CoreRedisLimiter, RedisOptions, RedisStore, parse_urls,
};
use tidegate::store::{FailurePolicy, LimitStore};

use crate::cost::to_cost;
use crate::decision::Decision;
use crate::errors::{limit_error, not_picklable, policy_error};
use crate::key::with_key;
use crate::policy::parse_policy;
use crate::seconds::to_micros;

/// Decides per key through Redis, sharing each key's quota with every limiter of the
/// same name and policies on the same Redis (other processes, `tidegate serve`).
///
/// `url`: `redis://host:port` (`rediss://` for TLS; several comma-separated URLs for a
/// cluster). `on_error`: what decides when Redis does not answer within `timeout`
/// seconds: `"local"` (an in-memory limiter in this process), `"fail_open"` or
/// `"fail_closed"`. Calls that wait on Redis release the GIL.
#[pyclass(module = "tidegate", frozen)]
pub(crate) struct RedisLimiter {
    inner: Arc<CoreRedisLimiter>,
    url: String,
}

#[pymethods]
impl RedisLimiter {
    #[new]
    #[pyo3(signature = (url, name, policy, *, on_error = "local", timeout = None, namespace = "tidegate"))]
    fn new(
        py: Python<'_>,
        url: &str,
        name: &str,
        policy: &Bound<'_, PyAny>,
        on_error: &str,
        timeout: Option<&Bound<'_, PyAny>>,
        namespace: &str,
    ) -> PyResult<Self> {
        let policies = parse_policy(policy)?;
        let on_error = match on_error {
            "local" => FailurePolicy::Local,
            "fail_open" => FailurePolicy::FailOpen,
            "fail_closed" => FailurePolicy::FailClosed,
            other => {
                return Err(PyValueError::new_err(format!(
                    "`on_error` must be \"local\", \"fail_open\" or \"fail_closed\", got {other:?}"
                )));
            }
        };
        let mut options = RedisOptions::default();
        if let Some(t) = timeout {
            let us = to_micros(t, "timeout")?;
            if us == 0 {
                return Err(PyValueError::new_err("`timeout` must be greater than zero"));
            }
            options.timeout = Duration::from_micros(us);
        }
        let urls = parse_urls(url).map_err(|e| PyValueError::new_err(format!("`url`: {e}")))?;
        let store = py
            .detach(|| runtime().block_on(RedisStore::open(&urls, options)))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let inner = store
            .limiter(name, policies)
            .namespace(namespace)
            .on_error(on_error)
            .build()
            .map_err(policy_error)?;
        Ok(Self {
            inner: Arc::new(inner),
            url: url.to_string(),
        })
    }

    /// The policies, in short form.
    #[getter]
    fn policy(&self) -> String {
        self.inner.policies().to_string()
    }

    /// The limiter's name (its keys are `<namespace>:<name>:{=<key>}:...`).
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// Decides now for `key` through Redis, consuming `cost` if admitted (blocking; the
    /// GIL is released while waiting).
    #[pyo3(signature = (key, cost = None))]
    fn check(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Decision> {
        self.blocking(py, key, cost, Consume::Yes)
    }

    /// The decision `check` would give now, consuming nothing (blocking).
    #[pyo3(signature = (key, cost = None))]
    fn peek(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Decision> {
        self.blocking(py, key, cost, Consume::No)
    }

    /// `await limiter.acquire(key, cost=1)`: the decision of `check`, for asyncio.
    #[pyo3(signature = (key, cost = None))]
    fn acquire<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cost = to_cost(cost, self.inner.policies())?;
        let key = with_key(key, str::to_owned)?;
        let limiter = Arc::clone(&self.inner);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            limiter
                .acquire(&key, cost, None)
                .await
                .map(Decision)
                .map_err(limit_error)
        })
    }

    /// Forgets `key`'s state in Redis; returns whether there was one (blocking).
    fn reset(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = with_key(key, str::to_owned)?;
        let limiter = &*self.inner;
        py.detach(|| runtime().block_on(limiter.reset(&key)))
            .map_err(limit_error)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "RedisLimiter({}, {}, {})",
            PyString::new(py, &self.url).repr()?,
            PyString::new(py, self.inner.name()).repr()?,
            PyString::new(py, &self.inner.policies().to_string()).repr()?,
        ))
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(not_picklable("RedisLimiter"))
    }
}

/// Whether a blocking decision consumes the cost (`check`) or only looks (`peek`).
enum Consume {
    Yes,
    No,
}

impl RedisLimiter {
    /// `check` or `peek`, waiting on Redis with the GIL released.
    fn blocking(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
        consume: Consume,
    ) -> PyResult<Decision> {
        let cost = to_cost(cost, self.inner.policies())?;
        let key = with_key(key, str::to_owned)?;
        let limiter = &*self.inner;
        py.detach(|| {
            runtime().block_on(async {
                match consume {
                    Consume::Yes => limiter.acquire(&key, cost, None).await,
                    Consume::No => limiter.peek(&key, cost, None).await,
                }
            })
        })
        .map(Decision)
        .map_err(limit_error)
    }
}

/// The one tokio runtime of the process, shared with the asyncio bridge.
fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}
