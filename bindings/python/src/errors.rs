//! The exception classes, and how the core's errors become them.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use tidegate_core::LimitError;

pyo3::create_exception!(
    tidegate,
    PolicyError,
    PyValueError,
    "A policy (or a throttler window) that cannot be used; the message names the field \
     and the reason, as `tidegate replay --policy` prints it."
);

pyo3::create_exception!(
    tidegate,
    CostError,
    PyValueError,
    "A cost the policy can never admit: zero or less, or more than its full quota."
);

pyo3::create_exception!(
    tidegate,
    StoreFullError,
    PyRuntimeError,
    "A new key did not fit: the limiter already holds `max_keys` keys. It is refused \
     rather than admitted unlimited; raise `max_keys` or let idle keys expire."
);

/// `tidegate.PolicyError` with the core's message.
pub(crate) fn policy_error(e: tidegate_core::PolicyError) -> PyErr {
    PolicyError::new_err(e.to_string())
}

/// The Python exception for a limiter that could not decide.
pub(crate) fn limit_error(e: LimitError) -> PyErr {
    match e {
        LimitError::Cost(cost) => CostError::new_err(cost.to_string()),
        e @ LimitError::StoreFull { .. } => StoreFullError::new_err(e.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// The error of `pickle.dumps` (and `copy.copy`) on an object whose state lives in Rust.
pub(crate) fn not_picklable(class: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "tidegate.{class} cannot be pickled or copied: its per-key state lives in this \
         process's memory; create a new {class} in each process (share limits between \
         processes through Redis)"
    ))
}
