//! Conversion between forklog [`Value`]s and JSON, the tool's exchange format.
//!
//! Output rules (the CLI contract, [`write_value`], [`write_row`]): integers stay JSON integers, finite floats
//! print in their shortest round-trip form (`0.1`, `1.0`, `1e20`, `-0.0`), and non-finite floats, which JSON
//! cannot express as numbers, print bare (`NaN`, `Infinity`, `-Infinity`, as Python's `json` module writes
//! them) or, for strict consumers, as `null` or strings ([`NonFinite`]). Bytes print as an array of integers.
//! The serde-based [`Json`], [`JsonMap`] and [`JsonRow`] (for serde users) print non-finite floats as strings.
//!
//! Input rules ([`parse`], [`parse_object`]): a number without fraction or exponent that fits `i64` becomes
//! [`Value::Int`], any other number [`Value::Float`] (correctly rounded; `-0` is `-0.0`); bare `NaN`,
//! `Infinity` and `-Infinity` are floats, while the strings `"NaN"` etc. stay strings; strings, booleans,
//! `null`, arrays and objects map to `Str`, `Bool`, `Null`, `List` and `Map`. Only the canonical NaN survives
//! JSON text (a NaN's payload bits cannot be spelled); the store keeps payloads.

use forklog::{Key, LogRow, Metrics, Value};
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
pub struct JsonMap<'a>(pub &'a Metrics);

impl Serialize for JsonMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(&**k, &Json(v))?;
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
        serde_json::Value::Object(map) => {
            Value::Map(map.into_iter().map(|(k, v)| (Key::from(k), from_json(v))).collect())
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The exchange format with non-finite floats: a parser that accepts bare `NaN`, `Infinity` and `-Infinity`
// (what Python's `json.dumps` writes by default) and a writer that writes them bare, as `null`, or as strings.
// ---------------------------------------------------------------------------------------------------------

/// How a writer spells a non-finite float (JSON has no literal for them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NonFinite {
    /// Bare `NaN`, `Infinity`, `-Infinity` (the default): what Python's `json` module, JavaScript's JSON5 and
    /// [`parse`] read back as floats, so every float round-trips bit for bit (NaN payloads aside).
    #[default]
    Bare,
    /// `null`: strict JSON; the value is lost.
    Null,
    /// The strings `"NaN"`, `"Infinity"`, `"-Infinity"`: strict JSON; indistinguishable from such a string.
    String,
}

impl NonFinite {
    /// `bare`, `null` or `string`.
    pub fn as_str(self) -> &'static str {
        match self {
            NonFinite::Bare => "bare",
            NonFinite::Null => "null",
            NonFinite::String => "string",
        }
    }
}

/// Appends `x` as JSON: shortest round-trip form for finite floats (always with a `.` or an exponent, so it
/// reads back as a float: `1.0`, `0.1`, `1e20`, `-0.0`), non-finite ones as `nf` says.
pub fn write_f64(out: &mut Vec<u8>, x: f64, nf: NonFinite) {
    if let Some(name) = non_finite_name(x) {
        match nf {
            NonFinite::Bare => out.extend_from_slice(name.as_bytes()),
            NonFinite::Null => out.extend_from_slice(b"null"),
            NonFinite::String => {
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.push(b'"');
            }
        }
        return;
    }
    // serde_json prints finite floats in shortest round-trip form; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &x);
}

/// Appends `s` as a JSON string (quotes, backslashes and control characters escaped).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `v` as JSON (see the module docs for the rules; non-finite floats as `nf` says).
pub fn write_value(out: &mut Vec<u8>, v: &Value, nf: NonFinite) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(x) => write_f64(out, *x, nf),
        Value::Str(s) => write_str(out, s),
        Value::Bytes(bytes) => {
            out.push(b'[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b.to_string().as_bytes());
            }
            out.push(b']');
        }
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, nf);
            }
            out.push(b']');
        }
        Value::Map(map) => write_map(out, map.iter().map(|(k, v)| (&**k, v)), nf),
    }
}

/// Appends a JSON object of `entries` (in the order given).
pub fn write_map<'a>(out: &mut Vec<u8>, entries: impl IntoIterator<Item = (&'a str, &'a Value)>, nf: NonFinite) {
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v, nf);
    }
    out.push(b'}');
}

/// Appends one history row: `{"_step":N,"_timestamp":T,...metrics}` (+ `"_run":"ID@vK"` when `origin`).
pub fn write_row(out: &mut Vec<u8>, row: &LogRow, origin: bool, nf: NonFinite) {
    out.extend_from_slice(b"{\"_step\":");
    out.extend_from_slice(row.step.to_string().as_bytes());
    out.extend_from_slice(b",\"_timestamp\":");
    write_f64(out, row.time, nf);
    for (k, v) in &row.metrics {
        out.push(b',');
        write_str(out, k);
        out.push(b':');
        write_value(out, v, nf);
    }
    if origin {
        out.extend_from_slice(b",\"_run\":");
        write_str(out, &row.origin.to_string());
    }
    out.push(b'}');
}

/// `v` as one line of JSON (no newline).
pub fn value_line(v: &Value, nf: NonFinite) -> String {
    let mut out = Vec::new();
    write_value(&mut out, v, nf);
    String::from_utf8(out).unwrap_or_default()
}

/// Why [`parse`] refused its input: what, and where (1-based byte column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based column (byte offset + 1) where the problem was found.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid JSON at column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Deepest nesting of arrays and objects [`parse`] accepts by default (the engine stores values up to 64
/// levels deep; a row's own object is one more).
pub const MAX_NESTING: usize = 65;

/// Parses one JSON text (surrounding whitespace allowed) into a [`Value`]: JSON as RFC 8259 has it, plus the
/// bare literals `NaN`, `Infinity` and `-Infinity` as floats (never inside strings: `"NaN"` stays a string).
/// Numbers without a fraction or exponent that fit `i64` become [`Value::Int`]; every other number a
/// [`Value::Float`], correctly rounded (`-0` and `-0.0` keep their sign; a number too large for `f64` is an
/// error). Objects keep the last of repeated keys. Nesting deeper than [`MAX_NESTING`] is refused.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    parse_with_depth(text, MAX_NESTING)
}

/// Like [`parse`], for a JSON object whose entries are wanted in input order (repeated keys kept as they
/// come): the form a JSONL row is read in. Anything but an object is an error.
pub fn parse_object(text: &[u8]) -> Result<Vec<(String, Value)>, ParseError> {
    Ok(parse_object_spans(text)?.into_iter().map(|(k, v, _)| (k, v)).collect())
}

/// Like [`parse_object`], with the byte range of each entry's value in `text`: for callers that need a
/// literal exactly (an integer beyond `i64`, such as a `u64` step, reads as a float).
pub fn parse_object_spans(text: &[u8]) -> Result<Vec<(String, Value, std::ops::Range<usize>)>, ParseError> {
    let mut p = Parser { b: text, pos: 0, depth: 0, max_depth: MAX_NESTING };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(p.err("expected a JSON object"));
    }
    let mut spans = Vec::new();
    let entries = p.object_entries(Some(&mut spans))?;
    let entries = entries.into_iter().zip(spans).map(|((k, v), r)| (k, v, r)).collect();
    p.ws();
    if p.pos != p.b.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok(entries)
}

/// [`parse`] with an explicit nesting limit.
pub fn parse_with_depth(text: &[u8], max_depth: usize) -> Result<Value, ParseError> {
    let mut p = Parser { b: text, pos: 0, depth: 0, max_depth };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.pos != p.b.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok(v)
}

/// A recursive-descent JSON parser over bytes.
struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError { column: self.pos + 1, message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, ParseError> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => {
                Ok(Value::Map(self.object_entries(None)?.into_iter().map(|(k, v)| (Key::from(k), v)).collect()))
            }
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'N') => self.literal(b"NaN", Value::Float(f64::NAN)),
            Some(b'I') => self.literal(b"Infinity", Value::Float(f64::INFINITY)),
            Some(b'-') if self.b[self.pos..].starts_with(b"-Infinity") => {
                self.literal(b"-Infinity", Value::Float(f64::NEG_INFINITY))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.err(format!("nested deeper than {} levels", self.max_depth)));
        }
        self.pos += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::List(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::List(items));
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn object_entries(
        &mut self,
        mut spans: Option<&mut Vec<std::ops::Range<usize>>>,
    ) -> Result<Vec<(String, Value)>, ParseError> {
        self.enter()?;
        let mut entries = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(entries);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let k = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected `:`"));
            }
            self.pos += 1;
            self.ws();
            let start = self.pos;
            let v = self.value()?;
            if let Some(s) = spans.as_deref_mut() {
                s.push(start..self.pos);
            }
            entries.push((k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(entries);
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self.b.get(self.pos..self.pos + 4).ok_or_else(|| self.err("incomplete \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err("invalid \\u escape"))?;
        if !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.err("invalid \\u escape"));
        }
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let chunk = std::str::from_utf8(&self.b[start..self.pos]).map_err(|e| ParseError {
                column: start + e.valid_up_to() + 1,
                message: "string is not valid UTF-8".into(),
            })?;
            out.push_str(chunk);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.b[self.pos..].starts_with(b"\\u") {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).ok_or_else(|| self.err("lone surrogate in \\u escape"))?);
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.err("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: digits expected after `.`"));
            }
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: digits expected in the exponent"));
            }
            integer = false;
        }
        // The grammar above admits only ASCII.
        let text = std::str::from_utf8(&self.b[start..self.pos]).map_err(|_| self.err("invalid number"))?;
        if integer {
            if let Ok(i) = text.parse::<i64>() {
                // `-0` has no integer form: it is the float -0.0 (as serde_json reads it).
                return Ok(if i == 0 && text.starts_with('-') { Value::Float(-0.0) } else { Value::Int(i) });
            }
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Float(x)),
            _ => Err(ParseError { column: start + 1, message: format!("number {text} is out of range") }),
        }
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
    fn the_parser_reads_bare_non_finite_literals_and_keeps_strings() {
        let text = r#" {"a": NaN, "b": Infinity, "c": -Infinity, "s": "NaN", "z": -0.0, "m": -0, "i": 7,
            "u": 18446744073709551615, "e": "\u00e9\ud83d\ude00\n", "l": [1.5e3, true, null]} "#;
        let Value::Map(m) = parse(text.as_bytes()).expect("valid") else { panic!("not a map") };
        assert!(matches!(m["a"], Value::Float(x) if x.is_nan()));
        assert_eq!(m["b"], Value::Float(f64::INFINITY));
        assert_eq!(m["c"], Value::Float(f64::NEG_INFINITY));
        assert_eq!(m["s"], Value::Str("NaN".into()));
        assert!(matches!(m["z"], Value::Float(x) if x.to_bits() == (-0.0f64).to_bits()));
        assert!(matches!(m["m"], Value::Float(x) if x.to_bits() == (-0.0f64).to_bits()));
        assert_eq!(m["i"], Value::Int(7));
        assert_eq!(m["u"], Value::Float(18446744073709551615.0));
        assert_eq!(m["e"], Value::Str("\u{e9}\u{1f600}\n".into()));
        assert_eq!(m["l"], Value::List(vec![Value::Float(1500.0), Value::Bool(true), Value::Null]));
        let bad: [&[u8]; 12] = [
            b"NaNx",
            b"nan",
            b"\"NaN",
            b"[1,]",
            b"{\"a\" 1}",
            b"01",
            b"1e400",
            b"-",
            br#""\ud800""#,
            b"\"a\x01\"",
            b"Infinityy",
            b"[1] 2",
        ];
        for b in bad {
            assert!(parse(b).is_err(), "{:?}", String::from_utf8_lossy(b));
        }
        let deep = "[".repeat(MAX_NESTING + 1) + &"]".repeat(MAX_NESTING + 1);
        assert!(parse(deep.as_bytes()).is_err());
        let ok = "[".repeat(MAX_NESTING) + &"]".repeat(MAX_NESTING);
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn the_writer_round_trips_through_the_parser() {
        let vals = [0.1, -0.0, 1e20, 5e-324, f64::MAX, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0];
        let s = Value::Str("q\"\\\u{1}\u{e9}".into());
        for x in vals {
            let v = Value::List(vec![Value::Float(x), s.clone()]);
            let text = value_line(&v, NonFinite::Bare);
            let Value::List(l) = parse(text.as_bytes()).expect("parses") else { panic!("not a list") };
            match l[0] {
                Value::Float(y) => assert!(y.to_bits() == x.to_bits() || (x.is_nan() && y.is_nan()), "{text}"),
                ref other => panic!("{other:?}"),
            }
            assert_eq!(l[1], s);
            for nf in [NonFinite::Null, NonFinite::String] {
                assert!(serde_json::from_str::<serde_json::Value>(&value_line(&v, nf)).is_ok());
            }
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
