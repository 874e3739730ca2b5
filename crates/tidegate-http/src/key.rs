//! What a request is limited by: its client address, a header, the authenticated
//! subject, or a closure; and what happens when no key can be found.

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderName;
use axum::http::request::Parts;

use crate::ip::{ClientIp, IpKey};

/// The authenticated subject of a request (a user or client id), as a request
/// extension: an auth layer placed before the rate limit inserts it, and
/// [`KeyExtractor::subject`] limits by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject(pub String);

type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

#[derive(Clone)]
enum Kind {
    Ip(ClientIp),
    Header(HeaderName),
    Subject,
    Custom(Arc<KeyFn>),
}

/// Derives the rate-limit key of a request. The default is [`KeyExtractor::peer_ip`].
#[derive(Clone)]
pub struct KeyExtractor(Kind);

impl Default for KeyExtractor {
    fn default() -> Self {
        Self::peer_ip()
    }
}

impl fmt::Debug for KeyExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Ip(c) => f.debug_tuple("ClientIp").field(c).finish(),
            Kind::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Kind::Subject => f.write_str("Subject"),
            Kind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl KeyExtractor {
    /// The peer address (no trusted proxy; IPv6 grouped by /64, IPv4 as /32).
    pub fn peer_ip() -> Self {
        Self(Kind::Ip(ClientIp::default()))
    }

    /// The client address as `client_ip` resolves and groups it (trusted proxies,
    /// prefixes).
    pub fn client_ip(client_ip: ClientIp) -> Self {
        Self(Kind::Ip(client_ip))
    }

    /// The value of header `name` (e.g. `x-api-key`); missing or empty counts as no key.
    ///
    /// # Panics
    /// If `name` is not a valid header name.
    pub fn header(name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Self(Kind::Header(h)),
            Err(_) => panic!("`{name}` is not a valid header name"),
        }
    }

    /// The value of header `name`, given as a [`HeaderName`].
    pub fn header_name(name: HeaderName) -> Self {
        Self(Kind::Header(name))
    }

    /// The [`Subject`] request extension, set by an auth layer that runs first.
    pub fn subject() -> Self {
        Self(Kind::Subject)
    }

    /// A closure over the request head; `None` means no key. (Use a captured
    /// [`ClientIp`] to combine, e.g. an API key or else the client address.)
    pub fn custom<F>(f: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self(Kind::Custom(Arc::new(f)))
    }

    /// The key of a request, if it has one.
    pub fn extract<'a>(&self, parts: &'a Parts) -> Option<Key<'a>> {
        let key = match &self.0 {
            Kind::Ip(c) => Key::Ip(c.key(parts)?),
            Kind::Header(h) => {
                Key::Borrowed(std::str::from_utf8(parts.headers.get(h)?.as_bytes()).ok()?)
            }
            Kind::Subject => Key::Borrowed(&parts.extensions.get::<Subject>()?.0),
            Kind::Custom(f) => Key::Owned(f(parts)?),
        };
        (!key.as_str().is_empty()).then_some(key)
    }
}

/// A request's key text, borrowed from the request where it can be.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    /// Borrowed from the request or the configuration.
    Borrowed(&'a str),
    /// A grouped client address, held inline.
    Ip(IpKey),
    /// Built by a closure.
    Owned(String),
}

impl Key<'_> {
    /// The key text.
    pub fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Ip(k) => k.as_str(),
            Key::Owned(s) => s,
        }
    }
}

/// What happens to a request whose key cannot be extracted (no peer address, header
/// missing or empty, no [`Subject`], the closure returned `None`, or a key longer than
/// the layer's `max_key_len`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissingKey {
    /// Answer `400 Bad Request` with
    /// `{"error":"Bad Request","message":"no rate-limit key: ..."}` (default).
    #[default]
    Deny,
    /// Let the request through without limiting it (no rate-limit headers).
    Allow,
    /// Limit it under this one shared key.
    Fallback(String),
}
