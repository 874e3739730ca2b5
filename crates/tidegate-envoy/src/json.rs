//! The proto3 JSON form of `RateLimitRequest` and `RateLimitResponse`, as
//! envoyproxy/ratelimit's `POST /json` reads and writes them: field names in
//! lowerCamelCase (snake_case accepted too), enums by name, defaults left out,
//! durations as `"45s"`, 64-bit integers accepted as numbers or strings.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// A request body of `POST /json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonRequest {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    descriptors: Vec<JsonDescriptor>,
    #[serde(default, alias = "hits_addend", deserialize_with = "uint")]
    hits_addend: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonDescriptor {
    #[serde(default)]
    entries: Vec<JsonEntry>,
    #[serde(default)]
    limit: Option<JsonOverride>,
    #[serde(default, alias = "hits_addend", deserialize_with = "optional_uint")]
    hits_addend: Option<u64>,
    #[serde(default, alias = "is_negative_hits")]
    is_negative_hits: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonOverride {
    #[serde(default, alias = "requests_per_unit", deserialize_with = "uint")]
    requests_per_unit: u64,
    #[serde(default)]
    unit: Option<JsonEnum>,
}

/// An enum written by name or number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum JsonEnum {
    Name(String),
    Number(i32),
}

/// A number or a decimal string, as proto3 JSON writes 64-bit integers.
fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(u64),
        Text(String),
    }
    match N::deserialize(d)? {
        N::Number(n) => Ok(n),
        N::Text(t) => t
            .parse()
            .map_err(|_| de::Error::custom(format!("`{t}` is not an unsigned integer"))),
    }
}

fn optional_uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    uint(d).map(Some)
}

/// Parses a `POST /json` body into the protocol's request.
pub fn parse_request(body: &[u8]) -> Result<RateLimitRequest, serde_json::Error> {
    let r: JsonRequest = serde_json::from_slice(body)?;
    let too_big = |field: &str| {
        <serde_json::Error as de::Error>::custom(format!("`{field}` is above 2^32-1"))
    };
    let mut descriptors = Vec::with_capacity(r.descriptors.len());
    for d in r.descriptors {
        let limit = match d.limit {
            None => None,
            Some(o) => Some(RateLimitOverride {
                requests_per_unit: u32::try_from(o.requests_per_unit)
                    .map_err(|_| too_big("requestsPerUnit"))?,
                unit: match o.unit {
                    None => 0,
                    Some(JsonEnum::Number(n)) => n,
                    Some(JsonEnum::Name(name)) => {
                        ProtoUnit::from_str_name(&name).ok_or_else(|| {
                            <serde_json::Error as de::Error>::custom(format!(
                                "unknown unit `{name}`"
                            ))
                        })? as i32
                    }
                },
            }),
        };
        descriptors.push(RateLimitDescriptor {
            entries: d
                .entries
                .into_iter()
                .map(|e| Entry {
                    key: e.key,
                    value: e.value,
                })
                .collect(),
            limit,
            hits_addend: d.hits_addend.map(|value| UInt64Value { value }),
            is_negative_hits: d.is_negative_hits,
        });
    }
    Ok(RateLimitRequest {
        domain: r.domain,
        descriptors,
        hits_addend: u32::try_from(r.hits_addend).map_err(|_| too_big("hitsAddend"))?,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    overall_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    statuses: Vec<JsonStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    response_headers_to_add: Vec<JsonHeader>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_limit: Option<JsonLimit>,
    #[serde(skip_serializing_if = "is_zero")]
    limit_remaining: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_until_reset: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLimit {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "is_zero")]
    requests_per_unit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonHeader {
    key: String,
    value: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn code_name(code: i32) -> Option<&'static str> {
    Code::try_from(code)
        .ok()
        .filter(|c| *c != Code::Unknown)
        .map(|c| c.as_str_name())
}

/// A protobuf `Duration` as proto3 JSON writes it: seconds with 0, 3, 6 or 9 decimals.
fn duration_text(seconds: i64, nanos: i32) -> String {
    if nanos == 0 {
        format!("{seconds}s")
    } else if nanos % 1_000_000 == 0 {
        format!("{seconds}.{:03}s", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{seconds}.{:06}s", nanos / 1_000)
    } else {
        format!("{seconds}.{nanos:09}s")
    }
}

fn status(s: &DescriptorStatus) -> JsonStatus {
    JsonStatus {
        code: code_name(s.code),
        current_limit: s.current_limit.as_ref().map(|l| JsonLimit {
            name: l.name.clone(),
            requests_per_unit: l.requests_per_unit,
            unit: ProtoUnit::try_from(l.unit)
                .ok()
                .filter(|u| *u != ProtoUnit::Unknown)
                .map(|u| u.as_str_name()),
        }),
        limit_remaining: s.limit_remaining,
        duration_until_reset: s
            .duration_until_reset
            .as_ref()
            .map(|d| duration_text(d.seconds, d.nanos)),
    }
}

/// Writes the protocol's response as `POST /json` answers it.
pub fn write_response(r: &RateLimitResponse) -> String {
    let body = JsonResponse {
        overall_code: code_name(r.overall_code),
        statuses: r.statuses.iter().map(status).collect(),
        response_headers_to_add: r
            .response_headers_to_add
            .iter()
            .map(|h| JsonHeader {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
    };
    serde_json::to_string(&body).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_camel_or_snake_case_and_64_bit_strings() {
        let r = parse_request(
            br#"{"domain":"d","hitsAddend":2,"descriptors":[{"entries":[{"key":"k","value":"v"}],
                "limit":{"requests_per_unit":3,"unit":"MINUTE"},"hitsAddend":"7"}]}"#,
        )
        .unwrap();
        assert_eq!(r.domain, "d");
        assert_eq!(r.hits_addend, 2);
        let d = &r.descriptors[0];
        assert_eq!(d.entries[0].key, "k");
        assert_eq!(d.limit.as_ref().unwrap().unit, ProtoUnit::Minute as i32);
        assert_eq!(d.hits_addend.as_ref().unwrap().value, 7);
        assert!(parse_request(br#"{"domain":"d","bogus":1}"#).is_err());
        assert!(parse_request(b"not json").is_err());
    }

    #[test]
    fn durations_are_written_with_0_3_6_or_9_decimals() {
        assert_eq!(duration_text(45, 0), "45s");
        assert_eq!(duration_text(0, 1_000), "0.000001s");
        assert_eq!(duration_text(1, 500_000_000), "1.500s");
        assert_eq!(duration_text(0, 7), "0.000000007s");
    }
}
