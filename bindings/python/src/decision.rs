//! `tidegate.Decision`: the answer of a limiter for one request.

use pyo3::prelude::*;
use pyo3::types::PyFloat;

use crate::errors::not_picklable;
use crate::seconds::as_float;

/// The outcome of one decision. True when the request was admitted.
///
/// Times are seconds (floats, exact to the microsecond); `retry_after` is None when
/// admitted, `delay` is None except for an admitted `leaky_bucket` request.
#[pyclass(module = "tidegate", frozen, eq)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision(pub(crate) tidegate_core::Decision);

#[pymethods]
impl Decision {
    /// Whether the request was admitted (and its cost consumed).
    #[getter]
    fn allowed(&self) -> bool {
        self.0.allowed
    }

    /// The policy's limit (the binding policy's, when several guard the key).
    #[getter]
    fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Cost that could still be admitted right now, after this decision.
    #[getter]
    fn remaining(&self) -> u64 {
        self.0.remaining
    }

    /// Seconds until this cost could be admitted; None when admitted.
    #[getter]
    fn retry_after(&self) -> Option<f64> {
        self.0.retry_after_us.map(as_float)
    }

    /// Seconds until the full quota is back.
    #[getter]
    fn reset_after(&self) -> f64 {
        as_float(self.0.reset_after_us)
    }

    /// For `leaky_bucket`: seconds the admitted request waits before proceeding.
    #[getter]
    fn delay(&self) -> Option<f64> {
        self.0.delay_us.map(as_float)
    }

    fn __bool__(&self) -> bool {
        self.0.allowed
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let d = &self.0;
        let secs = |us: u64| -> PyResult<String> {
            Ok(PyFloat::new(py, as_float(us)).repr()?.to_string())
        };
        let opt = |v: Option<u64>| v.map_or(Ok("None".to_string()), secs);
        Ok(format!(
            "Decision(allowed={}, limit={}, remaining={}, retry_after={}, reset_after={}, delay={})",
            if d.allowed { "True" } else { "False" },
            d.limit,
            d.remaining,
            opt(d.retry_after_us)?,
            secs(d.reset_after_us)?,
            opt(d.delay_us)?,
        ))
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(not_picklable("Decision"))
    }
}
