//! Encoding of events inside a frame payload (bincode 2.0.1 through serde, `standard` configuration:
//! little-endian varints). `docs/FORMAT.md` spells out the resulting bytes without reference to bincode.
//!
//! A frame payload is `count, base_step, base_time_us` followed by `count` events. Each event stores its
//! step and time as deltas from the previous event of the frame (the first from the base), and its metric
//! keys as ids into the version's key table, so a row of five floats costs about 58 bytes.

use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::value::Value;

/// Limit that bounds what a decoder may allocate, whatever length a (CRC-valid) payload claims.
const DECODE_LIMIT: usize = crate::format::MAX_FRAME_LEN as usize;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn limited() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Why a payload could not be decoded.
#[derive(Debug)]
pub struct DecodeError(pub String);

/// An event ready to encode, with keys already resolved to ids.
pub enum EncEvent<'a> {
    /// A history row.
    Log {
        /// Step.
        step: u64,
        /// Time in microseconds since the epoch.
        time_us: i64,
        /// (key id, value) pairs.
        metrics: &'a [(u32, &'a Value)],
    },
    /// A config patch.
    Config {
        /// Step.
        step: u64,
        /// (key id, value) pairs.
        patch: &'a [(u32, &'a Value)],
    },
    /// A summary patch.
    Summary {
        /// Step.
        step: u64,
        /// (key id, value) pairs.
        patch: &'a [(u32, &'a Value)],
    },
    /// A system sample.
    System {
        /// Step.
        step: u64,
        /// Time in microseconds since the epoch.
        time_us: i64,
        /// (key id, value) pairs.
        metrics: &'a [(u32, &'a Value)],
    },
    /// The run finished.
    Finish {
        /// Step.
        step: u64,
        /// Exit code.
        exit_code: i32,
    },
}

impl EncEvent<'_> {
    /// The event's step.
    pub fn step(&self) -> u64 {
        match self {
            EncEvent::Log { step, .. }
            | EncEvent::Config { step, .. }
            | EncEvent::Summary { step, .. }
            | EncEvent::System { step, .. }
            | EncEvent::Finish { step, .. } => *step,
        }
    }
    /// The event's time, for kinds that carry one.
    pub fn time_us(&self) -> Option<i64> {
        match self {
            EncEvent::Log { time_us, .. } | EncEvent::System { time_us, .. } => Some(*time_us),
            _ => None,
        }
    }
}

/// Serializes a value with an explicit variant tag (the on-disk form; `Value`'s own serde impl is untagged).
struct Tagged<'a>(&'a Value);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "Value";
        match self.0 {
            Value::Null => s.serialize_unit_variant(N, 0, "Null"),
            Value::Bool(b) => s.serialize_newtype_variant(N, 1, "Bool", b),
            Value::Int(i) => s.serialize_newtype_variant(N, 2, "Int", i),
            Value::Float(x) => s.serialize_newtype_variant(N, 3, "Float", x),
            Value::Str(x) => s.serialize_newtype_variant(N, 4, "Str", x),
            Value::Bytes(b) => s.serialize_newtype_variant(N, 5, "Bytes", b),
            Value::List(l) => s.serialize_newtype_variant(N, 6, "List", &TaggedList(l)),
            Value::Map(m) => s.serialize_newtype_variant(N, 7, "Map", &TaggedMap(m)),
        }
    }
}

struct TaggedList<'a>(&'a [Value]);
impl Serialize for TaggedList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Tagged))
    }
}

struct TaggedMap<'a>(&'a std::collections::BTreeMap<String, Value>);
impl Serialize for TaggedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (k, Tagged(v))))
    }
}

struct Keyed<'a>(&'a [(u32, &'a Value)]);
impl Serialize for Keyed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (id, v) in self.0 {
            seq.serialize_element(&(id, Tagged(v)))?;
        }
        seq.end()
    }
}

/// The on-disk value, decoded; converted into [`Value`] by moving its parts.
#[derive(Deserialize)]
enum DiskValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<DiskValue>),
    Map(Vec<(String, DiskValue)>),
}

impl From<DiskValue> for Value {
    fn from(d: DiskValue) -> Value {
        match d {
            DiskValue::Null => Value::Null,
            DiskValue::Bool(b) => Value::Bool(b),
            DiskValue::Int(i) => Value::Int(i),
            DiskValue::Float(x) => Value::Float(x),
            DiskValue::Str(s) => Value::Str(s),
            DiskValue::Bytes(b) => Value::Bytes(b),
            DiskValue::List(l) => Value::List(l.into_iter().map(Value::from).collect()),
            DiskValue::Map(m) => Value::Map(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
        }
    }
}

#[derive(Serialize)]
enum DiskEventRef<'a> {
    Log { dstep: u64, dtime: i64, metrics: Keyed<'a> },
    Config { dstep: u64, patch: Keyed<'a> },
    Summary { dstep: u64, patch: Keyed<'a> },
    System { dstep: u64, dtime: i64, metrics: Keyed<'a> },
    Finish { dstep: u64, exit_code: i32 },
}

#[derive(Deserialize)]
enum DiskEvent {
    Log { dstep: u64, dtime: i64, metrics: Vec<(u32, DiskValue)> },
    Config { dstep: u64, patch: Vec<(u32, DiskValue)> },
    Summary { dstep: u64, patch: Vec<(u32, DiskValue)> },
    System { dstep: u64, dtime: i64, metrics: Vec<(u32, DiskValue)> },
    Finish { dstep: u64, exit_code: i32 },
}

/// An event decoded from a frame, its metric keys still ids into the key table.
#[derive(Debug, Clone, PartialEq)]
pub enum RawEvent {
    /// A history row.
    Log {
        /// Step.
        step: u64,
        /// Microseconds since the epoch.
        time_us: i64,
        /// (key id, value) pairs.
        metrics: Vec<(u32, Value)>,
    },
    /// A config patch.
    Config {
        /// Step.
        step: u64,
        /// (key id, value) pairs.
        patch: Vec<(u32, Value)>,
    },
    /// A summary patch.
    Summary {
        /// Step.
        step: u64,
        /// (key id, value) pairs.
        patch: Vec<(u32, Value)>,
    },
    /// A system sample.
    System {
        /// Step.
        step: u64,
        /// Microseconds since the epoch.
        time_us: i64,
        /// (key id, value) pairs.
        metrics: Vec<(u32, Value)>,
    },
    /// The run finished.
    Finish {
        /// Step.
        step: u64,
        /// Exit code.
        exit_code: i32,
    },
}

impl RawEvent {
    /// The event's step.
    pub fn step(&self) -> u64 {
        match self {
            RawEvent::Log { step, .. }
            | RawEvent::Config { step, .. }
            | RawEvent::Summary { step, .. }
            | RawEvent::System { step, .. }
            | RawEvent::Finish { step, .. } => *step,
        }
    }
    /// True for `Log` events.
    pub fn is_log(&self) -> bool {
        matches!(self, RawEvent::Log { .. })
    }
    /// The largest key id the event uses, if any.
    pub fn max_key(&self) -> Option<u32> {
        match self {
            RawEvent::Log { metrics: m, .. }
            | RawEvent::System { metrics: m, .. }
            | RawEvent::Config { patch: m, .. }
            | RawEvent::Summary { patch: m, .. } => m.iter().map(|(k, _)| *k).max(),
            RawEvent::Finish { .. } => None,
        }
    }
}

fn kv(v: Vec<(u32, DiskValue)>) -> Vec<(u32, Value)> {
    v.into_iter().map(|(k, d)| (k, Value::from(d))).collect()
}

/// Appends the encoding of `ev` to `out`. `prev_step`/`prev_time` are the previous event's step and time
/// in the same frame (or the frame's base); they are updated.
pub fn encode_event(out: &mut Vec<u8>, ev: &EncEvent<'_>, prev_step: &mut u64, prev_time: &mut i64) {
    let dstep = ev.step().wrapping_sub(*prev_step);
    *prev_step = ev.step();
    let mut dtime = 0i64;
    if let Some(t) = ev.time_us() {
        dtime = t.wrapping_sub(*prev_time);
        *prev_time = t;
    }
    let disk = match ev {
        EncEvent::Log { metrics, .. } => DiskEventRef::Log { dstep, dtime, metrics: Keyed(metrics) },
        EncEvent::Config { patch, .. } => DiskEventRef::Config { dstep, patch: Keyed(patch) },
        EncEvent::Summary { patch, .. } => DiskEventRef::Summary { dstep, patch: Keyed(patch) },
        EncEvent::System { metrics, .. } => DiskEventRef::System { dstep, dtime, metrics: Keyed(metrics) },
        EncEvent::Finish { exit_code, .. } => DiskEventRef::Finish { dstep, exit_code: *exit_code },
    };
    // Encoding into a Vec cannot fail: every type here is serializable and a Vec's writes never fail.
    let _ = bincode::serde::encode_into_std_write(&disk, out, config());
}

/// Encodes a frame payload prefix: event count, base step, base time.
pub fn encode_prefix(out: &mut Vec<u8>, count: u32, base_step: u64, base_time_us: i64) {
    let _ = bincode::serde::encode_into_std_write((count, base_step, base_time_us), out, config());
}

/// Decodes the events of a frame payload one at a time, with each event's end offset in the payload.
pub struct PayloadDecoder<'a> {
    payload: &'a [u8],
    pos: usize,
    remaining: u32,
    prev_step: u64,
    prev_time: i64,
}

impl<'a> PayloadDecoder<'a> {
    /// Starts decoding `payload`: reads its prefix.
    pub fn new(payload: &'a [u8]) -> Result<PayloadDecoder<'a>, DecodeError> {
        let ((count, base_step, base_time), used): ((u32, u64, i64), usize) =
            bincode::serde::decode_from_slice(payload, limited())
                .map_err(|e| DecodeError(format!("bad frame prefix: {e}")))?;
        if count == 0 {
            return Err(DecodeError("frame holds no events".into()));
        }
        Ok(PayloadDecoder { payload, pos: used, remaining: count, prev_step: base_step, prev_time: base_time })
    }

    /// The step of the frame's first event.
    pub fn base_step(&self) -> u64 {
        self.prev_step
    }

    /// Number of events not yet decoded.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The next event and the payload offset just past it; `None` after the last. After the last event the
    /// payload must be fully consumed.
    pub fn next_event(&mut self) -> Option<Result<(RawEvent, usize), DecodeError>> {
        if self.remaining == 0 {
            if self.pos != self.payload.len() {
                self.pos = self.payload.len();
                return Some(Err(DecodeError("trailing bytes after the last event".into())));
            }
            return None;
        }
        let rest = self.payload.get(self.pos..).unwrap_or(&[]);
        let (disk, used): (DiskEvent, usize) = match bincode::serde::decode_from_slice(rest, limited()) {
            Ok(x) => x,
            Err(e) => {
                self.remaining = 0;
                self.pos = self.payload.len();
                return Some(Err(DecodeError(format!("bad event: {e}"))));
            }
        };
        self.pos += used;
        self.remaining -= 1;
        let mut step = |d: u64| {
            self.prev_step = self.prev_step.wrapping_add(d);
            self.prev_step
        };
        let ev = match disk {
            DiskEvent::Log { dstep, dtime, metrics } => {
                let step = step(dstep);
                self.prev_time = self.prev_time.wrapping_add(dtime);
                RawEvent::Log { step, time_us: self.prev_time, metrics: kv(metrics) }
            }
            DiskEvent::Config { dstep, patch } => RawEvent::Config { step: step(dstep), patch: kv(patch) },
            DiskEvent::Summary { dstep, patch } => RawEvent::Summary { step: step(dstep), patch: kv(patch) },
            DiskEvent::System { dstep, dtime, metrics } => {
                let step = step(dstep);
                self.prev_time = self.prev_time.wrapping_add(dtime);
                RawEvent::System { step, time_us: self.prev_time, metrics: kv(metrics) }
            }
            DiskEvent::Finish { dstep, exit_code } => RawEvent::Finish { step: step(dstep), exit_code },
        };
        Some(Ok((ev, self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let f = Value::Float(f64::from_bits(0x7ff8_0000_dead_beef));
        let nested = Value::Map([("a".to_string(), Value::List(vec![Value::Bytes(vec![1, 2]), Value::Null]))].into());
        let m: Vec<(u32, &Value)> = vec![(0, &f), (3, &nested)];
        let evs = [
            EncEvent::Log { step: 10, time_us: 1_000_000, metrics: &m },
            EncEvent::Config { step: 10, patch: &m },
            EncEvent::System { step: 10, time_us: 999_000, metrics: &m },
            EncEvent::Log { step: 12, time_us: 1_000_500, metrics: &m },
            EncEvent::Summary { step: 12, patch: &m },
            EncEvent::Finish { step: 12, exit_code: -3 },
        ];
        let mut body = Vec::new();
        let (mut ps, mut pt) = (10, 1_000_000);
        for e in &evs {
            encode_event(&mut body, e, &mut ps, &mut pt);
        }
        let mut payload = Vec::new();
        encode_prefix(&mut payload, evs.len() as u32, 10, 1_000_000);
        payload.extend_from_slice(&body);
        let mut d = PayloadDecoder::new(&payload).unwrap();
        let mut out = Vec::new();
        while let Some(r) = d.next_event() {
            out.push(r.unwrap().0);
        }
        assert_eq!(out.len(), 6);
        assert_eq!(out[3].step(), 12);
        match &out[2] {
            RawEvent::System { time_us, metrics, .. } => {
                assert_eq!(*time_us, 999_000);
                assert_eq!(metrics[0].1, f);
                assert_eq!(metrics[1].1, nested);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out[5], RawEvent::Finish { step: 12, exit_code: -3 });
    }

    #[test]
    fn five_float_row_is_compact() {
        let vals: Vec<Value> = (0..5).map(|i| Value::Float(i as f64 * 0.37)).collect();
        let m: Vec<(u32, &Value)> = vals.iter().enumerate().map(|(i, v)| (i as u32, v)).collect();
        let mut body = Vec::new();
        let (mut ps, mut pt) = (1_000_000, 0);
        encode_event(&mut body, &EncEvent::Log { step: 1_000_001, time_us: 2_500, metrics: &m }, &mut ps, &mut pt);
        assert!(body.len() <= 60, "{} bytes", body.len());
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u64..2000 {
            let bytes: Vec<u8> = (0..(seed % 64)).map(|i| crate::format::mix64(seed * 131 + i) as u8).collect();
            if let Ok(mut d) = PayloadDecoder::new(&bytes) {
                while d.next_event().is_some() {}
            }
        }
    }
}
