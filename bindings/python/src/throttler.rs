//! `tidegate.EventThrottler`: the Python per-key event throttler's API over
//! `tidegate_core::Throttler`.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};
use tidegate_core::{PolicyError, Throttler};

use crate::errors::{not_picklable, policy_error};
use crate::key::with_key;
use crate::seconds::{to_micros, to_python};

/// Processes only the first event per key within a window of seconds.
///
/// An event is processed when no event of its key was processed in the last `window`
/// seconds: one exactly `window` after the last processed one is processed, an earlier
/// one is not. Safe to share between threads. Keys idle for longer than the window
/// (measured against the latest timestamp seen) are removed in the background.
#[pyclass(module = "tidegate", frozen)]
pub(crate) struct EventThrottler {
    inner: Throttler,
}

#[pymethods]
impl EventThrottler {
    #[new]
    #[pyo3(signature = (window = None))]
    fn new(window: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let us = match window {
            Some(w) => window_micros(w)?,
            None => 10_000_000,
        };
        let inner = Throttler::new(Duration::from_micros(us)).map_err(policy_error)?;
        Ok(Self { inner })
    }

    /// Whether the event at `timestamp` (seconds) should be processed for `key`.
    /// `event_id` does not affect the decision.
    #[pyo3(signature = (timestamp, event_id, key))]
    fn should_process(
        &self,
        timestamp: &Bound<'_, PyAny>,
        event_id: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let _ = event_id;
        let now = Duration::from_micros(to_micros(timestamp, "timestamp")?);
        with_key(key, |key| self.inner.should_process_at(now, "", key))
    }

    /// Changes the window (seconds); it applies to existing keys at once.
    fn update_window(&self, new_window: &Bound<'_, PyAny>) -> PyResult<()> {
        let us = window_micros(new_window)?;
        self.inner
            .update_window(Duration::from_micros(us))
            .map_err(policy_error)
    }

    /// The current window in seconds (an int when whole).
    fn get_window<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.inner.window().as_micros() as u64)
    }

    /// Forgets every key.
    fn clear(&self) {
        self.inner.clear();
    }

    /// Number of keys tracked (keys idle for longer than the window are removed in the
    /// background, at the latest about a second after they became idle).
    fn get_key_count(&self) -> usize {
        self.inner.key_count()
    }

    /// Removes keys idle for longer than the window now; returns how many.
    fn cleanup(&self) -> usize {
        self.inner.cleanup()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "EventThrottler(window={}, keys={})",
            self.get_window(py)?.repr()?,
            self.inner.key_count()
        ))
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(not_picklable("EventThrottler"))
    }
}

/// A window in seconds; zero or less is a `PolicyError`, as for a policy's window.
fn window_micros(window: &Bound<'_, PyAny>) -> PyResult<u64> {
    let number = window.is_instance_of::<PyInt>() || window.is_instance_of::<PyFloat>();
    if number && window.le(0)? {
        return Err(policy_error(PolicyError::new(
            "window",
            "must be greater than zero",
        )));
    }
    to_micros(window, "window")
}
