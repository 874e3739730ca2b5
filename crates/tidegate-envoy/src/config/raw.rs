//! The configuration as written: envoyproxy/ratelimit's YAML, field for field, plus
//! tidegate's `policy`. Unknown fields are refused at every level.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use tidegate::PolicySet;

use super::rule::RuleLimit;
use crate::unit::Unit;

/// One file: a domain and its descriptors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    #[serde(default, deserialize_with = "scalar")]
    pub domain: String,
    #[serde(default, deserialize_with = "unique_descriptors")]
    pub descriptors: Vec<RawDescriptor>,
}

/// One descriptor of the tree, checked as it is read (so that errors carry its line).
#[derive(Debug)]
pub(crate) struct RawDescriptor {
    pub fields: DescriptorFields,
    pub limit: Option<RuleLimit>,
}

impl<'de> Deserialize<'de> for RawDescriptor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Checks the fields inside the descriptor's own mapping, so that the YAML reader
        /// marks an error with that descriptor's line, not its list's.
        struct DescriptorVisitor;
        impl<'de> Visitor<'de> for DescriptorVisitor {
            type Value = RawDescriptor;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a descriptor (a mapping with `key`)")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawDescriptor, A::Error> {
                let fields =
                    DescriptorFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let limit = check(&fields).map_err(de::Error::custom)?;
                Ok(RawDescriptor { fields, limit })
            }
        }
        d.deserialize_map(DescriptorVisitor)
    }
}

/// The fields of a descriptor as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DescriptorFields {
    #[serde(default, deserialize_with = "scalar")]
    pub key: String,
    #[serde(default, deserialize_with = "scalar")]
    pub value: String,
    pub rate_limit: Option<RawRateLimit>,
    /// tidegate's extension: any policy or `;`-separated list of policies.
    #[serde(default, deserialize_with = "optional_scalar")]
    pub policy: Option<String>,
    #[serde(default, deserialize_with = "unique_descriptors")]
    pub descriptors: Vec<RawDescriptor>,
    #[serde(default)]
    pub shadow_mode: bool,
    #[serde(default)]
    pub quota_mode: bool,
    #[serde(default)]
    pub detailed_metric: bool,
    #[serde(default)]
    pub value_to_metric: bool,
    #[serde(default)]
    pub share_threshold: bool,
    #[serde(default)]
    pub metadata: Option<serde_yaml_ng::Mapping>,
}

/// A `rate_limit` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    #[serde(default)]
    pub requests_per_unit: u32,
    #[serde(default, deserialize_with = "scalar")]
    pub unit: String,
    #[serde(default)]
    pub unlimited: bool,
    #[serde(default, deserialize_with = "scalar")]
    pub name: String,
    #[serde(default)]
    pub replaces: Vec<RawReplace>,
}

/// One entry of `replaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplace {
    #[serde(default, deserialize_with = "scalar")]
    pub name: String,
}

/// A string field that also takes a number or a boolean written bare (`value: 200`), as
/// envoyproxy/ratelimit's YAML reader does.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

fn optional_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(ScalarVisitor).map(Some)
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

/// The composite key of a descriptor among its siblings: `key` or `key_value`, as
/// envoyproxy/ratelimit names it.
pub(crate) fn composite_key(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key}_{value}")
    }
}

/// Reads a list of descriptors, refusing two with the same composite key.
fn unique_descriptors<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawDescriptor>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<RawDescriptor>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of descriptors")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<RawDescriptor> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            while let Some(d) = seq.next_element::<RawDescriptor>()? {
                let key = composite_key(&d.fields.key, &d.fields.value);
                if !seen.insert(key.clone()) {
                    return Err(de::Error::custom(format!(
                        "`key`: duplicate descriptor composite key '{key}'"
                    )));
                }
                out.push(d);
            }
            Ok(out)
        }
    }
    d.deserialize_any(ListVisitor)
}

/// Checks one descriptor's own fields as envoyproxy/ratelimit does, and builds its limit.
fn check(f: &DescriptorFields) -> Result<Option<RuleLimit>, String> {
    if f.key.is_empty() {
        return Err("`key`: descriptor has empty key".into());
    }
    if f.share_threshold && !composite_key(&f.key, &f.value).contains('*') {
        return Err(format!(
            "`share_threshold`: can only be used with wildcard values (containing '*'), but found key '{}'",
            composite_key(&f.key, &f.value)
        ));
    }
    let limit = match (&f.rate_limit, &f.policy) {
        (Some(_), Some(_)) => {
            return Err("`policy`: a descriptor takes `rate_limit` or `policy`, not both".into());
        }
        (None, None) => None,
        (None, Some(text)) => {
            let set: PolicySet = text.parse().map_err(|e| format!("`policy`: {e}"))?;
            Some(RuleLimit::Policy(set))
        }
        (Some(r), None) => {
            let unit = Unit::parse(&r.unit);
            if r.unlimited {
                if unit.is_some() {
                    return Err(
                        "`rate_limit.unit`: should not specify rate limit unit when unlimited"
                            .into(),
                    );
                }
            } else if unit.is_none() {
                return Err(format!(
                    "`rate_limit.unit`: invalid rate limit unit '{}' (valid: second, minute, hour, day, week, month, year)",
                    r.unit
                ));
            }
            for replace in &r.replaces {
                if replace.name.is_empty() {
                    return Err(
                        "`rate_limit.replaces`: should not have an empty replaces entry".into(),
                    );
                }
                if replace.name == r.name {
                    return Err(
                        "`rate_limit.replaces`: replaces should not contain name of same descriptor"
                            .into(),
                    );
                }
            }
            Some(match unit {
                Some(unit) if !r.unlimited => RuleLimit::Units {
                    requests_per_unit: r.requests_per_unit,
                    unit,
                },
                _ => RuleLimit::Unlimited,
            })
        }
    };
    Ok(limit)
}
