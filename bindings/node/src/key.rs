//! A key string read from JavaScript into a stack buffer: one Node-API call and no
//! allocation for keys of up to [`INLINE`] bytes, the common case (client addresses,
//! user ids), instead of napi-rs's `String` (a call for the length, an allocation,
//! a call for the bytes).

use std::ptr;

use napi::{Env, Result, sys};

use crate::errors::type_error;

/// Longest key read without allocating, in UTF-8 bytes.
const INLINE: usize = 124;

/// Calls `f` with `value`'s UTF-8 text; a `TypeError` when it is not a string.
pub(crate) fn with_key<R>(
    env: &Env,
    value: sys::napi_value,
    f: impl FnOnce(&str) -> R,
) -> Result<R> {
    let env = env.raw();
    // Room for INLINE + 4 bytes of text and Node-API's NUL. Node-API writes whole
    // characters only (up to 4 bytes), so a longer text fills more than INLINE bytes:
    // an answer of at most INLINE bytes is the whole text.
    let mut buf = [0u8; INLINE + 5];
    let mut len = 0usize;
    // SAFETY: `buf` is writable for its length; Node-API writes at most `buf.len()`
    // bytes, NUL included, and only whole UTF-8 characters.
    let status = unsafe {
        sys::napi_get_value_string_utf8(env, value, buf.as_mut_ptr().cast(), buf.len(), &mut len)
    };
    if status != sys::Status::napi_ok {
        return Err(type_error("key must be a string"));
    }
    if len <= INLINE {
        return Ok(f(utf8(&buf[..len])?));
    }
    // Longer: ask for the length, then read it all.
    // SAFETY: a null buffer asks only for the length.
    let status =
        unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) };
    if status != sys::Status::napi_ok {
        return Err(type_error("key must be a string"));
    }
    let mut long = vec![0u8; len + 1];
    // SAFETY: `long` is writable for its length, room for the text and the NUL.
    let status = unsafe {
        sys::napi_get_value_string_utf8(env, value, long.as_mut_ptr().cast(), long.len(), &mut len)
    };
    if status != sys::Status::napi_ok {
        return Err(type_error("key must be a string"));
    }
    Ok(f(utf8(&long[..len])?))
}

/// Node-API's UTF-8 (lone surrogates become U+FFFD) as text.
fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| type_error("key must be a string"))
}
