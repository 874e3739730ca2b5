//! `[dashboard]`: the work queues the dashboard of `GET /dashboard` watches.

use super::*;

/// A list of names: a TOML array of strings, or one comma-separated string (as an
/// environment override sets it: `TIDEGATE_DASHBOARD__QUEUES=emails,sms`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct NameList(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NameList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of names like [\"emails\", \"sms\"], or the text \"emails,sms\"",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NameList, E> {
                Ok(NameList(if v.trim().is_empty() {
                    Vec::new()
                } else {
                    v.split(',').map(|s| s.trim().to_string()).collect()
                }))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<NameList, S::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    names.push(n);
                }
                Ok(NameList(names))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[dashboard]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDashboard {
    pub(super) queues: Option<NameList>,
}

/// Most queues one dashboard watches (each costs one Redis call per second per viewer).
pub(crate) const MAX_WATCHED_QUEUES: usize = 32;

/// `[dashboard]`: the queues to watch, checked against the store and the admin token.
pub(super) fn dashboard_queues(
    raw: RawDashboard,
    store: &StoreSettings,
    admin_token: Option<&str>,
) -> Result<Vec<String>, Invalid> {
    let names = raw.queues.unwrap_or_default().0;
    if names.is_empty() {
        return Ok(names);
    }
    if !matches!(store, StoreSettings::Redis { .. }) {
        return Err(bad(
            "dashboard.queues",
            "needs the Redis store (set store.url): work queues live in Redis",
        ));
    }
    if admin_token.is_none() {
        return Err(bad(
            "dashboard.queues",
            "needs admin.token: the dashboard is served only behind the admin token",
        ));
    }
    if names.len() > MAX_WATCHED_QUEUES {
        return Err(bad(
            "dashboard.queues",
            format!(
                "names {} queues; at most {MAX_WATCHED_QUEUES} can be watched",
                names.len()
            ),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        tidegate::queue::check_name(name)
            .map_err(|reason| bad("dashboard.queues", format!("`{name}` {reason}")))?;
        if names[..i].contains(name) {
            return Err(bad("dashboard.queues", format!("names `{name}` twice")));
        }
    }
    Ok(names)
}
