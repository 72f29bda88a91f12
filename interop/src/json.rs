//! Conversion between forklog [`Value`]s and JSON, the tool's exchange format.
//!
//! Output rules (the CLI contract): integers stay JSON integers, finite floats print in their shortest
//! round-trip form (`0.1`, `1.0`, `1e20`), and non-finite floats, which JSON cannot express as numbers,
//! print as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`. Bytes print as an array of integers.
//!
//! Input rules: a number that fits `i64` becomes [`Value::Int`], any other number [`Value::Float`];
//! strings, booleans, `null`, arrays and objects map to `Str`, `Bool`, `Null`, `List` and `Map`.

use std::collections::BTreeMap;

use forklog::{LogRow, Value};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// The JSON string used for a non-finite float (`NaN`, `Infinity`, `-Infinity`), or `None` if finite.
pub fn non_finite_name(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("NaN")
    } else if x == f64::INFINITY {
        Some("Infinity")
    } else if x == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// Serializes a float by the CLI's rules: shortest round-trip form, or a string when not finite.
fn serialize_float<S: Serializer>(x: f64, s: S) -> Result<S::Ok, S::Error> {
    match non_finite_name(x) {
        Some(name) => s.serialize_str(name),
        None => s.serialize_f64(x),
    }
}

/// A borrowed [`Value`] that serializes as CLI JSON (see the module docs).
pub struct Json<'a>(pub &'a Value);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) => serialize_float(*x, s),
            Value::Str(text) => s.serialize_str(text),
            Value::Bytes(bytes) => {
                let mut seq = s.serialize_seq(Some(bytes.len()))?;
                for b in bytes {
                    seq.serialize_element(b)?;
                }
                seq.end()
            }
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Json(item))?;
                }
                seq.end()
            }
            Value::Map(map) => JsonMap(map).serialize(s),
        }
    }
}

/// A borrowed string-keyed map of [`Value`]s that serializes as a JSON object (keys in sorted order).
pub struct JsonMap<'a>(pub &'a BTreeMap<String, Value>);

impl Serialize for JsonMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &Json(v))?;
        }
        map.end()
    }
}

/// One history row as a JSONL object: `{"_step": N, "_timestamp": T, ...metrics}`, plus
/// `"_run": "ID@vK"` at the end when `origin` is set.
pub struct JsonRow<'a> {
    /// The row to print.
    pub row: &'a LogRow,
    /// Whether to add the `_run` key naming the version the row is stored in.
    pub origin: bool,
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let extra = 2 + usize::from(self.origin);
        let mut map = s.serialize_map(Some(self.row.metrics.len() + extra))?;
        map.serialize_entry("_step", &self.row.step)?;
        map.serialize_entry("_timestamp", &Time(self.row.time))?;
        for (k, v) in &self.row.metrics {
            map.serialize_entry(&**k, &Json(v))?;
        }
        if self.origin {
            map.serialize_entry("_run", &self.row.origin.to_string())?;
        }
        map.end()
    }
}

/// A timestamp in unix seconds, serialized as a float by the CLI's float rules.
pub struct Time(pub f64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_float(self.0, s)
    }
}

/// Formats a float as CLI text (CSV cells, reports): shortest round-trip form, or `NaN`/`Infinity`.
pub fn float_text(x: f64) -> String {
    match non_finite_name(x) {
        Some(name) => name.to_string(),
        // serde_json prints finite floats through ryu, always with a `.` or an exponent.
        None => serde_json::to_string(&x).unwrap_or_else(|_| x.to_string()),
    }
}

/// Serializes `value` as one line of compact JSON.
pub fn to_line<T: Serialize>(value: &T) -> String {
    // Serializing our own types into a String cannot fail: they have string keys and no I/O.
    serde_json::to_string(value).unwrap_or_else(|e| format!("\"<unprintable: {e}>\""))
}

/// Converts parsed JSON into a forklog [`Value`] (see the module docs for the rules).
pub fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Map(map.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_rules() {
        let cases = [
            (Value::Int(3), "3"),
            (Value::Float(3.0), "3.0"),
            (Value::Float(0.1), "0.1"),
            (Value::Float(f64::NAN), "\"NaN\""),
            (Value::Float(f64::NEG_INFINITY), "\"-Infinity\""),
            (Value::Bytes(vec![1, 255]), "[1,255]"),
            (Value::List(vec![Value::Null, Value::Bool(true)]), "[null,true]"),
        ];
        for (v, want) in cases {
            assert_eq!(to_line(&Json(&v)), want);
        }
    }

    #[test]
    fn input_rules() {
        let parsed: serde_json::Value =
            serde_json::from_str(r#"[1, 1.0, 18446744073709551615, "s", {"b": 1, "a": [true]}]"#).expect("valid JSON");
        let Value::List(items) = from_json(parsed) else { panic!("not a list") };
        assert_eq!(items[0], Value::Int(1));
        assert_eq!(items[1], Value::Float(1.0));
        assert_eq!(items[2], Value::Float(18446744073709551615.0));
        assert_eq!(items[3], Value::Str("s".into()));
        assert_eq!(to_line(&Json(&items[4])), r#"{"a":[true],"b":1}"#);
    }
}
