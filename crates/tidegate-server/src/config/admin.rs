//! `[admin]`: the admin routes' bearer token.

use super::*;

/// Whether an admin token is an example's placeholder (`change-me-...`, `CHANGEME`).
pub(super) fn is_placeholder(token: &str) -> bool {
    let letters: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    letters.contains("changeme")
}

/// `[admin]`: the bearer token of the admin routes, if any.
pub(super) fn admin_token(raw: RawAdmin) -> Result<Option<String>, Invalid> {
    Ok(match raw.token {
        None => None,
        Some(t) if t.trim().is_empty() => {
            return Err(bad(
                "admin.token",
                "must not be empty (remove it to turn the admin routes off)",
            ));
        }
        Some(t) if t.trim() != t || t.chars().any(char::is_control) => {
            return Err(bad(
                "admin.token",
                "must not contain spaces or control characters at its ends or inside (a trailing newline from a file?): no request could ever match it",
            ));
        }
        Some(t) if t.len() < 16 => {
            return Err(bad(
                "admin.token",
                "is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        Some(t) if is_placeholder(&t) => {
            return Err(bad(
                "admin.token",
                "is a placeholder (it says `change me`): set a secret of your own, e.g. \
                 TIDEGATE_ADMIN__TOKEN=$(openssl rand -hex 32)",
            ));
        }
        Some(t) => Some(t),
    })
}
