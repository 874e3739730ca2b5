//! The `tidegate` Python package's native module: `EventThrottler`, `Limiter`,
//! `Decision` and the exception classes, over `tidegate-core`.

mod cost;
mod decision;
mod errors;
mod key;
mod limiter;
mod policy;
#[cfg(feature = "redis")]
mod redis_limiter;
mod seconds;
mod throttler;
mod timeline;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_tidegate")]
fn tidegate_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<throttler::EventThrottler>()?;
    m.add_class::<limiter::Limiter>()?;
    m.add_class::<decision::Decision>()?;
    #[cfg(feature = "redis")]
    m.add_class::<redis_limiter::RedisLimiter>()?;
    m.add("PolicyError", py.get_type::<errors::PolicyError>())?;
    m.add("CostError", py.get_type::<errors::CostError>())?;
    m.add("StoreFullError", py.get_type::<errors::StoreFullError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
