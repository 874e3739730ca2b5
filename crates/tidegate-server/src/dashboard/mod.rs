//! The live dashboard of `tidegate serve`, mounted only when an admin token is
//! configured: `GET /dashboard` serves one page (HTML, CSS and JavaScript embedded in
//! the binary, sent with a strict Content-Security-Policy), which asks for the admin
//! token, keeps it in the browser's session storage and sends it as
//! `Authorization: Bearer` with every call. `GET /admin/dashboard/events` (admin token)
//! streams a JSON snapshot once a second as server-sent events: the `/admin/stats`
//! counters (decisions per policy, the store, the tracker), the Redis round trip, and
//! each work queue named in `[dashboard] queues`. The page draws rates from the
//! counters and calls the existing admin routes for key lookups, resets and top keys.

mod assets;
mod events;
mod routes;
mod snapshot;

pub(crate) use routes::router;
