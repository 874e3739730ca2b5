//! The summary `tidegate serve --check` prints.

use super::*;

impl Config {
    /// What the configuration sets up, for a person to read: where it came from, the
    /// listening address, the store (with the key capacity of each memory policy), one
    /// line per policy, the tracker and its sink, the Envoy front end, whether the admin
    /// routes (and the dashboard) are on, and the queues the dashboard watches.
    pub fn summary(&self) -> String {
        let s = self;
        let mut out = format!(
            "configuration {} is valid\nlisten: {}\n",
            s.origin, s.listen
        );
        match &s.store {
            StoreSettings::Memory {
                max_keys,
                max_memory_bytes,
                on_full,
            } => {
                let share = max_memory_bytes / s.policies.len().max(1);
                let keys: Vec<String> = s
                    .policies
                    .iter()
                    .map(|(name, set)| {
                        let n = max_keys.unwrap_or_else(|| {
                            crate::limits::keys_in_budget(set, share, s.max_key_bytes)
                        });
                        format!("{name} {n}")
                    })
                    .collect();
                let keys = if keys.is_empty() {
                    "no policies".to_string()
                } else {
                    keys.join(", ")
                };
                out.push_str(&format!(
                "store: memory (max_memory_bytes {max_memory_bytes}, on_full {on_full:?}, max_keys per policy: {keys})\n"
            ));
            }
            StoreSettings::Redis {
                urls,
                on_error,
                options,
                ..
            } => out.push_str(&format!(
                "store: redis {} (on_error {on_error:?}, timeout {:?})\n",
                urls.join(","),
                options.timeout
            )),
        }
        for (name, set) in &s.policies {
            out.push_str(&format!("policy {name}: {set}\n"));
        }
        if let Some(t) = &s.tracker {
            let sink = match &t.sink {
                SinkSettings::Jsonl { path: None } => "jsonl to standard output".to_string(),
                SinkSettings::Jsonl { path: Some(p) } => format!("jsonl to {}", p.display()),
                SinkSettings::Webhook { url, .. } => format!("webhook {url}"),
                SinkSettings::RedisStream { key, .. } => format!("redis stream {key}"),
            };
            out.push_str(&format!("tracker: {} -> {sink}\n", t.spec_text));
        }
        if let Some(e) = &s.envoy {
            out.push_str(&format!(
                "envoy: rate limit service of {} on grpc://{} and /json, /healthcheck on listen (headers {}, all_or_nothing {}, merge_domains {})\n",
                e.config.display(),
                e.grpc_listen,
                e.headers_text,
                e.all_or_nothing,
                e.merge_domains
            ));
        }
        out.push_str(&match s.top {
            Some(capacity) => {
                format!("top: on (capacity {capacity} keys per policy and summary)\n")
            }
            None => "top: off\n".to_string(),
        });
        out.push_str(&format!(
            "admin: {}",
            if s.admin_token.is_some() {
                "on (dashboard at /dashboard)"
            } else {
                "off"
            }
        ));
        if !s.dashboard_queues.is_empty() {
            out.push_str(&format!(
                "\ndashboard queues: {}",
                s.dashboard_queues.join(", ")
            ));
        }
        out
    }
}
