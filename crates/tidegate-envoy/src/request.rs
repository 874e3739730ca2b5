//! A request as the limiter reads it: validated, with each descriptor's hits and key.

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

use crate::unit::Unit;

/// A request the service refuses to decide: answered `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// One descriptor of a request, validated.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor<'a> {
    pub entries: Vec<(&'a str, &'a str)>,
    /// Hits to charge: the descriptor's `hits_addend` (0 = only look), else the
    /// request's (0 means 1).
    pub hits: u64,
    /// The descriptor's `limit` override.
    pub limit: Option<(u32, Unit)>,
}

/// Checks a request as envoyproxy/ratelimit does and reads its descriptors.
pub(crate) fn read(request: &RateLimitRequest) -> Result<Vec<Descriptor<'_>>, InvalidRequest> {
    if request.domain.is_empty() {
        return Err(InvalidRequest("rate limit domain must not be empty".into()));
    }
    if request.descriptors.is_empty() {
        return Err(InvalidRequest(
            "rate limit descriptor list must not be empty".into(),
        ));
    }
    let default_hits = u64::from(request.hits_addend.max(1));
    let mut out = Vec::with_capacity(request.descriptors.len());
    for (i, d) in request.descriptors.iter().enumerate() {
        if d.entries.is_empty() {
            return Err(InvalidRequest(format!(
                "descriptor {i} must have at least one entry"
            )));
        }
        if let Some(j) = d.entries.iter().position(|e| e.key.is_empty()) {
            return Err(InvalidRequest(format!(
                "descriptor {i} entry {j} has an empty key"
            )));
        }
        let limit = match &d.limit {
            None => None,
            Some(o) => Some((
                o.requests_per_unit,
                Unit::from_proto(o.unit).ok_or_else(|| {
                    InvalidRequest(format!(
                        "descriptor {i} limit has an unknown unit {}",
                        o.unit
                    ))
                })?,
            )),
        };
        out.push(Descriptor {
            entries: d
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect(),
            hits: d.hits_addend.as_ref().map_or(default_hits, |h| h.value),
            limit,
        });
    }
    Ok(out)
}

/// The counter key of a descriptor: the domain and every entry, `|`-separated, with
/// `\`, `|` and `=` escaped; one counter per distinct request descriptor, as
/// envoyproxy/ratelimit keeps.
pub(crate) fn counter_key(domain: &str, entries: &[(&str, &str)]) -> String {
    let mut key = String::with_capacity(domain.len() + 16 * entries.len());
    escape(&mut key, domain);
    for (k, v) in entries {
        key.push('|');
        escape(&mut key, k);
        key.push('=');
        escape(&mut key, v);
    }
    key
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | '|' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keys_are_unambiguous() {
        assert_eq!(counter_key("d", &[("k", "v")]), "d|k=v");
        assert_ne!(
            counter_key("d", &[("a", "b|c=d")]),
            counter_key("d", &[("a", "b"), ("c", "d")])
        );
    }
}
