//! The details of one event: compact JSON text, shared without copying.
//!
//! Details are kept as the JSON text they arrived as (whitespace removed), never as a
//! parsed `serde_json::Value` tree: a tree of a 64 KB array of small numbers takes tens
//! of times its text in memory, and cloning a batch for the processor copied it again.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// One event's details: valid, compact JSON text (any JSON value). Cheap to clone (the
/// text is shared); serialised as the JSON value itself.
#[derive(Clone)]
pub struct Details(Arc<RawValue>);

impl Details {
    /// No details (`null`): not kept in a batch.
    pub fn null() -> Self {
        Self::from_raw(RawValue::NULL.to_owned())
    }

    /// Parses JSON text (whitespace between tokens is removed).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let raw: Box<RawValue> = serde_json::from_str(text)?;
        Ok(Self::from_raw(raw))
    }

    /// Already validated JSON text (e.g. a `Box<RawValue>` deserialised from a request
    /// body); whitespace between tokens is removed.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        if !raw.get().bytes().any(|b| b.is_ascii_whitespace()) {
            return Self(Arc::from(raw));
        }
        let compact = minify(raw.get());
        let raw = RawValue::from_string(compact).expect("minified valid JSON stays valid");
        Self(Arc::from(raw))
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Bytes of the JSON text.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Whether the text is empty (never: the shortest JSON value is one character).
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// Whether these are no details (`null`).
    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// The details parsed into a `Value` tree (allocates; for inspection and tests).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("details hold valid JSON")
    }
}

/// Removes the whitespace between the tokens of valid JSON text.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

impl From<Value> for Details {
    fn from(v: Value) -> Self {
        Self::from(&v)
    }
}

impl From<&Value> for Details {
    fn from(v: &Value) -> Self {
        Self(Arc::from(
            serde_json::value::to_raw_value(v).expect("a JSON value always serialises"),
        ))
    }
}

impl From<Box<RawValue>> for Details {
    fn from(raw: Box<RawValue>) -> Self {
        Self::from_raw(raw)
    }
}

impl Default for Details {
    fn default() -> Self {
        Self::null()
    }
}

impl fmt::Debug for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Details {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Details {}

/// Compares the JSON values (so `{"a":1}` equals `json!({"a": 1})`).
impl PartialEq<Value> for Details {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_are_kept_as_compact_text_with_strings_untouched() {
        let d = Details::from_json("{ \"a\" :\n [1, 2],\t\"b\": \"x y\\\" z\" }").unwrap();
        assert_eq!(d.as_str(), r#"{"a":[1,2],"b":"x y\" z"}"#);
        assert_eq!(d, json!({"a": [1, 2], "b": "x y\" z"}));
        assert_eq!(serde_json::to_string(&d).unwrap(), d.as_str());
    }

    #[test]
    fn null_details_are_null() {
        assert!(Details::null().is_null());
        assert!(Details::from(Value::Null).is_null());
        assert!(!Details::from(json!(0)).is_null());
    }
}
