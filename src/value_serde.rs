//! serde support for [`Value`]: its `Serialize`/`Deserialize` impls in the natural, untagged shape,
//! and [`to_value`] / [`from_value`] / [`to_metrics`] to convert any serde type to and from it.
//!
//! The conversions are direct (no JSON round trip), so floats keep their exact bits (NaN payloads,
//! infinities, `-0.0`) and bytes stay bytes. Shapes follow serde_json's conventions: structs and maps
//! become `Map`s, tuples and sequences `List`s, `None` and `()` become `Null`, a unit enum variant
//! becomes `Str(name)` and any other variant a one-entry `Map { name: payload }`.

use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::vec;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor};
use serde::ser::{self, Serialize};
use serde::{forward_to_deserialize_any, Deserialize, Deserializer, Serializer};

use crate::error::{Error, Result};
use crate::value::{Key, Metrics, Value};

/// Converts any serializable value into a [`Value`].
///
/// Fails with [`Error::Value`] when the data does not fit the model: an integer outside the `i64`
/// range, or a map key that is not a string, integer, bool or char.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    Ok(value.serialize(ValueSerializer)?)
}

/// Converts a [`Value`] into any deserializable type.
///
/// Fails with [`Error::Value`] when the value's shape does not match `T`.
pub fn from_value<T: de::DeserializeOwned>(value: Value) -> Result<T> {
    Ok(T::deserialize(ValueDeserializer(value))?)
}

/// Converts a struct or map into a [`Metrics`] row (one entry per field or key).
///
/// Fails with [`Error::Value`] when `value` serializes to anything other than a map.
pub fn to_metrics<T: Serialize + ?Sized>(value: &T) -> Result<Metrics> {
    match to_value(value)? {
        Value::Map(map) => Ok(map),
        other => Err(Error::Value {
            reason: format!("metrics must serialize to a map or struct, got {}", unexpected(&other)),
        }),
    }
}

/// The conversion error inside the serde machinery; becomes [`Error::Value`] at the public boundary.
#[derive(Debug)]
struct ConvError(String);

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvError {}

impl ser::Error for ConvError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvError(msg.to_string())
    }
}

impl de::Error for ConvError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvError(msg.to_string())
    }
}

impl From<ConvError> for Error {
    fn from(e: ConvError) -> Error {
        Error::Value { reason: e.0 }
    }
}

/// The message for an integer that does not fit `Value::Int`.
fn out_of_range(v: impl fmt::Display) -> String {
    format!("integer {v} is out of range: forklog integers are signed 64-bit ({}..={})", i64::MIN, i64::MAX)
}

/// An integer as `Value::Int`, or the out-of-range message when it does not fit an `i64`.
fn int_value<T: Copy + fmt::Display + TryInto<i64>>(v: T) -> Result<Value, String> {
    v.try_into().map(Value::Int).map_err(|_| out_of_range(v))
}

/// Describes a value for serde's error messages.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => Unexpected::Signed(*i),
        Value::Float(x) => Unexpected::Float(*x),
        Value::Str(s) => Unexpected::Str(s),
        Value::Bytes(b) => Unexpected::Bytes(b),
        Value::List(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

/// A one-entry map `{ name: payload }`: the shape of a non-unit enum variant.
fn variant_map(name: impl Into<String>, payload: Value) -> Value {
    Value::Map(BTreeMap::from([(Key::from(name.into()), payload)]))
}

impl Value {
    /// Converts this value into any `T: Deserialize` (see [`from_value`](crate::from_value)).
    pub fn deserialize_into<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        from_value(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Value as a serde data type.

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::List(list) => serializer.collect_seq(list),
            Value::Map(map) => serializer.collect_map(map.iter().map(|(k, v)| (&**k, v))),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Builds a [`Value`] from whatever a self-describing format reports.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a null, bool, integer, float, string, bytes, list or string-keyed map")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        int_value(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        int_value(v).map_err(E::custom)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        int_value(v).map_err(E::custom)
    }

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Value, E> {
        Ok(Value::Float(f64::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            list.push(item);
        }
        Ok(Value::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some(key) = access.next_key::<Value>()? {
            let key = match key {
                Value::Str(key) => Key::from(key),
                other => return Err(de::Error::invalid_type(unexpected(&other), &"a string map key")),
            };
            map.insert(key, access.next_value()?);
        }
        Ok(Value::Map(map))
    }

    /// A self-describing format cannot say whether a variant carries data, so the payload is read as
    /// a value: a `Null` payload (a unit variant) gives `Str(name)`, anything else `{ name: payload }`.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (name, variant): (String, _) = data.variant()?;
        Ok(match variant.newtype_variant::<Value>()? {
            Value::Null => Value::Str(name),
            payload => variant_map(name, payload),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Serializer: any `T: Serialize` into a `Value`.

/// Serializes into a [`Value`].
struct ValueSerializer;

macro_rules! serialize_small_int {
    ($($method:ident: $t:ty),* $(,)?) => {$(
        fn $method(self, v: $t) -> Result<Value, ConvError> {
            Ok(Value::Int(i64::from(v)))
        }
    )*};
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ConvError;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = TupleVariantSerializer;
    type SerializeMap = MapSerializer;
    type SerializeStruct = MapSerializer;
    type SerializeStructVariant = StructVariantSerializer;

    serialize_small_int!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
    );

    fn serialize_bool(self, v: bool) -> Result<Value, ConvError> {
        Ok(Value::Bool(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Value, ConvError> {
        int_value(v).map_err(ConvError)
    }

    fn serialize_u64(self, v: u64) -> Result<Value, ConvError> {
        int_value(v).map_err(ConvError)
    }

    fn serialize_u128(self, v: u128) -> Result<Value, ConvError> {
        int_value(v).map_err(ConvError)
    }

    fn serialize_f32(self, v: f32) -> Result<Value, ConvError> {
        Ok(Value::Float(f64::from(v)))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ConvError> {
        Ok(Value::Float(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, ConvError> {
        Ok(Value::Str(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ConvError> {
        Ok(Value::Str(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ConvError> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn serialize_none(self) -> Result<Value, ConvError> {
        Ok(Value::Null)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ConvError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ConvError> {
        Ok(Value::Null)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ConvError> {
        Ok(Value::Null)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ConvError> {
        Ok(Value::Str(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ConvError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ConvError> {
        Ok(variant_map(variant, value.serialize(self)?))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSerializer, ConvError> {
        Ok(SeqSerializer(Vec::with_capacity(len.unwrap_or(0))))
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer, ConvError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqSerializer, ConvError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<TupleVariantSerializer, ConvError> {
        Ok(TupleVariantSerializer { variant, items: Vec::with_capacity(len) })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapSerializer, ConvError> {
        Ok(MapSerializer::default())
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<MapSerializer, ConvError> {
        Ok(MapSerializer::default())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<StructVariantSerializer, ConvError> {
        Ok(StructVariantSerializer { variant, fields: BTreeMap::new() })
    }
}

/// Collects a sequence, tuple or tuple struct into a `List`.
struct SeqSerializer(Vec<Value>);

impl ser::SerializeSeq for SeqSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvError> {
        self.0.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ConvError> {
        Ok(Value::List(self.0))
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, ConvError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, ConvError> {
        ser::SerializeSeq::end(self)
    }
}

/// Collects a tuple variant into `{ variant: [fields...] }`.
struct TupleVariantSerializer {
    variant: &'static str,
    items: Vec<Value>,
}

impl ser::SerializeTupleVariant for TupleVariantSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ConvError> {
        Ok(variant_map(self.variant, Value::List(self.items)))
    }
}

/// Collects a map or struct into a `Map`.
#[derive(Default)]
struct MapSerializer {
    map: Metrics,
    next_key: Option<Key>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ConvError> {
        self.next_key = Some(Key::from(key_string(key.serialize(ValueSerializer)?)?));
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConvError> {
        let key = self.next_key.take().ok_or_else(|| ConvError("map value serialized before its key".to_owned()))?;
        self.map.insert(key, value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ConvError> {
        Ok(Value::Map(self.map))
    }
}

impl ser::SerializeStruct for MapSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), ConvError> {
        self.map.insert(Key::from(key), value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ConvError> {
        Ok(Value::Map(self.map))
    }
}

/// Collects a struct variant into `{ variant: { fields... } }`.
struct StructVariantSerializer {
    variant: &'static str,
    fields: Metrics,
}

impl ser::SerializeStructVariant for StructVariantSerializer {
    type Ok = Value;
    type Error = ConvError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), ConvError> {
        self.fields.insert(Key::from(key), value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ConvError> {
        Ok(variant_map(self.variant, Value::Map(self.fields)))
    }
}

/// Turns a serialized map key into a `String`: strings (and chars and unit variants, which serialize
/// as strings) as they are, integers and bools through `to_string`; anything else is an error.
fn key_string(key: Value) -> Result<String, ConvError> {
    match key {
        Value::Str(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ConvError(format!(
            "map keys must be strings (or integers, bools or chars), got {}",
            unexpected(&other)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Deserializer: a `Value` into any `T: Deserialize`.

/// Deserializes from an owned [`Value`].
struct ValueDeserializer(Value);

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = ConvError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::Float(x) => visitor.visit_f64(x),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::List(list) => visit_list(list, visitor),
            Value::Map(map) => visit_map(map, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(ValueDeserializer(other)),
        }
    }

    /// `Bytes` can also be read as a sequence of `u8`s (e.g. into a `Vec<u8>`).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        match self.0 {
            Value::Bytes(bytes) => {
                let ints = bytes.into_iter().map(|b| Value::Int(i64::from(b)));
                visit_list(ints.collect(), visitor)
            }
            other => ValueDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvError> {
        match self.0 {
            Value::Str(variant) => visitor.visit_enum(EnumDeserializer { variant, payload: None }),
            Value::Map(map) => {
                let len = map.len();
                let mut entries = map.into_iter();
                match (entries.next(), entries.next()) {
                    (Some((variant, payload)), None) => {
                        visitor.visit_enum(EnumDeserializer { variant: variant.to_string(), payload: Some(payload) })
                    }
                    _ => Err(de::Error::invalid_length(len, &"a map with exactly one entry naming the enum variant")),
                }
            }
            other => {
                Err(de::Error::invalid_type(unexpected(&other), &"a string or a one-entry map naming an enum variant"))
            }
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map struct identifier
    }
}

/// Feeds a `List` to a visitor, failing if the visitor leaves elements unread.
fn visit_list<'de, V: Visitor<'de>>(list: Vec<Value>, visitor: V) -> Result<V::Value, ConvError> {
    let len = list.len();
    let mut seq = SeqDeserializer(list.into_iter());
    let out = visitor.visit_seq(&mut seq)?;
    match seq.0.len() {
        0 => Ok(out),
        _ => Err(de::Error::invalid_length(len, &"fewer elements in the list")),
    }
}

/// Feeds a `Map` to a visitor, failing if the visitor leaves entries unread.
fn visit_map<'de, V: Visitor<'de>>(map: Metrics, visitor: V) -> Result<V::Value, ConvError> {
    let len = map.len();
    let mut access = MapDeserializer { entries: map.into_iter(), value: None };
    let out = visitor.visit_map(&mut access)?;
    match access.entries.len() {
        0 => Ok(out),
        _ => Err(de::Error::invalid_length(len, &"fewer entries in the map")),
    }
}

/// Hands out a `List`'s elements.
struct SeqDeserializer(vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for SeqDeserializer {
    type Error = ConvError;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, ConvError> {
        self.0.next().map(|item| seed.deserialize(ValueDeserializer(item))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// Hands out a `Map`'s entries.
struct MapDeserializer {
    entries: btree_map::IntoIter<Key, Value>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for MapDeserializer {
    type Error = ConvError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ConvError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(KeyDeserializer(key.to_string())).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, ConvError> {
        match self.value.take() {
            Some(value) => seed.deserialize(ValueDeserializer(value)),
            None => Err(de::Error::custom("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Deserializes a map key or variant name. Keys were stringified by [`to_value`], so a key asked
/// for as an integer or bool is parsed back (a key that does not parse goes to the visitor as a
/// string, which reports the type mismatch).
struct KeyDeserializer(String);

macro_rules! deserialize_parsed_key {
    ($($method:ident => $visit:ident: $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
            match self.0.parse::<$t>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => visitor.visit_string(self.0),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for KeyDeserializer {
    type Error = ConvError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        visitor.visit_string(self.0)
    }

    deserialize_parsed_key!(
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8, deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32, deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128, deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16, deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64, deserialize_u128 => visit_u128: u128,
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvError> {
        visitor.visit_enum(EnumDeserializer { variant: self.0, payload: None })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier
    }
}

/// An enum read from `Str(variant)` (no payload) or `{ variant: payload }`.
struct EnumDeserializer {
    variant: String,
    payload: Option<Value>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer {
    type Error = ConvError;
    type Variant = VariantDeserializer;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, VariantDeserializer), ConvError> {
        let variant = seed.deserialize(KeyDeserializer(self.variant))?;
        Ok((variant, VariantDeserializer(self.payload)))
    }
}

/// The payload of an enum variant, if it had one.
struct VariantDeserializer(Option<Value>);

impl VariantDeserializer {
    /// The payload, or an error naming what was expected when there is none.
    fn payload(self, expected: &'static str) -> Result<Value, ConvError> {
        self.0.ok_or_else(|| de::Error::invalid_type(Unexpected::UnitVariant, &expected))
    }
}

impl<'de> VariantAccess<'de> for VariantDeserializer {
    type Error = ConvError;

    fn unit_variant(self) -> Result<(), ConvError> {
        match self.0 {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(de::Error::invalid_type(unexpected(&other), &"a unit variant")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, ConvError> {
        seed.deserialize(ValueDeserializer(self.payload("a newtype variant")?))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, ConvError> {
        match self.payload("a tuple variant")? {
            Value::List(list) => visit_list(list, visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvError> {
        match self.payload("a struct variant")? {
            Value::Map(map) => visit_map(map, visitor),
            Value::List(list) => visit_list(list, visitor),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a struct variant")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Mode {
        Train,
        Warmup(u32),
        Pair(i32, i32),
        Eval { split: String },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Optim {
        lr: f64,
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Config {
        loss: f64,
        step: i64,
        name: String,
        done: bool,
        note: Option<String>,
        missing: Option<i64>,
        hist: Vec<f32>,
        optim: Optim,
        mode: Mode,
        modes: Vec<Mode>,
        pair: (u8, char),
        counts: BTreeMap<u32, u64>,
        nothing: (),
    }

    fn sample() -> Config {
        Config {
            loss: 0.25,
            step: -7,
            name: "resnet".into(),
            done: true,
            note: Some("hi".into()),
            missing: None,
            hist: vec![1.5, -2.0, 0.125],
            optim: Optim { lr: 1e-3, name: "adam".into() },
            mode: Mode::Eval { split: "val".into() },
            modes: vec![Mode::Train, Mode::Warmup(3), Mode::Pair(-1, 2)],
            pair: (200, 'x'),
            counts: BTreeMap::from([(1, 10), (20, 200)]),
            nothing: (),
        }
    }

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(entries.iter().map(|(k, v)| (Key::from(*k), v.clone())).collect())
    }

    #[test]
    fn struct_round_trips() {
        let config = sample();
        let value = to_value(&config).unwrap();
        let Value::Map(fields) = &value else {
            panic!("expected a map, got {value:?}");
        };
        assert_eq!(fields["loss"], Value::Float(0.25));
        assert_eq!(fields["step"], Value::Int(-7));
        assert_eq!(fields["missing"], Value::Null);
        assert_eq!(fields["nothing"], Value::Null);
        assert_eq!(fields["note"], Value::Str("hi".into()));
        assert_eq!(fields["hist"], Value::List(vec![Value::Float(1.5), Value::Float(-2.0), Value::Float(0.125)]));
        assert_eq!(fields["mode"], map(&[("Eval", map(&[("split", Value::Str("val".into()))]))]));
        assert_eq!(
            fields["modes"],
            Value::List(vec![
                Value::Str("Train".into()),
                map(&[("Warmup", Value::Int(3))]),
                map(&[("Pair", Value::List(vec![Value::Int(-1), Value::Int(2)]))]),
            ])
        );
        assert_eq!(fields["pair"], Value::List(vec![Value::Int(200), Value::Str("x".into())]));
        assert_eq!(fields["counts"], map(&[("1", Value::Int(10)), ("20", Value::Int(200))]));
        let back: Config = from_value(value).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn floats_keep_their_bits() {
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        for x in [nan, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE] {
            let value = to_value(&x).unwrap();
            assert_eq!(value, Value::Float(x));
            let back: f64 = from_value(value.clone()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits());
            assert_eq!(from_value::<Value>(value.clone()).unwrap(), value);
        }
        assert_ne!(to_value(&-0.0f64).unwrap(), Value::Float(0.0));
    }

    #[test]
    fn out_of_range_integers_error() {
        for result in [to_value(&u64::MAX), to_value(&u128::MAX), to_value(&i128::MIN)] {
            assert!(matches!(result, Err(Error::Value { .. })), "{result:?}");
        }
        assert_eq!(to_value(&(i64::MAX as u64)).unwrap(), Value::Int(i64::MAX));
        assert_eq!(to_value(&(i64::MIN as i128)).unwrap(), Value::Int(i64::MIN));
        let err = serde_json::from_str::<Value>("18446744073709551615").unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn narrowing_is_checked_by_the_target_type() {
        assert_eq!(from_value::<u8>(Value::Int(255)).unwrap(), 255);
        assert!(matches!(from_value::<u8>(Value::Int(256)), Err(Error::Value { .. })));
        assert!(from_value::<i64>(Value::Float(1.0)).is_err());
        assert_eq!(from_value::<f64>(Value::Int(3)).unwrap(), 3.0);
        assert!(from_value::<(i64, i64)>(Value::List(vec![Value::Int(1); 3])).is_err());
    }

    #[test]
    fn bytes_stay_bytes() {
        struct Raw<'a>(&'a [u8]);
        impl Serialize for Raw<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        let value = to_value(&Raw(&[0, 1, 255])).unwrap();
        assert_eq!(value, Value::Bytes(vec![0, 1, 255]));
        assert_eq!(from_value::<Value>(value.clone()).unwrap(), value);
        assert_eq!(from_value::<Vec<u8>>(value).unwrap(), vec![0, 1, 255]);
    }

    #[test]
    fn enums_from_values() {
        assert_eq!(from_value::<Mode>(Value::Str("Train".into())).unwrap(), Mode::Train);
        assert_eq!(from_value::<Mode>(map(&[("Warmup", Value::Int(5))])).unwrap(), Mode::Warmup(5));
        let two = map(&[("Train", Value::Null), ("Warmup", Value::Int(1))]);
        assert!(from_value::<Mode>(two).is_err());
        assert!(from_value::<Mode>(Value::Str("Nope".into())).is_err());
        assert!(from_value::<Mode>(Value::Str("Warmup".into())).is_err());
        assert_eq!(from_value::<Option<Mode>>(Value::Null).unwrap(), None);
    }

    #[test]
    fn map_keys() {
        let by_bool = BTreeMap::from([(true, 1), (false, 0)]);
        let value = to_value(&by_bool).unwrap();
        assert_eq!(value, map(&[("false", Value::Int(0)), ("true", Value::Int(1))]));
        assert_eq!(from_value::<BTreeMap<bool, i32>>(value).unwrap(), by_bool);

        let by_char = BTreeMap::from([('a', 1)]);
        assert_eq!(to_value(&by_char).unwrap(), map(&[("a", Value::Int(1))]));

        let by_tuple = BTreeMap::from([((1, 2), 3)]);
        let err = to_value(&by_tuple).unwrap_err();
        assert!(err.to_string().contains("map keys must be strings"), "{err}");
        assert!(serde_json::from_str::<Value>("{\"a\": 1}").is_ok());
    }

    #[test]
    fn metrics_from_struct_or_map() {
        let metrics = to_metrics(&Optim { lr: 0.5, name: "sgd".into() }).unwrap();
        assert_eq!(metrics[&Key::from("lr")], Value::Float(0.5));
        assert_eq!(metrics[&Key::from("name")], Value::Str("sgd".into()));

        let metrics = to_metrics(&BTreeMap::from([("acc", 0.9)])).unwrap();
        assert_eq!(metrics.len(), 1);

        for result in [to_metrics(&5), to_metrics(&vec![1, 2]), to_metrics(&Mode::Train)] {
            match result {
                Err(Error::Value { reason }) => {
                    assert!(reason.starts_with("metrics must serialize to a map or struct"));
                }
                other => panic!("expected a value error, got {other:?}"),
            }
        }
    }

    #[test]
    fn json_shape_is_natural() {
        let value = map(&[
            ("a", Value::Int(1)),
            ("b", Value::List(vec![Value::Bool(true), Value::Null, Value::Str("x".into())])),
            ("c", map(&[("d", Value::Int(-2))])),
            ("f", Value::Float(0.5)),
        ]);
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, r#"{"a":1,"b":[true,null,"x"],"c":{"d":-2},"f":0.5}"#);
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn value_is_its_own_fixed_point() {
        let value = map(&[
            ("bytes", Value::Bytes(vec![1, 2])),
            ("list", Value::List(vec![Value::Null, Value::Float(f64::NAN)])),
            ("int", Value::Int(i64::MIN)),
        ]);
        assert_eq!(to_value(&value).unwrap(), value);
        assert_eq!(from_value::<Value>(value.clone()).unwrap(), value);
    }
}
