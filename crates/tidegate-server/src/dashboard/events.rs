//! `GET /admin/dashboard/events`: one `snapshot` event a second (server-sent events),
//! until the client goes away or the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::HeaderName;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use tokio::time::MissedTickBehavior;

use super::routes::Watch;
use super::snapshot::snapshot;

/// Time between two snapshots.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// The stream of snapshots; the first is sent at once.
pub(super) async fn stream(State(watch): State<Arc<Watch>>) -> Response {
    let stop = watch.app.stop.clone();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let events = futures_util::stream::unfold(
        (watch, stop, tick),
        |(watch, mut stop, mut tick)| async move {
            if *stop.borrow() {
                return None;
            }
            tokio::select! {
                _ = tick.tick() => {}
                // Shutdown began (or the server is gone): end the stream so the
                // connection does not hold the graceful shutdown up.
                _ = stop.changed() => return None,
            }
            let data = snapshot(&watch).await.to_string();
            let event = Event::default().event("snapshot").data(data);
            Some((Ok::<_, Infallible>(event), (watch, stop, tick)))
        },
    );
    let mut resp = Sse::new(events).into_response();
    resp.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    resp
}
