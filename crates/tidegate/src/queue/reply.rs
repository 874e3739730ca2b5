//! Decoding the queue script's replies.

use redis::Value;

use super::Attempt;

/// An integer reply (Lua numbers arrive as integers, numeric strings are accepted).
pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// A string reply.
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(super) fn json_of(v: &Value) -> Option<serde_json::Value> {
    serde_json::from_str(&text(v)?).ok()
}

pub(super) fn history_of(v: &Value) -> Vec<Attempt> {
    text(v)
        .and_then(|h| serde_json::from_str(&h).ok())
        .unwrap_or_default()
}
