//! Seconds given by Python (an `int` or a `float`) as whole microseconds.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

/// `value` seconds (`int` exactly, `float` rounded to the microsecond) as microseconds;
/// `name` is the argument, for error messages. Negative, NaN and infinite values are
/// rejected.
#[inline]
pub(crate) fn to_micros(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    // The common case first: an exact `int` that fits (one type comparison).
    if value.is_exact_instance_of::<PyInt>()
        && let Ok(secs) = value.extract::<u64>()
        && let Some(us) = secs.checked_mul(1_000_000)
    {
        return Ok(us);
    }
    if value.is_instance_of::<PyBool>() {
        return Err(not_a_number(value, name));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(secs) = value.extract::<u64>() {
            return secs
                .checked_mul(1_000_000)
                .ok_or_else(|| too_large(name, value));
        }
        if value.extract::<i64>().is_ok_and(|v| v < 0) || value.lt(0).unwrap_or(false) {
            return Err(negative(name, value));
        }
        return Err(too_large(name, value));
    }
    if value.is_instance_of::<PyFloat>() {
        let secs: f64 = value.extract()?;
        if secs.is_nan() || secs.is_infinite() {
            return Err(PyValueError::new_err(format!(
                "`{name}` must be a finite number of seconds, got {secs}"
            )));
        }
        if secs < 0.0 {
            return Err(negative(name, value));
        }
        let us = (secs * 1e6).round();
        if us >= u64::MAX as f64 {
            return Err(too_large(name, value));
        }
        return Ok(us as u64);
    }
    Err(not_a_number(value, name))
}

/// Microseconds as Python seconds: an `int` when whole, else a `float`.
pub(crate) fn to_python(py: Python<'_>, us: u64) -> PyResult<Bound<'_, PyAny>> {
    if us.is_multiple_of(1_000_000) {
        Ok(PyInt::new(py, us / 1_000_000).into_any())
    } else {
        Ok(PyFloat::new(py, as_float(us)).into_any())
    }
}

/// Microseconds as float seconds.
pub(crate) fn as_float(us: u64) -> f64 {
    Duration::from_micros(us).as_secs_f64()
}

fn not_a_number(value: &Bound<'_, PyAny>, name: &str) -> PyErr {
    let type_name = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!(
        "`{name}` must be a number of seconds (int or float), got {type_name}"
    ))
}

fn negative(name: &str, value: &Bound<'_, PyAny>) -> PyErr {
    PyValueError::new_err(format!(
        "`{name}` must be zero or more seconds, got {value}"
    ))
}

fn too_large(name: &str, value: &Bound<'_, PyAny>) -> PyErr {
    PyValueError::new_err(format!("`{name}` {value} is too large"))
}
