//! The client itself: [`Webhook`].
//!
//! Not reqwest: its rustls features, once enabled for this crate, would apply to every
//! reqwest client built in the same workspace build and make those without a crypto
//! provider panic; hyper and tokio-rustls are in the dependency tree already.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use axum::http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::{WebhookError, check_url};

/// Where and how to `POST`.
pub struct Webhook {
    url: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish()
    }
}

impl Webhook {
    /// A client for `url`, sending `headers` with every request; HTTPS trusts the
    /// system's roots, or only the CA certificates of `ca_file` (PEM) when given.
    pub fn new(
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, WebhookError> {
        let uri = check_url(url)?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let headers = headers
            .iter()
            .map(|(k, v)| {
                Ok((
                    HeaderName::try_from(k.as_str()).map_err(|source| {
                        WebhookError::HeaderName {
                            name: k.clone(),
                            source,
                        }
                    })?,
                    HeaderValue::try_from(v.as_str()).map_err(|source| {
                        WebhookError::HeaderValue {
                            name: k.clone(),
                            source,
                        }
                    })?,
                ))
            })
            .collect::<Result<Vec<_>, WebhookError>>()?;
        let tls = if https {
            let mut roots = RootCertStore::empty();
            match ca_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                        .map_err(|source| WebhookError::CaFile {
                            path: path.to_path_buf(),
                            source,
                        })?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(WebhookError::NoCaCertificate {
                            path: path.to_path_buf(),
                        });
                    }
                }
                None => {
                    let native = rustls_native_certs::load_native_certs();
                    let (added, _) = roots.add_parsable_certificates(native.certs);
                    if added == 0 {
                        tracing::warn!(
                            errors = native.errors.len(),
                            "no system root certificates found: HTTPS webhook deliveries will fail (install ca-certificates, or set ca_file)"
                        );
                    }
                }
            }
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(WebhookError::Tls)?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            url: url.to_string(),
            host,
            port,
            authority,
            path,
            headers,
            timeout,
            tls,
        })
    }

    /// The URL posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `POST`s `body` (JSON) on a fresh connection; any 2xx answer is success.
    pub async fn post(&self, body: String) -> Result<(), WebhookError> {
        match tokio::time::timeout(self.timeout, self.send(body)).await {
            Ok(result) => result,
            Err(_) => Err(WebhookError::Timeout(self.timeout)),
        }
    }

    async fn send(&self, body: String) -> Result<(), WebhookError> {
        let mut req = Request::post(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("tidegate/", env!("CARGO_PKG_VERSION")))
            .header(CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(WebhookError::Request)?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(WebhookError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let status = match &self.tls {
            None => exchange(TokioIo::new(tcp), req).await?,
            Some(tls) => {
                let name =
                    ServerName::try_from(self.host.clone()).map_err(WebhookError::ServerName)?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(WebhookError::TlsHandshake)?;
                exchange(TokioIo::new(stream), req).await?
            }
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status(status))
        }
    }
}

/// One request on a fresh connection; the response status.
async fn exchange<I>(
    io: I,
    req: Request<Full<Bytes>>,
) -> Result<axum::http::StatusCode, WebhookError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(WebhookError::HttpHandshake)?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = sender.send_request(req).await.map_err(WebhookError::Send);
    drop(sender);
    let status = result?.status();
    driver.abort();
    Ok(status)
}
