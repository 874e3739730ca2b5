//! The webhook client: one `POST` per delivery over HTTP/1.1, plain or TLS (rustls with
//! ring, the system's root certificates or a CA file of your own). The tracker's
//! `webhook` sink delivers through it, and so can anything else that posts JSON to a URL.

mod client;
mod error;
mod url;

pub use client::Webhook;
pub use error::WebhookError;
pub use url::check_url;
