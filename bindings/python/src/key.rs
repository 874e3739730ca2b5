//! A key given by Python (a `str`) as `&str`, without copying it (except on Windows).

#[cfg(not(windows))]
use std::os::raw::c_char;

use pyo3::exceptions::PyTypeError;
#[cfg(not(windows))]
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

#[cfg(not(windows))]
unsafe extern "C" {
    // Public in every CPython 3 since 3.3, in the stable ABI from 3.10 on (which is why
    // pyo3's abi3-py39 bindings leave it out; on Windows an abi3 module links against
    // python3.dll, which exports it only from 3.10 on, so Windows copies instead). It
    // returns the string's own UTF-8 buffer, cached in the object: no allocation per
    // call, unlike `PyUnicode_AsUTF8String`.
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

/// Calls `f` with `key`'s text; a `TypeError` names the argument when it is not a `str`.
#[inline]
pub(crate) fn with_key<R>(key: &Bound<'_, PyAny>, f: impl FnOnce(&str) -> R) -> PyResult<R> {
    let key = key.cast::<PyString>().map_err(|_| {
        let type_name = key
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!("`key` must be a str, got {type_name}"))
    })?;
    #[cfg(not(windows))]
    {
        let mut size: ffi::Py_ssize_t = 0;
        // SAFETY: `key` is a live `str`; the returned buffer belongs to it and lives as
        // long as it does, which outlasts this call (we hold a reference). CPython
        // guarantees the buffer is valid UTF-8 of `size` bytes; a null return sets a
        // Python error (a string with lone surrogates).
        let text = unsafe {
            let data = PyUnicode_AsUTF8AndSize(key.as_ptr(), &mut size);
            if data.is_null() {
                return Err(PyErr::fetch(key.py()));
            }
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                data.cast::<u8>(),
                size as usize,
            ))
        };
        Ok(f(text))
    }
    #[cfg(windows)]
    {
        let text = pyo3::pybacked::PyBackedStr::try_from(key.clone())?;
        Ok(f(&text))
    }
}
