//! An error and its sources on one line.

use std::error::Error;

/// `e` and each of its sources joined by `: ` (as `anyhow` prints `{:#}`).
pub(crate) fn chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
