//! The `cost` argument: a positive int the policies can admit.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use tidegate_core::{Algorithm, CostError, PolicySet};

use crate::errors::limit_error;

/// `cost` (1 when absent) as a u64; an int below 1 or above what `policies` can ever
/// admit is a `CostError` with the core's message.
pub(crate) fn to_cost(cost: Option<&Bound<'_, PyAny>>, policies: &PolicySet) -> PyResult<u64> {
    let Some(cost) = cost else {
        return Ok(1);
    };
    if cost.is_instance_of::<PyBool>() || !cost.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "`cost` must be an int, got {}",
            cost.get_type().name()?
        )));
    }
    match cost.extract::<u64>() {
        Ok(c) => Ok(c),
        Err(_) if cost.lt(1)? => Err(limit_error(CostError::Zero.into())),
        Err(_) => Err(crate::errors::CostError::new_err(format!(
            "cost {cost} can never be admitted: the policy admits at most {} at once",
            policies.capacity()
        ))),
    }
}
