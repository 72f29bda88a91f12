//! Metric and config values: [`Value`], [`Key`], [`Metrics`] and the [`metrics!`](crate::metrics) macro.
//!
//! Floats are stored bit-exactly (NaN payloads and infinities included). `Value` implements serde's
//! `Serialize`/`Deserialize` in the natural, untagged shape (a `Map` is a map, a `Float` a float), and
//! [`to_value`](crate::to_value) / [`from_value`](crate::from_value) convert any serde type to and from it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A metric or config key. Shared (`Arc<str>`) so replay does not allocate a string per row.
pub type Key = Arc<str>;

/// A row of named values: the metrics of a `Log` or `System` event, or a config/summary patch.
pub type Metrics = BTreeMap<Key, Value>;

/// One value in a run's history, config or summary.
#[derive(Debug, Clone)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float, stored bit-exactly.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values (e.g. histogram bins).
    List(Vec<Value>),
    /// A nested map (e.g. a table or a histogram with its edges).
    Map(Metrics),
}

impl Value {
    /// The value as an `f64` when it is a `Float` or an `Int`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as an `i64` when it is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a `&str` when it is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Equality is bit-exact for floats: `Float(NaN) == Float(NaN)` when the bits match, and
/// `Float(0.0) != Float(-0.0)`. This is the equality a storage round trip must preserve.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(l) => {
                write!(f, "[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$variant(<$conv>::from(x))
            }
        }
    )*};
}

value_from!(
    bool => Bool as bool,
    i8 => Int as i64, i16 => Int as i64, i32 => Int as i64, i64 => Int as i64,
    u8 => Int as i64, u16 => Int as i64, u32 => Int as i64,
    f32 => Float as f64, f64 => Float as f64,
    String => Str as String, &str => Str as String,
    Vec<u8> => Bytes as Vec<u8>,
);

impl From<Vec<Value>> for Value {
    fn from(x: Vec<Value>) -> Value {
        Value::List(x)
    }
}

impl From<Metrics> for Value {
    fn from(x: Metrics) -> Value {
        Value::Map(x)
    }
}

/// A map keyed by `String` becomes a [`Value::Map`] (its keys are converted to [`Key`]s).
impl From<BTreeMap<String, Value>> for Value {
    fn from(x: BTreeMap<String, Value>) -> Value {
        Value::Map(x.into_iter().map(|(k, v)| (Key::from(k), v)).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
}

/// Builds a [`Metrics`] map: `metrics! { "loss" => 0.25, "acc" => 0.9 }`.
///
/// ```
/// let m = forklog::metrics! { "loss" => 0.25, "epoch" => 3 };
/// assert_eq!(m["loss"], forklog::Value::Float(0.25));
/// assert_eq!(m["epoch"], forklog::Value::Int(3));
/// ```
#[macro_export]
macro_rules! metrics {
    () => { $crate::Metrics::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut m = $crate::Metrics::new();
        $( m.insert($crate::Key::from($k), $crate::Value::from($v)); )+
        m
    }};
}

/// A set of value kinds, as bit flags: which kinds of [`Value`] a [`Column`](crate::Column) was read from.
/// Columnar reads turn integers and booleans into `f64` and other values into `None`; this says which of
/// those conversions happened (an exporter that wants exact types needs no second pass over the rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ValueKinds(u8);

impl ValueKinds {
    /// No kind: the empty set.
    pub const NONE: ValueKinds = ValueKinds(0);
    /// `Value::Null`.
    pub const NULL: ValueKinds = ValueKinds(1);
    /// `Value::Bool`.
    pub const BOOL: ValueKinds = ValueKinds(2);
    /// `Value::Int`.
    pub const INT: ValueKinds = ValueKinds(4);
    /// `Value::Float`.
    pub const FLOAT: ValueKinds = ValueKinds(8);
    /// Any other value: strings, bytes, lists and maps.
    pub const OTHER: ValueKinds = ValueKinds(16);

    /// The kind of `v`.
    pub fn of(v: &Value) -> ValueKinds {
        match v {
            Value::Null => ValueKinds::NULL,
            Value::Bool(_) => ValueKinds::BOOL,
            Value::Int(_) => ValueKinds::INT,
            Value::Float(_) => ValueKinds::FLOAT,
            _ => ValueKinds::OTHER,
        }
    }

    /// True when every kind of `other` is in `self`.
    pub fn contains(self, other: ValueKinds) -> bool {
        self.0 & other.0 == other.0
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds the kinds of `other`.
    pub fn insert(&mut self, other: ValueKinds) {
        self.0 |= other.0;
    }

    /// The kinds in `self` or in `other`.
    pub fn union(self, other: ValueKinds) -> ValueKinds {
        ValueKinds(self.0 | other.0)
    }
}

impl std::ops::BitOr for ValueKinds {
    type Output = ValueKinds;
    fn bitor(self, other: ValueKinds) -> ValueKinds {
        self.union(other)
    }
}
