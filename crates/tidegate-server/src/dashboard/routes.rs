//! The dashboard's routes: the page and its assets (public; they hold no data), and the
//! event stream behind the admin token.

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tidegate::queue::{QueueOptions, WorkQueue};

use super::{assets, events};
use crate::app::{App, method_not_allowed, require_admin};

/// Longest a snapshot waits for one queue's counts.
const QUEUE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What the event stream reads: the server's state and the watched queues.
pub(super) struct Watch {
    /// The server's shared state.
    pub(super) app: Arc<App>,
    /// The queues of `[dashboard] queues`, in the configured order.
    pub(super) queues: Vec<WorkQueue>,
}

/// The dashboard's routes over `app`, watching the work queues named `queues` (the
/// configuration only allows them with the Redis store).
pub(crate) fn router(app: &Arc<App>, queues: &[String]) -> Router {
    let queues = match &app.policies.redis {
        Some(store) => queues
            .iter()
            .filter_map(|name| {
                let options = QueueOptions {
                    timeout: QUEUE_TIMEOUT,
                    ..QueueOptions::default()
                };
                WorkQueue::open(store.clone(), name, options)
                    .inspect_err(|e| tracing::warn!(queue = %name, error = %e, "dashboard: queue not watched"))
                    .ok()
            })
            .collect(),
        None => Vec::new(),
    };
    let watch = Arc::new(Watch {
        app: Arc::clone(app),
        queues,
    });
    let admin = Router::new()
        .route(
            "/admin/dashboard/events",
            get(events::stream).fallback(method_not_allowed),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(app),
            require_admin,
        ))
        .with_state(watch);
    Router::new()
        .route("/dashboard", get(assets::page).fallback(method_not_allowed))
        .route(
            "/dashboard/dashboard.js",
            get(assets::script).fallback(method_not_allowed),
        )
        .route(
            "/dashboard/dashboard.css",
            get(assets::style).fallback(method_not_allowed),
        )
        .merge(admin)
}
