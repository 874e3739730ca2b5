//! The configuration as written: TOML (and environment overrides) deserialized, not
//! yet checked. Unknown keys are errors here already.

use super::*;

/// A size as written: a string with a unit (`"256MB"`, `"64 MiB"`) or a number of
/// bytes; checked by [`store::parse_size`](super::store::parse_size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Size(pub(super) String);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"256MB\" or \"64MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                Ok(Size(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Ok(Size(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or a number, for numeric keys that environment overrides set as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Num(pub(super) u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                u64::try_from(v)
                    .map(Num)
                    .map_err(|_| E::custom(format!("must not be negative, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.trim()
                    .replace('_', "")
                    .parse()
                    .map(Num)
                    .map_err(|_| E::custom(format!("`{v}` is not a whole number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean, or the text `true` / `false` (environment overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flag(pub(super) bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim() {
                    "true" => Ok(Flag(true)),
                    "false" => Ok(Flag(false)),
                    _ => Err(E::custom(format!("`{v}` is not true or false"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One `[policies]` entry: a short-form string (`;` separates several policies), a
/// table, or a list of either; always a [`PolicySet`].
#[derive(Debug, Clone)]
pub(super) struct PolicyEntry(pub(super) PolicySet);

impl<'de> Deserialize<'de> for PolicyEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a policy: a string like \"token_bucket:100/1m,burst=20\", a table \
                     { algorithm = \"fixed_window\", limit = 3, window = \"10s\" }, or a list of them",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyEntry, E> {
                v.parse::<PolicySet>().map(PolicyEntry).map_err(E::custom)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<PolicyEntry, M::Error> {
                Policy::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|p| PolicyEntry(PolicySet::from(p)))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<PolicyEntry, S::Error> {
                let mut policies = Vec::new();
                while let Some(p) = seq.next_element::<Policy>()? {
                    policies.push(p);
                }
                PolicySet::new(policies)
                    .map(PolicyEntry)
                    .map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The file as written (after environment overrides), before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Option<String>,
    pub(super) max_body_bytes: Option<Num>,
    pub(super) max_key_bytes: Option<Num>,
    pub(super) legacy_headers: Option<Flag>,
    pub(super) shutdown_timeout: Option<String>,
    pub(super) shutdown_delay: Option<String>,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) policies: BTreeMap<String, PolicyEntry>,
    pub(super) tracker: Option<RawTracker>,
    pub(super) envoy: Option<RawEnvoy>,
    #[serde(default)]
    pub(super) dashboard: RawDashboard,
    #[serde(default)]
    pub(super) top: RawTop,
    #[serde(default)]
    pub(super) log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTop {
    pub(super) enabled: Option<Flag>,
    pub(super) capacity: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvoy {
    pub(super) config: Option<PathBuf>,
    pub(super) grpc_listen: Option<String>,
    pub(super) all_or_nothing: Option<Flag>,
    pub(super) headers: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) merge_domains: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) url: Option<String>,
    pub(super) on_error: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) tls_ca_file: Option<PathBuf>,
    pub(super) deny_cache: Option<Flag>,
    pub(super) max_keys: Option<Num>,
    pub(super) max_memory: Option<Size>,
    pub(super) max_memory_bytes: Option<Num>,
    pub(super) on_full: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) header_timeout: Option<String>,
    pub(super) body_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) max_connections: Option<Num>,
    pub(super) max_header_bytes: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracker {
    pub(super) spec: Option<String>,
    pub(super) max_details: Option<Num>,
    pub(super) max_detail_bytes: Option<Num>,
    pub(super) max_batch_bytes: Option<Num>,
    pub(super) max_memory_bytes: Option<Num>,
    pub(super) sink: Option<RawSink>,
    pub(super) store: Option<String>,
    pub(super) name: Option<String>,
    pub(super) lease: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum RawSink {
    Jsonl(RawJsonl),
    Webhook(RawWebhook),
    RedisStream(RawRedisStream),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJsonl {
    pub(super) path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: String,
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    pub(super) ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedisStream {
    pub(super) key: String,
    pub(super) maxlen: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
    pub(super) file: Option<PathBuf>,
    pub(super) console: Option<Flag>,
}
