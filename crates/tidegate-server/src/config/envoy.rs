//! `[envoy]`: the Envoy rate limit service front end (envoyproxy/ratelimit's YAML, gRPC
//! `ShouldRateLimit`, `POST /json`, `GET /healthcheck`).

use super::*;

/// envoyproxy/ratelimit's default gRPC address.
pub(crate) const DEFAULT_GRPC_LISTEN: &str = "0.0.0.0:8081";

/// The Envoy front end's settings (`[envoy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvoySettings {
    /// The YAML file or directory of YAML files.
    pub(crate) config: PathBuf,
    /// The gRPC listening address.
    pub(crate) grpc_listen: SocketAddr,
    /// Charge no descriptor when any is over its limit.
    pub(crate) all_or_nothing: bool,
    /// Which response headers Envoy is asked to add.
    pub(crate) headers: tidegate_envoy::HeaderOptions,
    /// The text of `headers`, for the summary.
    pub(crate) headers_text: String,
    /// Merge files of one domain.
    pub(crate) merge_domains: bool,
    /// Redis key prefix (a Redis store only); `None`: the store's namespace.
    pub(crate) namespace: Option<String>,
}

impl EnvoySettings {
    /// How the YAML files are combined.
    pub(crate) fn load_options(&self) -> tidegate_envoy::LoadOptions {
        tidegate_envoy::LoadOptions::default().merge_domains(self.merge_domains)
    }
}

/// `[envoy]`, if present: its YAML is loaded here already, so that an invalid one is a
/// configuration error naming `envoy.config`.
pub(super) fn envoy_settings(
    raw: Option<RawEnvoy>,
    store: &StoreSettings,
) -> Result<Option<EnvoySettings>, Invalid> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let config = match raw.config {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => {
            return Err(bad(
                "envoy.config",
                "is required: the envoyproxy/ratelimit YAML file, or a directory of them",
            ));
        }
    };
    let grpc_text = raw
        .grpc_listen
        .unwrap_or_else(|| DEFAULT_GRPC_LISTEN.to_string());
    let grpc_listen = parse_listen(&grpc_text).map_err(|m| bad("envoy.grpc_listen", m))?;
    let headers_text = raw.headers.unwrap_or_else(|| "off".into());
    let headers = tidegate_envoy::HeaderOptions::default();
    let headers = match headers_text.trim() {
        "off" => headers,
        "ietf" => headers.ietf(true),
        "x-ratelimit" => headers.x_ratelimit(true),
        "both" => headers.ietf(true).x_ratelimit(true),
        other => {
            return Err(bad(
                "envoy.headers",
                format!("`{other}` is not one of off, ietf, x-ratelimit, both"),
            ));
        }
    };
    let namespace = match raw.namespace {
        None => None,
        Some(_) if matches!(store, StoreSettings::Memory { .. }) => {
            return Err(bad(
                "envoy.namespace",
                "applies only to a Redis store: set `store.url` too (or remove it)",
            ));
        }
        Some(ns) if ns.is_empty() || ns.contains(['{', '}', ':']) => {
            return Err(bad(
                "envoy.namespace",
                format!("`{ns}` must be non-empty and free of `{{`, `}}` and `:`"),
            ));
        }
        Some(ns) => Some(ns),
    };
    let settings = EnvoySettings {
        config,
        grpc_listen,
        all_or_nothing: raw.all_or_nothing.is_some_and(|f| f.0),
        headers,
        headers_text: headers_text.trim().to_string(),
        merge_domains: raw.merge_domains.is_some_and(|f| f.0),
        namespace,
    };
    tidegate_envoy::Config::load_with(&settings.config, settings.load_options())
        .map_err(|e| bad("envoy.config", e.to_string()))?;
    Ok(Some(settings))
}
