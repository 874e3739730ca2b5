//! Why a webhook could not be set up or a delivery failed: [`WebhookError`].

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use thiserror::Error;

/// A webhook that cannot be set up, or a delivery that failed; the cause, when there is
/// one, is its [`source`](std::error::Error::source).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL does not parse.
    #[error("not a URL")]
    NotAUrl(#[source] axum::http::uri::InvalidUri),
    /// The URL is neither `http://` nor `https://`.
    #[error("must start with http:// or https://")]
    Scheme,
    /// The URL has no host.
    #[error("has no host")]
    NoHost,
    /// The URL carries a user name or password.
    #[error("must not contain credentials: send them in `headers`")]
    Credentials,
    /// A configured header's name is not valid HTTP.
    #[error("`{name}` is not a header name")]
    HeaderName {
        /// The name as given.
        name: String,
        /// Why.
        #[source]
        source: axum::http::header::InvalidHeaderName,
    },
    /// A configured header's value is not valid HTTP.
    #[error("the value of `{name}` is not a header value")]
    HeaderValue {
        /// The header's name.
        name: String,
        /// Why.
        #[source]
        source: axum::http::header::InvalidHeaderValue,
    },
    /// The CA file could not be read or parsed.
    #[error("reading the CA file {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    /// The CA file holds no certificate.
    #[error("no CA certificate in {}", path.display())]
    NoCaCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The TLS client could not be configured.
    #[error("TLS settings")]
    Tls(#[source] tokio_rustls::rustls::Error),
    /// The request could not be built.
    #[error("building the request")]
    Request(#[source] axum::http::Error),
    /// The TCP connection failed.
    #[error("connecting")]
    Connect(#[source] io::Error),
    /// The host is not a valid TLS server name.
    #[error("TLS server name")]
    ServerName(#[source] tokio_rustls::rustls::pki_types::InvalidDnsNameError),
    /// The TLS handshake failed.
    #[error("TLS handshake")]
    TlsHandshake(#[source] io::Error),
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake")]
    HttpHandshake(#[source] hyper::Error),
    /// Sending the request or reading the answer failed.
    #[error("sending")]
    Send(#[source] hyper::Error),
    /// The endpoint answered, but not with 2xx.
    #[error("answered {0}")]
    Status(StatusCode),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}
