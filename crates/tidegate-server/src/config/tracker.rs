//! `[tracker]`: the event tracker behind `POST /v1/events`.

use super::*;
use crate::error_text::chain;

/// `[tracker]`: its spec, byte bounds, sink and store (a Redis sink or store needs the
/// server's Redis `store`).
pub(super) fn tracker_settings(
    raw: Option<RawTracker>,
    store: &StoreSettings,
) -> Result<Option<TrackerSettings>, Invalid> {
    Ok(match raw {
        None => None,
        Some(t) => {
            let spec_text = t.spec.unwrap_or_else(|| "simple".into());
            let spec: TrackerSpec = spec_text
                .parse::<TrackerSpec>()
                .map_err(|e| bad("tracker.spec", e.to_string()))?;
            let bytes = TrackerBytes {
                max_detail_bytes: t.max_detail_bytes.map(|n| n.0 as usize),
                max_batch_bytes: t.max_batch_bytes.map(|n| n.0 as usize),
                max_memory_bytes: t.max_memory_bytes.map(|n| n.0 as usize),
            };
            // Build once, outside any runtime, to check every value now.
            bytes
                .apply(spec.apply(tidegate::tracker::EventTracker::builder()))
                .manual_ticks()
                .processor(|_| async { Ok::<_, String>(()) })
                .build()
                .map_err(|e: tidegate::tracker::TrackError| match e {
                    tidegate::tracker::TrackError::Invalid { field, reason }
                        if field == "max_memory_bytes" =>
                    {
                        bad("tracker.max_memory_bytes", reason)
                    }
                    e => bad("tracker.spec", e.to_string()),
                })?;
            let max_details = t.max_details.map(|n| n.0 as usize);
            let sink = match t.sink {
                None => {
                    return Err(bad(
                        "tracker.sink",
                        "is required: deferred batches must go somewhere, e.g. \
                         sink = { type = \"jsonl\", path = \"events.jsonl\" }",
                    ));
                }
                Some(RawSink::Jsonl(RawJsonl { path })) => {
                    let path = path.trim();
                    if path.is_empty() {
                        return Err(bad(
                            "tracker.sink.path",
                            "must be a file path, or `-` for standard output",
                        ));
                    }
                    SinkSettings::Jsonl {
                        path: (path != "-").then(|| PathBuf::from(path)),
                    }
                }
                Some(RawSink::Webhook(RawWebhook {
                    url,
                    timeout,
                    headers,
                    ca_file,
                })) => {
                    let url = url.trim().to_string();
                    crate::webhook::check_url(&url)
                        .map_err(|e| bad("tracker.sink.url", format!("`{url}` {}", chain(&e))))?;
                    let timeout = match timeout {
                        Some(t) => duration("tracker.sink.timeout", &t)?,
                        None => Duration::from_secs(5),
                    };
                    for (k, v) in &headers {
                        if axum::http::HeaderName::try_from(k.as_str()).is_err()
                            || axum::http::HeaderValue::try_from(v.as_str()).is_err()
                        {
                            return Err(bad(
                                &format!("tracker.sink.headers.{k}"),
                                "is not a valid HTTP header name and value",
                            ));
                        }
                    }
                    if let Some(ca) = &ca_file
                        && !ca.is_file()
                    {
                        return Err(bad(
                            "tracker.sink.ca_file",
                            format!("`{}` is not a readable file", ca.display()),
                        ));
                    }
                    SinkSettings::Webhook {
                        url,
                        timeout,
                        headers: headers.into_iter().collect(),
                        ca_file,
                    }
                }
                Some(RawSink::RedisStream(RawRedisStream { key, maxlen })) => {
                    if !matches!(*store, StoreSettings::Redis { .. }) {
                        return Err(bad(
                            "tracker.sink.type",
                            "`redis_stream` needs a Redis store: set `store.url`",
                        ));
                    }
                    if key.trim().is_empty() {
                        return Err(bad("tracker.sink.key", "must not be empty"));
                    }
                    SinkSettings::RedisStream {
                        key,
                        maxlen: maxlen.map(|n| n.0),
                    }
                }
            };
            let shared = match t.store.as_deref().map(str::trim) {
                None | Some("memory") => None,
                Some("redis") => {
                    if !matches!(*store, StoreSettings::Redis { .. }) {
                        return Err(bad(
                            "tracker.store",
                            "`redis` shares the tracker through the server's Redis store: set `store.url`",
                        ));
                    }
                    let name = t.name.unwrap_or_else(|| "default".into());
                    if name.trim().is_empty() {
                        return Err(bad("tracker.name", "must not be empty"));
                    }
                    Some(name)
                }
                Some(other) => {
                    return Err(bad(
                        "tracker.store",
                        format!("`{other}` is not a tracker store; use `memory` or `redis`"),
                    ));
                }
            };
            let lease = match t.lease {
                Some(text) => {
                    let lease = duration("tracker.lease", &text)?;
                    let interval = spec.processing_interval();
                    if lease <= interval {
                        return Err(bad(
                            "tracker.lease",
                            format!(
                                "{lease:?} must be longer than the processing interval ({interval:?}) and the sink's longest delivery"
                            ),
                        ));
                    }
                    Some(lease)
                }
                None => None,
            };
            Some(TrackerSettings {
                spec,
                spec_text,
                max_details,
                bytes,
                sink,
                shared,
                lease,
            })
        }
    })
}
