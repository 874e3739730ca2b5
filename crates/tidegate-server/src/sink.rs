//! Where the tracker's deferred batches go: a JSON-lines file (or standard output), a
//! webhook, or a Redis stream. A failed delivery is an `Err`, which the tracker retries
//! with backoff (`max_retries`, `retry_delay` of the tracker spec) and defers again.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate::tracker::DeliveredRecord;

use crate::json::record_text;

use crate::ServeError;
use crate::config::SinkSettings;
use crate::error_text::chain;
use crate::webhook::Webhook;

enum Target {
    Jsonl(Mutex<Box<dyn Write + Send>>),
    Webhook(Webhook),
    RedisStream {
        /// Opened on first use (Redis may be down at start), then reconnecting by itself:
        /// the same connection layer as the store's (node, cluster or Sentinel).
        conn: tokio::sync::Mutex<Option<RedisStore>>,
        urls: Vec<String>,
        options: RedisOptions,
        key: String,
        maxlen: Option<u64>,
    },
}

/// A configured sink; cheap to clone.
#[derive(Clone)]
pub(crate) struct Sink {
    target: Arc<Target>,
    label: &'static str,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("type", &self.label).finish()
    }
}

impl Sink {
    /// Opens the sink: the file, the HTTP client, or the Redis connection (`redis` is
    /// the store's URLs and options, required by `redis_stream`).
    pub(crate) async fn open(
        settings: &SinkSettings,
        redis: Option<(&[String], &RedisOptions)>,
    ) -> Result<Self, ServeError> {
        let (target, label) = match settings {
            SinkSettings::Jsonl { path } => {
                let out: Box<dyn Write + Send> = match path {
                    None => Box::new(std::io::stdout()),
                    Some(p) => Box::new(
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(p)
                            .map_err(|source| ServeError::SinkFile {
                                path: p.clone(),
                                source,
                            })?,
                    ),
                };
                (Target::Jsonl(Mutex::new(out)), "jsonl")
            }
            SinkSettings::Webhook {
                url,
                timeout,
                headers,
                ca_file,
            } => (
                Target::Webhook(
                    Webhook::new(url, headers, *timeout, ca_file.as_deref())
                        .map_err(ServeError::Webhook)?,
                ),
                "webhook",
            ),
            SinkSettings::RedisStream { key, maxlen } => {
                // The configuration allows a `redis_stream` sink only with a Redis store.
                let (urls, options) = redis
                    .map(|(urls, options)| (urls.to_vec(), options.clone()))
                    .unwrap_or_default();
                (
                    Target::RedisStream {
                        conn: tokio::sync::Mutex::new(None),
                        urls,
                        options,
                        key: key.clone(),
                        maxlen: *maxlen,
                    },
                    "redis_stream",
                )
            }
        };
        Ok(Self {
            target: Arc::new(target),
            label,
        })
    }

    /// The sink's type (`jsonl`, `webhook`, `redis_stream`).
    pub(crate) fn label(&self) -> &'static str {
        self.label
    }

    /// Delivers one batch; `Err` makes the tracker retry it.
    pub(crate) async fn deliver(&self, records: Vec<DeliveredRecord>) -> Result<(), String> {
        let result = self.send(&records).await;
        if let Err(e) = &result {
            metrics::counter!("tidegate_sink_errors_total", "sink" => self.label).increment(1);
            tracing::warn!(sink = self.label, records = records.len(), error = %e, "tracker sink delivery failed; the tracker retries it");
        }
        result
    }

    async fn send(&self, records: &[DeliveredRecord]) -> Result<(), String> {
        match &*self.target {
            Target::Jsonl(out) => {
                let mut text = String::new();
                for r in records {
                    text.push_str(&record_text(r));
                    text.push('\n');
                }
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing the JSON-lines sink: {e}"))
            }
            Target::Webhook(hook) => {
                let mut body = String::from("{\"records\":[");
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(&record_text(r));
                }
                body.push_str("]}");
                hook.post(body)
                    .await
                    .map_err(|e| format!("webhook {}: {}", hook.url(), chain(&e)))
            }
            Target::RedisStream {
                conn,
                urls,
                options,
                key,
                maxlen,
            } => {
                let store = {
                    let mut slot = conn.lock().await;
                    match &*slot {
                        Some(c) => c.clone(),
                        None => {
                            let c = RedisStore::open(urls, options.clone())
                                .await
                                .map_err(|e| format!("redis stream {key}: {}", chain(&e)))?;
                            *slot = Some(c.clone());
                            c
                        }
                    }
                };
                let mut pipe = redis::pipe();
                for r in records {
                    let cmd = pipe.cmd("XADD").arg(key);
                    if let Some(n) = maxlen {
                        cmd.arg("MAXLEN").arg("~").arg(*n);
                    }
                    cmd.arg("*").arg("record").arg(record_text(r)).ignore();
                }
                // A batch may be large: wait longer than a decision would.
                let timeout = Duration::from_secs(5).max(options.timeout);
                store
                    .query_pipeline(&pipe, timeout)
                    .await
                    .map_err(|e| format!("redis stream {key}: {}", chain(&e)))
            }
        }
    }
}
