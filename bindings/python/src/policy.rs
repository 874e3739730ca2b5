//! The `policy` argument: a short-form string or a list of them.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use tidegate_core::PolicySet;

use crate::errors::policy_error;

/// A short-form string, or a list (or tuple) of them, as one policy set.
pub(crate) fn parse_policy(policy: &Bound<'_, PyAny>) -> PyResult<PolicySet> {
    let text = if policy.is_instance_of::<PyString>() {
        policy.extract::<String>()?
    } else if policy.is_instance_of::<PyList>() || policy.is_instance_of::<PyTuple>() {
        let parts: Vec<String> = policy
            .extract()
            .map_err(|_| PyTypeError::new_err("`policy` must be a string or a list of strings"))?;
        // As `tidegate replay --policy A --policy B` does.
        parts.join(";")
    } else {
        return Err(PyTypeError::new_err(
            "`policy` must be a string or a list of strings, e.g. \"token_bucket:100/1m,burst=20\"",
        ));
    };
    text.parse::<PolicySet>().map_err(policy_error)
}
