//! Reading request bodies: a `POST` must say `Content-Type: application/json` (so a
//! browser page cannot send one cross-origin without a preflight that is never granted);
//! a body is refused before a byte is read when its declared length is too large (so
//! `Expect: 100-continue` gets `413`, not `100 Continue`), read within
//! `server.body_timeout`, and given up when shutdown begins.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::{App, error};

/// Buffers the request body (at most `max_body_bytes`, within `body_timeout`) before the
/// route runs; answers `413`, `408` or `503` (shutting down) as JSON otherwise.
pub(crate) async fn read_body(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method == Method::POST && !is_json(parts.headers.get(CONTENT_TYPE)) {
        let got = parts
            .headers
            .get(CONTENT_TYPE)
            .map_or("none".to_string(), |v| {
                format!("`{}`", String::from_utf8_lossy(v.as_bytes()))
            });
        return closing(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("`Content-Type` must be application/json (got {got})"),
        ));
    }
    let max = app.max_body_bytes;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return closing(too_large(max));
    }
    if declared == Some(0) {
        return next.run(Request::from_parts(parts, Body::empty())).await;
    }
    let mut collect = std::pin::pin!(Limited::new(body, max).collect());
    // A small body usually came with its head: read it at once, without arming the timer
    // or watching for shutdown.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let read = match first {
        Poll::Ready(read) => Ok(read),
        Poll::Pending => {
            let mut stop = app.stop.clone();
            tokio::select! {
                read = tokio::time::timeout(app.body_timeout, collect) => read,
                _ = stop.wait_for(|s| *s) => {
                    return closing(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the server is shutting down; the request body was not complete",
                    ));
                }
            }
        }
    };
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return closing(too_large(max)),
        Ok(Err(e)) => {
            return closing(error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ));
        }
        Err(_) => {
            return closing(error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?} (server.body_timeout)",
                    app.body_timeout
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `application/json`, with or without parameters (`; charset=utf-8`), in any case.
fn is_json(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {max} bytes"),
    )
}

/// The answer, closing the connection (its unread body would be taken for the next
/// request otherwise).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}
