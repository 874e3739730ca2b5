//! The `cost` argument: a whole number of units, 1 when absent.

use napi::Result;
use tidegate_core::CostError;

use crate::errors::{limit_error, range_error};

/// `cost` as a u64: absent is 1; zero is tidegate's cost error; a negative, fractional
/// or non-finite number a `RangeError`.
pub(crate) fn to_cost(cost: Option<f64>) -> Result<u64> {
    let Some(cost) = cost else { return Ok(1) };
    if cost == 0.0 {
        return Err(limit_error(CostError::Zero.into()));
    }
    if !cost.is_finite() || cost < 0.0 || cost.fract() != 0.0 || cost > 9_007_199_254_740_991.0 {
        return Err(range_error(format!(
            "cost must be a whole number of at least 1, got {cost}"
        )));
    }
    Ok(cost as u64)
}
