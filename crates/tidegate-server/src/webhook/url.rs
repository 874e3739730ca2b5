//! Which URLs a webhook may post to.

use axum::http::Uri;

use super::WebhookError;

/// Checks `url`: `http://` or `https://` with a host and without credentials.
pub fn check_url(url: &str) -> Result<Uri, WebhookError> {
    let uri: Uri = url.parse().map_err(WebhookError::NotAUrl)?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(WebhookError::Scheme),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(WebhookError::NoHost);
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(WebhookError::Credentials);
    }
    Ok(uri)
}
