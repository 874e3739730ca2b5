//! `Limiter.checker(slots, name)`: the Express middleware's check, `check(key)`, as a
//! plain Node-API function that holds its limiter. napi-rs's generated glue opens a borrow
//! scope on every call of a function with arguments (an `Arc<Mutex<..>>` allocated and
//! freed, a thread-local pushed and popped), and an `External` argument is looked up in
//! napi-rs's registry behind a mutex; this function reads its one argument and the
//! pointer it was created with, and nothing else.

use std::ffi::{CStr, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use napi::bindgen_prelude::{JsError, JsValue, Unknown};
use napi::{Env, Error, Result, Status, sys};
use tidegate_core::headers::{HeaderText, LimitMember, secs_ceil};

use crate::decision::{DECISION_SLOTS, write_decision};
use crate::errors::{limit_error, range_error, type_error};
use crate::key::with_key;
use crate::limiter::MemoryLimiter;

/// The created function's name.
const NAME: &CStr = c"check";
/// The function's property holding its slots.
const SLOTS: &CStr = c"slots";

/// What a checker function holds: its limiter and where it writes each decision.
struct Checker {
    limiter: Arc<MemoryLimiter>,
    /// The first of the slots: a typed array that the function holds as its `slots`
    /// property, which can be neither replaced nor deleted, so that it lives as long as
    /// the function. Its memory no longer moves once Node-API has given its address
    /// (`napi_get_typedarray_info` moves a small array's numbers off V8's heap).
    slots: NonNull<f64>,
    /// With a name: the `RateLimit` member an admitted check answers.
    member: Option<LimitMember>,
}

/// A new function `check(key)`: `check(key)` with a cost of 1 on `limiter`, answering
/// whether the request was admitted and writing the decision's numbers into `slots`, a
/// `Float64Array` of at least [`DECISION_SLOTS`] numbers.
pub(crate) fn new_checker<'env>(
    env: &'env Env,
    limiter: Arc<MemoryLimiter>,
    slots: Unknown<'env>,
    name: Option<&str>,
) -> Result<Unknown<'env>> {
    let raw_env = env.raw();
    let slots = slots.raw();
    let mut kind = sys::TypedarrayType::uint8_array;
    let mut length = 0usize;
    let mut first = ptr::null_mut();
    // SAFETY: a live `env` and value; Node-API fails for a value that is not a typed
    // array and writes nothing then.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            raw_env,
            slots,
            &mut kind,
            &mut length,
            &mut first,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok || kind != sys::TypedarrayType::float64_array {
        return Err(type_error("slots must be a Float64Array"));
    }
    if length < DECISION_SLOTS {
        return Err(range_error(format!(
            "slots must hold {DECISION_SLOTS} numbers, it holds {length}"
        )));
    }
    let Some(first) = NonNull::new(first.cast::<f64>()) else {
        return Err(range_error(format!(
            "slots must hold {DECISION_SLOTS} numbers, it has no memory"
        )));
    };
    let data = Box::into_raw(Box::new(Checker {
        limiter,
        slots: first,
        member: name.map(LimitMember::new),
    }))
    .cast::<c_void>();
    let mut function = ptr::null_mut();
    // SAFETY: `NAME` is NUL-terminated (length -1: up to the NUL); `call` has the
    // signature Node-API calls; `data` is a live `Checker` that `finalize` frees.
    let mut status = unsafe {
        sys::napi_create_function(raw_env, NAME.as_ptr(), -1, Some(call), data, &mut function)
    };
    if status == sys::Status::napi_ok {
        let property = sys::napi_property_descriptor {
            utf8name: SLOTS.as_ptr(),
            name: ptr::null_mut(),
            method: None,
            getter: None,
            setter: None,
            value: slots,
            // Neither writable nor configurable: the slots live as long as the function.
            attributes: sys::PropertyAttributes::default,
            data: ptr::null_mut(),
        };
        // SAFETY: `function` and `slots` are live values; `SLOTS` is NUL-terminated.
        status = unsafe { sys::napi_define_properties(raw_env, function, 1, &property) };
    }
    if status == sys::Status::napi_ok {
        // SAFETY: `function` is a live value; `finalize` runs once, after it is collected.
        status = unsafe {
            sys::napi_add_finalizer(
                raw_env,
                function,
                data,
                Some(finalize),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if status == sys::Status::napi_ok {
            // SAFETY: `function` is a live value of this `env`.
            return Ok(unsafe { Unknown::from_raw_unchecked(raw_env, function) });
        }
    }
    // SAFETY: `data` came from `Box::into_raw` above and nothing holds it: no function
    // was made, or none that will call `finalize`.
    drop(unsafe { Box::from_raw(data.cast::<Checker>()) });
    Err(failed(status, "creating the checker function"))
}

/// The error of a Node-API call that answered `status` while `doing` something.
fn failed(status: sys::napi_status, doing: &str) -> Error {
    Error::new(Status::from(status), doing.to_owned())
}

/// Frees a checker function's `Checker` once the function is collected.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Checker` the function was created with; nothing else
    // frees it, and the function that used it is gone.
    drop(unsafe { Box::from_raw(data.cast::<Checker>()) });
}

/// The function's body as Node-API calls it. Errors are thrown as napi-rs throws them
/// (`lib/errors.js` gives them their JavaScript classes).
unsafe extern "C" fn call(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: Node-API calls this with a live `env` and `info`.
    match unsafe { check(env, info) } {
        Ok(value) => value,
        Err(e) => {
            // SAFETY: a live `env` of a JavaScript call.
            unsafe { JsError::from(e).throw_into(env) };
            ptr::null_mut()
        }
    }
}

/// Reads the key, decides, writes the numbers and makes the answer: whether admitted,
/// or with a name the `RateLimit` value when admitted and `false` when refused.
///
/// # Safety
/// `env` and `info` must be those Node-API passed to [`call`].
unsafe fn check(env: sys::napi_env, info: sys::napi_callback_info) -> Result<sys::napi_value> {
    let mut argc = 1usize;
    let mut argv = [ptr::null_mut(); 1];
    let mut data = ptr::null_mut();
    // SAFETY: `argv` has room for `argc` values; a missing key comes as `undefined`.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(failed(status, "reading the checker's argument"));
    }
    // SAFETY: `data` is the `Checker` this function was created with (only
    // `new_checker` creates it), alive until the function is collected. JavaScript runs
    // on one thread and the check calls no JavaScript, so no other reference to it is
    // in use.
    let checker = unsafe { &*data.cast::<Checker>() };
    let d = with_key(&Env::from(env), argv[0], |k| checker.limiter.check(k, 1))?
        .map_err(limit_error)?;
    // SAFETY: the slots (at least DECISION_SLOTS numbers, checked by `new_checker`)
    // live as long as the function that runs, and nothing else reads or writes them
    // while this call runs (JavaScript waits for it).
    let slots = unsafe { std::slice::from_raw_parts_mut(checker.slots.as_ptr(), DECISION_SLOTS) };
    write_decision(&d, slots);
    let mut value = ptr::null_mut();
    let status = match &checker.member {
        Some(member) if d.allowed => {
            let mut text = HeaderText::new();
            member.push(&mut text, d.remaining, secs_ceil(d.reset_after_us));
            let bytes = text.as_bytes();
            // SAFETY: a live `env`; `bytes` is ASCII (the escaped name and digits) of
            // the given length. Latin-1 makes V8's one-byte string with one copy.
            unsafe {
                sys::napi_create_string_latin1(
                    env,
                    bytes.as_ptr().cast(),
                    bytes.len() as isize,
                    &mut value,
                )
            }
        }
        // SAFETY: a live `env`.
        _ => unsafe { sys::napi_get_boolean(env, d.allowed, &mut value) },
    };
    if status != sys::Status::napi_ok {
        return Err(failed(status, "making the checker's answer"));
    }
    Ok(value)
}
