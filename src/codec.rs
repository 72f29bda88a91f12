//! Encoding of events inside a frame payload: the varint format of `docs/FORMAT.md` (the bytes bincode 2.0.1's
//! `standard` configuration writes for the same events, which the tests check; the engine encodes and decodes
//! by hand, in one place: this module).
//!
//! A frame payload is `count, base_step, base_time_us` followed by `count` events. Each event stores its
//! step and time as deltas from the previous event of the frame (the first from the base), and its metric
//! keys as ids into the version's key table, so a row of five floats costs about 58 bytes.

#[cfg(test)]
use serde::ser::{SerializeSeq, Serializer};
#[cfg(test)]
use serde::{Deserialize, Serialize};

use crate::meta::MetaPatch;
use crate::value::{Key, Value, ValueKinds};

/// Limit that bounds what the reference decoder may allocate.
#[cfg(test)]
const DECODE_LIMIT: usize = crate::format::MAX_FRAME_LEN as usize;

#[cfg(test)]
fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

#[cfg(test)]
fn limited() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Why a payload could not be decoded.
#[derive(Debug)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct DecodeError(pub String);

/// An event ready to encode, with keys already resolved to ids.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
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
    /// A metadata patch (format version 2).
    Meta {
        /// Step.
        step: u64,
        /// The patch.
        patch: &'a MetaPatch,
    },
}

impl EncEvent<'_> {
    /// The event's step.
    pub(crate) fn step(&self) -> u64 {
        match self {
            EncEvent::Log { step, .. }
            | EncEvent::Config { step, .. }
            | EncEvent::Summary { step, .. }
            | EncEvent::System { step, .. }
            | EncEvent::Finish { step, .. }
            | EncEvent::Meta { step, .. } => *step,
        }
    }
    /// The event's time, for kinds that carry one.
    pub(crate) fn time_us(&self) -> Option<i64> {
        match self {
            EncEvent::Log { time_us, .. } | EncEvent::System { time_us, .. } => Some(*time_us),
            _ => None,
        }
    }
}

/// Serializes a value with an explicit variant tag (the on-disk form; `Value`'s own serde impl is untagged):
/// the bincode reference the hand-written encoder is tested against.
#[cfg(test)]
struct Tagged<'a>(&'a Value);

#[cfg(test)]
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

#[cfg(test)]
struct TaggedList<'a>(&'a [Value]);
#[cfg(test)]
impl Serialize for TaggedList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Tagged))
    }
}

#[cfg(test)]
struct TaggedMap<'a>(&'a crate::value::Metrics);
#[cfg(test)]
impl Serialize for TaggedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (&**k, Tagged(v))))
    }
}

#[cfg(test)]
struct Keyed<'a>(&'a [(u32, &'a Value)]);
#[cfg(test)]
impl Serialize for Keyed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (id, v) in self.0 {
            seq.serialize_element(&(id, Tagged(v)))?;
        }
        seq.end()
    }
}

/// The on-disk value as bincode decodes it: the reference the hand-written decoder is tested against.
#[cfg(test)]
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

#[cfg(test)]
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
            DiskValue::Map(m) => Value::Map(m.into_iter().map(|(k, v)| (Key::from(k), Value::from(v))).collect()),
        }
    }
}

/// The on-disk event as bincode encodes it: the reference of the hand-written encoder's tests.
#[cfg(test)]
#[derive(Serialize)]
enum DiskEventRef<'a> {
    Log { dstep: u64, dtime: i64, metrics: Keyed<'a> },
    Config { dstep: u64, patch: Keyed<'a> },
    Summary { dstep: u64, patch: Keyed<'a> },
    System { dstep: u64, dtime: i64, metrics: Keyed<'a> },
    Finish { dstep: u64, exit_code: i32 },
    Dense { dstep: u64, dtime: i64, values: &'a [f64] },
}

#[cfg(test)]
#[derive(Deserialize)]
enum DiskEvent {
    Log {
        dstep: u64,
        dtime: i64,
        metrics: Vec<(u32, DiskValue)>,
    },
    Config {
        dstep: u64,
        patch: Vec<(u32, DiskValue)>,
    },
    Summary {
        dstep: u64,
        patch: Vec<(u32, DiskValue)>,
    },
    System {
        dstep: u64,
        dtime: i64,
        metrics: Vec<(u32, DiskValue)>,
    },
    Finish {
        dstep: u64,
        exit_code: i32,
    },
    Dense {
        dstep: u64,
        dtime: i64,
        values: Vec<f64>,
    },
    Meta {
        dstep: u64,
        name: Option<String>,
        notes: Option<String>,
        group: Option<String>,
        tags: Vec<String>,
        untags: Vec<String>,
    },
}

/// An event decoded from a frame, its metric keys still ids into the key table.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
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
    /// A metadata patch (format version 2).
    Meta {
        /// Step.
        step: u64,
        /// The patch.
        patch: MetaPatch,
    },
}

impl RawEvent {
    /// The event's step.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn step(&self) -> u64 {
        match self {
            RawEvent::Log { step, .. }
            | RawEvent::Config { step, .. }
            | RawEvent::Summary { step, .. }
            | RawEvent::System { step, .. }
            | RawEvent::Finish { step, .. }
            | RawEvent::Meta { step, .. } => *step,
        }
    }
    /// True for `Log` events.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn is_log(&self) -> bool {
        matches!(self, RawEvent::Log { .. })
    }
    /// The largest key id the event uses, if any.
    pub(crate) fn max_key(&self) -> Option<u32> {
        match self {
            RawEvent::Log { metrics: m, .. }
            | RawEvent::System { metrics: m, .. }
            | RawEvent::Config { patch: m, .. }
            | RawEvent::Summary { patch: m, .. } => m.iter().map(|(k, _)| *k).max(),
            RawEvent::Finish { .. } | RawEvent::Meta { .. } => None,
        }
    }
}

#[cfg(test)]
fn kv(v: Vec<(u32, DiskValue)>) -> Vec<(u32, Value)> {
    v.into_iter().map(|(k, d)| (k, Value::from(d))).collect()
}

/// Appends the encoding of `ev` to `out`. `prev_step`/`prev_time` are the previous event's step and time
/// in the same frame (or the frame's base); they are updated.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn encode_event(out: &mut Vec<u8>, ev: &EncEvent<'_>, prev_step: &mut u64, prev_time: &mut i64) {
    let dstep = ev.step().wrapping_sub(*prev_step);
    *prev_step = ev.step();
    let mut dtime = 0i64;
    if let Some(t) = ev.time_us() {
        dtime = t.wrapping_sub(*prev_time);
        *prev_time = t;
    }
    let (tag, keyed) = match ev {
        EncEvent::Log { metrics, .. } => (0, *metrics),
        EncEvent::Config { patch, .. } => (1, *patch),
        EncEvent::Summary { patch, .. } => (2, *patch),
        EncEvent::System { metrics, .. } => (3, *metrics),
        EncEvent::Finish { exit_code, .. } => {
            out.push(4);
            put_varint(out, dstep);
            put_varint(out, zigzag(i64::from(*exit_code)));
            return;
        }
        EncEvent::Meta { patch, .. } => {
            encode_meta(out, dstep, patch);
            return;
        }
    };
    out.reserve(3 + 9 * 2 + 12 * keyed.len());
    out.push(tag);
    put_varint(out, dstep);
    if ev.time_us().is_some() {
        put_varint(out, zigzag(dtime));
    }
    put_varint(out, keyed.len() as u64);
    for (id, v) in keyed {
        put_varint(out, u64::from(*id));
        put_value(out, v);
    }
}

/// Encodes a frame payload prefix: event count, base step, base time, and `synced_len`: how much of the
/// segment was durable (fsynced) when this frame was written. Recovery uses it to tell a hole a crash left
/// in unsynced data (a torn tail, even with later frames surviving) from corruption of synced data.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn encode_prefix(out: &mut Vec<u8>, count: u32, base_step: u64, base_time_us: i64, synced_len: u64) {
    put_varint(out, u64::from(count));
    put_varint(out, base_step);
    put_varint(out, zigzag(base_time_us));
    put_varint(out, synced_len);
}

/// Appends a length-prefixed byte string (a `Str`'s or `Bytes`' body, a map key, a meta string).
#[inline]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends varint `v` (docs/FORMAT.md, Payload).
#[inline]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Zigzag encoding of a signed integer.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Tag of a dense row: a `Log` event whose keys are the frame's template (the keys of the most recent
/// tag-0 `Log` event of the same payload) and whose values are all floats, stored without keys or value tags.
pub(crate) const DENSE_TAG: u8 = 5;

/// Appends a dense row (tag 5): `dstep`, `dtime`, the value count and the floats' bits. The caller guarantees
/// that the payload's template has exactly `values.len()` keys. The bytes are what bincode 2.0.1 produces for
/// the same event (checked in a test); this path exists because it is the append hot path.
#[inline]
pub(crate) fn encode_dense_row<I>(out: &mut Vec<u8>, step: u64, time_us: i64, values: I, prev: &mut (u64, i64))
where
    I: ExactSizeIterator<Item = f64>,
{
    let dstep = step.wrapping_sub(prev.0);
    let dtime = time_us.wrapping_sub(prev.1);
    *prev = (step, time_us);
    out.reserve(4 + 9 * 3 + 8 * values.len());
    let (zz, n) = (zigzag(dtime), values.len() as u64);
    if dstep < 251 && zz < 251 && n < 251 {
        out.extend_from_slice(&[DENSE_TAG, dstep as u8, zz as u8, n as u8]);
    } else {
        out.push(DENSE_TAG);
        put_varint(out, dstep);
        put_varint(out, zz);
        put_varint(out, n);
    }
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Appends dense rows for `steps[from..]` (row `i`'s values are `cols[c][i]`, a missing value 0), all at
/// `time_us`, while the buffer stays below `limit` bytes (at least one row is written when there is one), and
/// returns the index reached. The caller guarantees that the payload's template is the columns' keys. The
/// batch path of [`encode_dense_row`]: rows whose varints are one byte each (steps a little apart, one time for
/// the batch) are written straight into a slice of the buffer; any other row goes through `encode_dense_row`.
pub(crate) fn encode_dense_columns(
    out: &mut Vec<u8>,
    steps: &[u64],
    time_us: i64,
    cols: &[&[f64]],
    from: usize,
    limit: usize,
    prev: &mut (u64, i64),
) -> usize {
    let k = cols.len();
    let row_len = 4 + 8 * k;
    let mut i = from;
    if k < 251 && out.len() < limit {
        let fit = ((limit - out.len()) / row_len + 1).min(steps.len() - from);
        let start = out.len();
        out.resize(start + fit * row_len, 0);
        let (mut prev_step, prev_time) = *prev;
        let mut zz = zigzag(time_us.wrapping_sub(prev_time));
        let mut at = start;
        while i < from + fit {
            let dstep = steps[i].wrapping_sub(prev_step);
            if dstep >= 251 || zz >= 251 {
                break;
            }
            let row = &mut out[at..at + row_len];
            row[..4].copy_from_slice(&[DENSE_TAG, dstep as u8, zz as u8, k as u8]);
            for (dst, c) in row[4..].chunks_exact_mut(8).zip(cols) {
                dst.copy_from_slice(&c.get(i).copied().unwrap_or(0.0).to_le_bytes());
            }
            prev_step = steps[i];
            zz = 0;
            at += row_len;
            i += 1;
        }
        out.truncate(at);
        if i > from {
            *prev = (prev_step, time_us);
        }
    }
    if i == from && i < steps.len() {
        let values = cols.iter().map(|c| c.get(i).copied().unwrap_or(0.0));
        encode_dense_row(out, steps[i], time_us, values, prev);
        i += 1;
    }
    i
}

/// Tag of a `Meta` event (format version 2; in a version-1 segment it is corruption).
pub(crate) const META_TAG: u8 = 6;

/// Appends a `Meta` event: tag 6, `dstep`, the name, notes and group as options of strings, then the added
/// and removed tags as sequences of strings (what bincode 2.0.1 writes for the same struct; checked in a test).
fn encode_meta(out: &mut Vec<u8>, dstep: u64, patch: &MetaPatch) {
    out.push(META_TAG);
    put_varint(out, dstep);
    for field in [&patch.name, &patch.notes, &patch.group] {
        match field {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_bytes(out, s.as_bytes());
            }
        }
    }
    for list in [&patch.tags, &patch.untags] {
        put_varint(out, list.len() as u64);
        for t in list {
            put_bytes(out, t.as_bytes());
        }
    }
}

/// Deepest nesting of lists and maps a value may have (checked when writing and when reading).
pub(crate) const MAX_DEPTH: usize = 64;

/// A bounds-checked cursor over payload bytes, decoding the varint format of docs/FORMAT.md by hand
/// (bincode's `standard()` layout; bincode still encodes). Lengths are checked against the bytes left before
/// anything is allocated, and nesting is capped, so no payload can make it allocate or recurse without bound.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

type Dec<T> = Result<T, DecodeError>;

fn err<T>(what: &str) -> Dec<T> {
    Err(DecodeError(what.to_string()))
}

impl<'a> Rd<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Dec<&'a [u8]> {
        match self.pos.checked_add(n).and_then(|end| self.b.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => err("unexpected end of payload"),
        }
    }
    #[inline]
    fn array<const N: usize>(&mut self) -> Dec<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    #[inline]
    fn u64(&mut self) -> Dec<u64> {
        let [tag] = self.array::<1>()?;
        match tag {
            0..=250 => Ok(u64::from(tag)),
            251 => Ok(u64::from(u16::from_le_bytes(self.array()?))),
            252 => Ok(u64::from(u32::from_le_bytes(self.array()?))),
            253 => Ok(u64::from_le_bytes(self.array()?)),
            _ => err("invalid varint marker"),
        }
    }
    #[inline]
    fn u32(&mut self) -> Dec<u32> {
        u32::try_from(self.u64()?).or_else(|_| err("varint out of range for u32"))
    }
    #[inline]
    fn i64(&mut self) -> Dec<i64> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    fn i32(&mut self) -> Dec<i32> {
        let u = self.u32()?;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }
    /// A length that the remaining bytes can hold (each element takes at least one byte).
    #[inline]
    fn len(&mut self) -> Dec<usize> {
        let n = self.u64()?;
        if n > (self.b.len() - self.pos) as u64 {
            return err("length exceeds the payload");
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Dec<String> {
        let n = self.len()?;
        let s = self.take(n)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => err("string is not valid UTF-8"),
        }
    }
    fn value(&mut self, depth: usize) -> Dec<Value> {
        if depth > MAX_DEPTH {
            return err("value nested too deeply");
        }
        Ok(match self.u32()? {
            0 => Value::Null,
            1 => match self.array::<1>()? {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                _ => return err("invalid bool"),
            },
            2 => Value::Int(self.i64()?),
            3 => Value::Float(f64::from_le_bytes(self.array()?)),
            4 => Value::Str(self.string()?),
            5 => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            6 => {
                let n = self.len()?;
                let mut l = Vec::with_capacity(n);
                for _ in 0..n {
                    l.push(self.value(depth + 1)?);
                }
                Value::List(l)
            }
            7 => {
                let n = self.len()?;
                let mut m = std::collections::BTreeMap::new();
                for _ in 0..n {
                    let k = self.string()?;
                    m.insert(Key::from(k), self.value(depth + 1)?);
                }
                Value::Map(m)
            }
            _ => return err("invalid value tag"),
        })
    }
    /// A value as a number, without allocating: `None` for non-numeric values (skipped, still checked).
    fn lean_value(&mut self) -> Dec<(Option<f64>, ValueKinds)> {
        Ok(match self.u32()? {
            3 => (Some(f64::from_le_bytes(self.array()?)), ValueKinds::FLOAT),
            2 => (Some(self.i64()? as f64), ValueKinds::INT),
            1 => match self.array::<1>()? {
                [0] => (Some(0.0), ValueKinds::BOOL),
                [1] => (Some(1.0), ValueKinds::BOOL),
                _ => return err("invalid bool"),
            },
            tag => {
                self.skip_body(tag, 0)?;
                (None, if tag == 0 { ValueKinds::NULL } else { ValueKinds::OTHER })
            }
        })
    }

    /// Skips a value, checking it as [`Rd::value`] does, without allocating.
    fn skip_value(&mut self, depth: usize) -> Dec<()> {
        let tag = self.u32()?;
        self.skip_body(tag, depth)
    }

    /// Skips the rest of a value whose tag was read.
    fn skip_body(&mut self, tag: u32, depth: usize) -> Dec<()> {
        if depth > MAX_DEPTH {
            return err("value nested too deeply");
        }
        match tag {
            0 => {}
            1 => {
                if !matches!(self.array::<1>()?, [0] | [1]) {
                    return err("invalid bool");
                }
            }
            2 => {
                self.i64()?;
            }
            3 => {
                self.take(8)?;
            }
            4 => self.skip_str()?,
            5 => {
                let n = self.len()?;
                self.take(n)?;
            }
            6 => {
                for _ in 0..self.len()? {
                    self.skip_value(depth + 1)?;
                }
            }
            7 => {
                for _ in 0..self.len()? {
                    self.skip_str()?;
                    self.skip_value(depth + 1)?;
                }
            }
            _ => return err("invalid value tag"),
        }
        Ok(())
    }

    fn skip_str(&mut self) -> Dec<()> {
        let n = self.len()?;
        if std::str::from_utf8(self.take(n)?).is_err() {
            return err("string is not valid UTF-8");
        }
        Ok(())
    }

    fn opt_string(&mut self) -> Dec<Option<String>> {
        match self.array::<1>()? {
            [0] => Ok(None),
            [1] => Ok(Some(self.string()?)),
            _ => err("invalid option marker"),
        }
    }

    fn strings(&mut self) -> Dec<Vec<String>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string()?);
        }
        Ok(out)
    }

    /// The body of a `Meta` event (after its tag and `dstep`).
    fn meta(&mut self) -> Dec<MetaPatch> {
        Ok(MetaPatch {
            name: self.opt_string()?,
            notes: self.opt_string()?,
            group: self.opt_string()?,
            tags: self.strings()?,
            untags: self.strings()?,
        })
    }

    fn keyed(&mut self) -> Dec<Vec<(u32, Value)>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.u32()?;
            out.push((k, self.value(0)?));
        }
        Ok(out)
    }
}

/// The `f64` whose little-endian bits start `b` (8 bytes; shorter input reads as 0, never panics).
#[inline]
pub(crate) fn f64_at(b: &[u8]) -> f64 {
    f64::from_le_bytes(b.get(..8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]))
}

/// Nesting depth of a value (0 for scalars).
pub(crate) fn depth(v: &Value) -> usize {
    match v {
        Value::List(l) => 1 + l.iter().map(depth).max().unwrap_or(0),
        Value::Map(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What [`PayloadDecoder::next_skim`] yields of an event: its step, whether it is a `Log`, whether a `Finish`.
pub(crate) type Skim = (u64, bool, bool);

/// Decodes the events of a frame payload one at a time, with each event's end offset in the payload.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct PayloadDecoder<'a> {
    rd: Rd<'a>,
    remaining: u32,
    prev_step: u64,
    prev_time: i64,
    synced_len: u64,
    /// Key ids of the most recent tag-0 `Log` event: the keys of the dense rows (tag 5) after it.
    template: Option<Vec<u32>>,
    /// Bumped whenever the template changes.
    template_gen: u64,
    /// Scratch for [`PayloadDecoder::next_skim`].
    skim_row: Vec<(u32, Option<f64>)>,
    /// Format version of the segment the payload comes from: a version-2 kind in an older one is corruption.
    format: u16,
    /// The kind of each value of the keyed row the lean walk last returned ([`PayloadDecoder::lean_kinds`]).
    lean_kinds: Vec<ValueKinds>,
}

/// One event as the lean walk ([`PayloadDecoder::next_lean`]) sees it: no values are built.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct Lean<'a> {
    /// For a dense row: its floats' bytes (8 per key of [`PayloadDecoder::template`]); `row` is not filled.
    pub dense: Option<&'a [u8]>,
    /// The event's step.
    pub step: u64,
    /// The event's time (µs), for `Log` rows.
    pub time_us: i64,
    /// True for `Log` events (history rows), including dense rows.
    pub is_log: bool,
    /// True for `Finish` events.
    pub is_finish: bool,
    /// Payload offset just past the event.
    pub end: usize,
}

impl<'a> PayloadDecoder<'a> {
    /// How much of the segment was durable when the frame was written (see [`encode_prefix`]).
    pub(crate) fn synced_len(&self) -> u64 {
        self.synced_len
    }

    /// Starts decoding `payload` of a segment of this build's format version: reads its prefix.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn new(payload: &'a [u8]) -> Result<PayloadDecoder<'a>, DecodeError> {
        Self::for_format(payload, crate::format::FORMAT_VERSION)
    }

    /// Starts decoding `payload` of a segment of format version `format` (event kinds a later version added
    /// are refused in it as corruption).
    pub(crate) fn for_format(payload: &'a [u8], format: u16) -> Result<PayloadDecoder<'a>, DecodeError> {
        let mut rd = Rd { b: payload, pos: 0 };
        let count = rd.u32()?;
        let base_step = rd.u64()?;
        let base_time = rd.i64()?;
        let synced_len = rd.u64()?;
        if count == 0 {
            return err("frame holds no events");
        }
        // Every event takes at least one byte: a larger count is garbage, and callers size buffers by it.
        if count as usize > payload.len() - rd.pos {
            return err("event count exceeds the payload");
        }
        Ok(PayloadDecoder {
            rd,
            remaining: count,
            prev_step: base_step,
            prev_time: base_time,
            synced_len,
            template: None,
            template_gen: 0,
            skim_row: Vec::new(),
            format,
            lean_kinds: Vec::new(),
        })
    }

    /// Number of events not yet decoded.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    fn event(&mut self) -> Dec<RawEvent> {
        let tag = self.rd.u32()?;
        let dstep = self.rd.u64()?;
        self.prev_step = self.prev_step.wrapping_add(dstep);
        let step = self.prev_step;
        Ok(match tag {
            0 | 3 => {
                self.prev_time = self.prev_time.wrapping_add(self.rd.i64()?);
                let metrics = self.rd.keyed()?;
                if tag == 0 {
                    self.template = Some(metrics.iter().map(|(k, _)| *k).collect());
                    RawEvent::Log { step, time_us: self.prev_time, metrics }
                } else {
                    RawEvent::System { step, time_us: self.prev_time, metrics }
                }
            }
            5 => {
                self.prev_time = self.prev_time.wrapping_add(self.rd.i64()?);
                let bytes = self.dense_values()?;
                let template = self.template.as_deref().unwrap_or_default();
                let metrics =
                    template.iter().zip(bytes.chunks_exact(8)).map(|(k, b)| (*k, Value::Float(f64_at(b)))).collect();
                RawEvent::Log { step, time_us: self.prev_time, metrics }
            }
            1 => RawEvent::Config { step, patch: self.rd.keyed()? },
            2 => RawEvent::Summary { step, patch: self.rd.keyed()? },
            4 => RawEvent::Finish { step, exit_code: self.rd.i32()? },
            6 => {
                self.check_meta_allowed()?;
                RawEvent::Meta { step, patch: self.rd.meta()? }
            }
            _ => return err("invalid event tag"),
        })
    }

    /// A `Meta` event needs a segment of format version 2 or later.
    fn check_meta_allowed(&self) -> Dec<()> {
        if self.format < 2 {
            return err("event tag 6 (Meta) in a segment of format version 1, which has no such event");
        }
        Ok(())
    }

    /// Reads a dense row's value count, checks it against the template and returns the values' bytes.
    #[inline]
    fn dense_values(&mut self) -> Dec<&'a [u8]> {
        let n = self.rd.len()?;
        match &self.template {
            None => return err("dense row without a preceding keyed row in its frame"),
            Some(t) if t.len() != n => return err("dense row does not match its frame's key template"),
            Some(_) => {}
        }
        self.rd.take(n * 8)
    }

    /// The key ids of dense rows (the most recent keyed `Log` row's), and a number that changes with them.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn template(&self) -> (&[u32], u64) {
        (self.template.as_deref().unwrap_or_default(), self.template_gen)
    }

    /// The next event without building any value: its step, time, kind and end. For a keyed `Log` row, `row`
    /// receives its (key id, value as `f64`) pairs: floats as they are, integers converted, booleans as 0 or 1,
    /// other values `None`; a dense row's floats come as bytes in [`Lean::dense`] instead. Other kinds are
    /// skipped (still fully checked). The fast path of columnar reads.
    #[inline]
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn next_lean(&mut self, row: &mut Vec<(u32, Option<f64>)>) -> Option<Result<Lean<'a>, DecodeError>> {
        if self.remaining == 0 {
            if self.rd.pos != self.rd.b.len() {
                self.rd.pos = self.rd.b.len();
                return Some(err("trailing bytes after the last event"));
            }
            return None;
        }
        row.clear();
        self.lean_kinds.clear();
        match self.lean(row) {
            Ok(ev) => {
                self.remaining -= 1;
                Some(Ok(ev))
            }
            Err(e) => {
                self.remaining = 0;
                self.rd.pos = self.rd.b.len();
                Some(Err(e))
            }
        }
    }

    /// The kind of each value of the keyed row the lean walk last returned, in `row`'s order (empty after any
    /// other event, dense rows included: their values are all floats).
    pub(crate) fn lean_kinds(&self) -> &[ValueKinds] {
        &self.lean_kinds
    }

    /// Like [`next_event`](PayloadDecoder::next_event), with the same checks, but yields only the event's step
    /// and kind ([`Skim`]) and its end, building no values: what positions and statistics need.
    pub(crate) fn next_skim(&mut self) -> Option<Result<(Skim, usize), DecodeError>> {
        let mut row = std::mem::take(&mut self.skim_row);
        let next = self.next_lean(&mut row).map(|r| r.map(|l| ((l.step, l.is_log, l.is_finish), l.end)));
        self.skim_row = row;
        next
    }

    #[inline]
    fn lean(&mut self, row: &mut Vec<(u32, Option<f64>)>) -> Dec<Lean<'a>> {
        // The common case, a dense row whose deltas and count are one-byte varints: one bounds check.
        if let (Some(&[DENSE_TAG, dstep, dtime, n]), Some(t)) =
            (self.rd.b.get(self.rd.pos..self.rd.pos + 4), &self.template)
        {
            if dstep < 251 && dtime < 251 && usize::from(n) == t.len() {
                let start = self.rd.pos + 4;
                if let Some(bytes) = self.rd.b.get(start..start + 8 * usize::from(n)) {
                    self.prev_step = self.prev_step.wrapping_add(u64::from(dstep));
                    let zz = u64::from(dtime);
                    self.prev_time = self.prev_time.wrapping_add(((zz >> 1) as i64) ^ -((zz & 1) as i64));
                    self.rd.pos = start + bytes.len();
                    return Ok(Lean {
                        dense: Some(bytes),
                        step: self.prev_step,
                        time_us: self.prev_time,
                        is_log: true,
                        is_finish: false,
                        end: self.rd.pos,
                    });
                }
            }
        }
        let tag = self.rd.u32()?;
        let dstep = self.rd.u64()?;
        self.prev_step = self.prev_step.wrapping_add(dstep);
        let step = self.prev_step;
        let is_log = matches!(tag, 0 | 5);
        let mut dense = None;
        match tag {
            0 | 3 => {
                self.prev_time = self.prev_time.wrapping_add(self.rd.i64()?);
                let n = self.rd.len()?;
                if tag == 0 {
                    self.template_gen += 1;
                    let t = self.template.get_or_insert_with(Vec::new);
                    t.clear();
                    for _ in 0..n {
                        let k = self.rd.u32()?;
                        t.push(k);
                        let (v, kind) = self.rd.lean_value()?;
                        row.push((k, v));
                        self.lean_kinds.push(kind);
                    }
                } else {
                    for _ in 0..n {
                        self.rd.u32()?;
                        self.rd.skip_value(0)?;
                    }
                }
            }
            5 => {
                self.prev_time = self.prev_time.wrapping_add(self.rd.i64()?);
                dense = Some(self.dense_values()?);
            }
            1 | 2 => {
                let n = self.rd.len()?;
                for _ in 0..n {
                    self.rd.u32()?;
                    self.rd.skip_value(0)?;
                }
            }
            4 => {
                self.rd.i32()?;
            }
            6 => {
                self.check_meta_allowed()?;
                self.rd.meta()?;
            }
            _ => return err("invalid event tag"),
        }
        Ok(Lean { dense, step, time_us: self.prev_time, is_log, is_finish: tag == 4, end: self.rd.pos })
    }

    /// The next event and the payload offset just past it; `None` after the last. After the last event the
    /// payload must be fully consumed.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn next_event(&mut self) -> Option<Result<(RawEvent, usize), DecodeError>> {
        if self.remaining == 0 {
            if self.rd.pos != self.rd.b.len() {
                self.rd.pos = self.rd.b.len();
                return Some(err("trailing bytes after the last event"));
            }
            return None;
        }
        match self.event() {
            Ok(ev) => {
                self.remaining -= 1;
                Some(Ok((ev, self.rd.pos)))
            }
            Err(e) => {
                self.remaining = 0;
                self.rd.pos = self.rd.b.len();
                Some(Err(e))
            }
        }
    }
}

/// Decodes a frame's events with the absolute end offset of each.
/// `format` is the segment's format version (bytes 8..10 of its header: which event kinds its frames may hold).
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn frame_events(
    reader_path: &std::path::Path,
    frame_off: u64,
    payload: &[u8],
    format: u16,
) -> crate::error::Result<Vec<(RawEvent, u64)>> {
    let bad = |e: DecodeError| crate::error::Error::corrupt(reader_path, frame_off, e.0);
    let mut d = PayloadDecoder::for_format(payload, format).map_err(bad)?;
    let mut out = Vec::with_capacity(d.remaining() as usize);
    let base = frame_off + crate::format::FRAME_HEADER_LEN as u64;
    while let Some(r) = d.next_event() {
        let (ev, end) = r.map_err(bad)?;
        out.push((ev, base + end as u64));
    }
    Ok(out)
}

// --- issue 12 (uireads): what zone maps and snapshots (src/zonemap.rs) need of the payload format ---

/// Appends varint `v` (docs/FORMAT.md, Payload): the encoding of zone-map records too.
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    put_varint(out, v);
}

/// Appends a value in the payload's tagged encoding (docs/FORMAT.md, value table). Nesting is bounded by the
/// callers (the writer refuses values deeper than [`MAX_DEPTH`]; decoded values are bounded by the decoder).
pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            out.push(2);
            put_varint(out, zigzag(*i));
        }
        Value::Float(x) => {
            out.push(3);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Str(s) => {
            out.push(4);
            put_bytes(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(5);
            put_bytes(out, b);
        }
        Value::List(l) => {
            out.push(6);
            put_varint(out, l.len() as u64);
            for x in l {
                put_value(out, x);
            }
        }
        Value::Map(m) => {
            out.push(7);
            put_varint(out, m.len() as u64);
            for (k, x) in m {
                put_bytes(out, k.as_bytes());
                put_value(out, x);
            }
        }
    }
}

/// A bounds-checked reader of the payload encoding (varints, values), for zone-map records.
pub(crate) struct Reader<'a>(Rd<'a>);

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(b: &'a [u8]) -> Reader<'a> {
        Reader(Rd { b, pos: 0 })
    }
    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.0.u64()
    }
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.0.u32()
    }
    #[inline]
    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        self.0.len()
    }
    #[inline]
    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.0.array::<8>()?))
    }
    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.0.array::<1>()?[0])
    }
    #[inline]
    pub(crate) fn value(&mut self) -> Result<Value, DecodeError> {
        self.0.value(0)
    }
    #[inline]
    pub(crate) fn skip_value(&mut self) -> Result<(), DecodeError> {
        self.0.skip_value(0)
    }
    #[inline]
    pub(crate) fn meta(&mut self) -> Result<MetaPatch, DecodeError> {
        self.0.meta()
    }
    #[inline]
    pub(crate) fn done(&self) -> bool {
        self.0.pos == self.0.b.len()
    }
}

/// Where a [`PayloadDecoder`] stands between two events: enough to resume decoding there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DecState {
    /// Payload offset of the next event.
    pub pos: u64,
    /// Events left.
    pub remaining: u32,
    pub prev_step: u64,
    pub prev_time: i64,
    /// The dense-row template (`None` before the first keyed `Log` row).
    pub template: Option<Vec<u32>>,
}

/// One event as [`PayloadDecoder::next_mixed`] yields it.
pub(crate) enum Mixed<'a> {
    /// A dense row: its step and its floats' bytes (one per key of the template).
    Dense { step: u64, bytes: &'a [u8] },
    /// Any other event, fully decoded.
    Event(RawEvent),
}

impl<'a> PayloadDecoder<'a> {
    /// The decoder's position, to [`resume`](PayloadDecoder::resume) from later.
    pub(crate) fn state(&self) -> DecState {
        DecState {
            pos: self.rd.pos as u64,
            remaining: self.remaining,
            prev_step: self.prev_step,
            prev_time: self.prev_time,
            template: self.template.clone(),
        }
    }

    /// A decoder positioned at `st` in `payload` (the state must come from a decoder of the same payload,
    /// e.g. a CRC-checked zone-map record; a wrong one yields decode errors, never a panic).
    pub(crate) fn resume(payload: &'a [u8], st: &DecState) -> Result<PayloadDecoder<'a>, DecodeError> {
        let pos = usize::try_from(st.pos).ok().filter(|p| *p <= payload.len());
        let Some(pos) = pos else { return err("resume position past the payload") };
        if st.remaining as usize > payload.len() - pos {
            return err("event count exceeds the payload");
        }
        Ok(PayloadDecoder {
            rd: Rd { b: payload, pos },
            remaining: st.remaining,
            prev_step: st.prev_step,
            prev_time: st.prev_time,
            synced_len: 0,
            template: st.template.clone(),
            template_gen: 1,
            skim_row: Vec::new(),
            format: crate::format::FORMAT_VERSION,
            lean_kinds: Vec::new(),
        })
    }

    /// The next event: dense rows as their floats' bytes (no allocation), every other event decoded. The
    /// payload must be consumed exactly, as for [`next_event`](PayloadDecoder::next_event).
    pub(crate) fn next_mixed(
        &mut self,
        row: &mut Vec<(u32, Option<f64>)>,
    ) -> Option<Result<(Mixed<'a>, usize), DecodeError>> {
        if self.remaining > 0 && self.rd.b.get(self.rd.pos) == Some(&DENSE_TAG) {
            return self.next_lean(row).map(|r| {
                r.and_then(|l| match l.dense {
                    Some(bytes) => Ok((Mixed::Dense { step: l.step, bytes }, l.end)),
                    None => err("dense row expected"),
                })
            });
        }
        self.next_event().map(|r| r.map(|(ev, end)| (Mixed::Event(ev), end)))
    }
}

impl<'a> PayloadDecoder<'a> {
    /// Consumes up to `max` consecutive dense rows in their common form (one-byte deltas and count, so each is
    /// `4 + 8n` bytes), pushing their steps to `steps`. Returns the payload offset of the first row and how
    /// many were consumed (0 when the next event is anything else). What the zone-map builder aggregates
    /// column by column, without decoding the rows one at a time.
    pub(crate) fn dense_run(&mut self, max: usize, steps: &mut Vec<u64>) -> (usize, usize) {
        let start = self.rd.pos;
        let Some(k) = self.template.as_ref().map(Vec::len).filter(|k| *k < 251) else { return (start, 0) };
        let stride = 4 + 8 * k;
        let b = self.rd.b;
        let mut pos = start;
        let mut n = 0;
        while n < max && self.remaining > 0 && pos + stride <= b.len() {
            let (tag, dstep, dtime, cnt) = (b[pos], b[pos + 1], b[pos + 2], b[pos + 3]);
            if tag != DENSE_TAG || dstep >= 251 || dtime >= 251 || usize::from(cnt) != k {
                break;
            }
            self.prev_step = self.prev_step.wrapping_add(u64::from(dstep));
            let zz = u64::from(dtime);
            self.prev_time = self.prev_time.wrapping_add(((zz >> 1) as i64) ^ -((zz & 1) as i64));
            steps.push(self.prev_step);
            self.remaining -= 1;
            pos += stride;
            n += 1;
        }
        self.rd.pos = pos;
        (start, n)
    }
}

// --- end issue 12 ---

/// The reference decoder: bincode through serde (used by tests to check the hand-written one).
#[cfg(test)]
fn decode_with_bincode(payload: &[u8]) -> Option<Vec<RawEvent>> {
    let ((count, mut ps, mut pt, _synced), mut pos): ((u32, u64, i64, u64), usize) =
        bincode::serde::decode_from_slice(payload, limited()).ok()?;
    let mut out = Vec::new();
    let mut template: Option<Vec<u32>> = None;
    for _ in 0..count {
        let (disk, used): (DiskEvent, usize) =
            bincode::serde::decode_from_slice(payload.get(pos..)?, limited()).ok()?;
        pos += used;
        let mut step = |d: u64| {
            ps = ps.wrapping_add(d);
            ps
        };
        out.push(match disk {
            DiskEvent::Log { dstep, dtime, metrics } => {
                let step = step(dstep);
                pt = pt.wrapping_add(dtime);
                template = Some(metrics.iter().map(|(k, _)| *k).collect());
                RawEvent::Log { step, time_us: pt, metrics: kv(metrics) }
            }
            DiskEvent::Dense { dstep, dtime, values } => {
                let step = step(dstep);
                pt = pt.wrapping_add(dtime);
                let t = template.as_ref().filter(|t| t.len() == values.len())?;
                RawEvent::Log {
                    step,
                    time_us: pt,
                    metrics: t.iter().zip(values).map(|(k, v)| (*k, Value::Float(v))).collect(),
                }
            }
            DiskEvent::Config { dstep, patch } => RawEvent::Config { step: step(dstep), patch: kv(patch) },
            DiskEvent::Summary { dstep, patch } => RawEvent::Summary { step: step(dstep), patch: kv(patch) },
            DiskEvent::System { dstep, dtime, metrics } => {
                let step = step(dstep);
                pt = pt.wrapping_add(dtime);
                RawEvent::System { step, time_us: pt, metrics: kv(metrics) }
            }
            DiskEvent::Finish { dstep, exit_code } => RawEvent::Finish { step: step(dstep), exit_code },
            DiskEvent::Meta { dstep, name, notes, group, tags, untags } => {
                RawEvent::Meta { step: step(dstep), patch: MetaPatch { name, notes, group, tags, untags } }
            }
        });
    }
    (pos == payload.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload of `evs` (prefix then events) whose base is `base` (step, time), recording `synced_len`.
    fn payload_of(evs: &[EncEvent<'_>], base: (u64, i64), synced_len: u64) -> Vec<u8> {
        let mut body = Vec::new();
        let (mut ps, mut pt) = base;
        for e in evs {
            encode_event(&mut body, e, &mut ps, &mut pt);
        }
        let mut payload = Vec::new();
        encode_prefix(&mut payload, evs.len() as u32, base.0, base.1, synced_len);
        payload.extend_from_slice(&body);
        payload
    }

    #[test]
    fn round_trip_every_kind() {
        let f = Value::Float(f64::from_bits(0x7ff8_0000_dead_beef));
        let nested = Value::Map([(Key::from("a"), Value::List(vec![Value::Bytes(vec![1, 2]), Value::Null]))].into());
        let m: Vec<(u32, &Value)> = vec![(0, &f), (3, &nested)];
        let evs = [
            EncEvent::Log { step: 10, time_us: 1_000_000, metrics: &m },
            EncEvent::Config { step: 10, patch: &m },
            EncEvent::System { step: 10, time_us: 999_000, metrics: &m },
            EncEvent::Log { step: 12, time_us: 1_000_500, metrics: &m },
            EncEvent::Summary { step: 12, patch: &m },
            EncEvent::Finish { step: 12, exit_code: -3 },
        ];
        let payload = payload_of(&evs, (10, 1_000_000), 80);
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
    fn meta_events_are_what_bincode_writes_and_only_in_version_2() {
        let patch = MetaPatch::new().name("né").tag("b").tag("a").untag("c").group("");
        let v = Value::Int(1);
        let m: Vec<(u32, &Value)> = vec![(0, &v)];
        let empty = MetaPatch::new();
        let evs = [
            EncEvent::Log { step: 3, time_us: 5, metrics: &m },
            EncEvent::Meta { step: 3, patch: &patch },
            EncEvent::Meta { step: 300, patch: &empty },
            EncEvent::Finish { step: 300, exit_code: 0 },
        ];
        let payload = payload_of(&evs, (3, 5), 80);
        let reference = decode_with_bincode(&payload).unwrap();
        let mut d = PayloadDecoder::new(&payload).unwrap();
        let mine: Vec<RawEvent> = std::iter::from_fn(|| d.next_event()).map(|r| r.unwrap().0).collect();
        assert_eq!(mine, reference);
        assert_eq!(mine[1], RawEvent::Meta { step: 3, patch: patch.clone() });
        assert_eq!(mine[2], RawEvent::Meta { step: 300, patch: MetaPatch::new() });
        // The lean walk passes over the patches (checking them) and keeps every event's step.
        let mut d = PayloadDecoder::new(&payload).unwrap();
        let mut row = Vec::new();
        let mut steps = Vec::new();
        while let Some(r) = d.next_lean(&mut row) {
            steps.push(r.unwrap().step);
        }
        assert_eq!(steps, [3, 3, 300, 300]);
        // In a version-1 segment, tag 6 is corruption for every decoding path.
        let mut d = PayloadDecoder::for_format(&payload, 1).unwrap();
        assert!(d.next_event().unwrap().is_ok());
        let e = d.next_event().unwrap().unwrap_err();
        assert!(e.0.contains("format version 1"), "{}", e.0);
        let mut d = PayloadDecoder::for_format(&payload, 1).unwrap();
        assert!(d.next_lean(&mut row).unwrap().is_ok());
        assert!(d.next_lean(&mut row).unwrap().is_err());
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
    fn hand_decoder_agrees_with_bincode() {
        let vals = [
            Value::Float(-0.0),
            Value::Int(i64::MIN),
            Value::Str("ü".repeat(300)),
            Value::Bytes(vec![9; 70_000]),
            Value::List(vec![Value::Bool(true); 300]),
            Value::Map([(Key::from("k"), Value::Int(1 << 40))].into()),
        ];
        let m: Vec<(u32, &Value)> = vals.iter().enumerate().map(|(i, v)| (i as u32 * 100_000, v)).collect();
        let evs = [
            EncEvent::Log { step: u64::MAX - 5, time_us: -7, metrics: &m },
            EncEvent::Finish { step: u64::MAX, exit_code: i32::MIN },
            EncEvent::System { step: u64::MAX, time_us: i64::MAX, metrics: &m[..2] },
        ];
        let payload = payload_of(&evs, (u64::MAX - 5, i64::MIN + 3), 123_456);
        let reference = decode_with_bincode(&payload).unwrap();
        let mut d = PayloadDecoder::new(&payload).unwrap();
        let mut mine = Vec::new();
        while let Some(r) = d.next_event() {
            mine.push(r.unwrap().0);
        }
        assert_eq!(mine, reference);
        // On every truncation, both refuse.
        for cut in 0..payload.len() {
            let p = &payload[..cut];
            let ok = PayloadDecoder::new(p).map(|mut d| std::iter::from_fn(|| d.next_event()).all(|r| r.is_ok()));
            assert!(!ok.unwrap_or(false) || decode_with_bincode(p).is_some(), "cut {cut}");
        }
    }

    /// The hand-written encoder writes exactly what bincode 2.0.1 (`standard`) writes for the same events and
    /// prefixes: every kind, every value tag, and varints at each width boundary.
    #[test]
    fn keyed_events_and_prefixes_are_what_bincode_writes() {
        let edges = [0u64, 1, 250, 251, 252, 65_535, 65_536, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::MAX];
        let ints: Vec<i64> = vec![0, -1, 1, -126, 125, -126 * 256, i64::from(i32::MIN), i64::MIN, i64::MAX];
        let long = "é".repeat(300);
        let mut values = vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Float(f64::from_bits(0x7ff8_dead_beef_0001)),
            Value::Float(-0.0),
            Value::Str(String::new()),
            Value::Str(long.clone()),
            Value::Bytes(vec![]),
            Value::Bytes(vec![0, 255, 7]),
            Value::List(vec![Value::Int(3), Value::List(vec![Value::Null])]),
            Value::Map([(Key::from(""), Value::Int(1)), (Key::from(long.as_str()), Value::Str("x".into()))].into()),
        ];
        values.extend(ints.iter().map(|i| Value::Int(*i)));
        let ids = [0u32, 250, 251, 70_000, u32::MAX];
        let kv: Vec<(u32, &Value)> = values.iter().enumerate().map(|(i, v)| (ids[i % ids.len()], v)).collect();
        let patch = MetaPatch::new().name("n").tag("t");
        for (i, &step) in edges.iter().enumerate() {
            let time = ints[i % ints.len()];
            let prev = (edges[(i + 3) % edges.len()], ints[(i + 5) % ints.len()]);
            let (dstep, dtime) = (step.wrapping_sub(prev.0), time.wrapping_sub(prev.1));
            let cases: Vec<(EncEvent<'_>, Option<DiskEventRef<'_>>)> = vec![
                (
                    EncEvent::Log { step, time_us: time, metrics: &kv },
                    Some(DiskEventRef::Log { dstep, dtime, metrics: Keyed(&kv) }),
                ),
                (
                    EncEvent::Log { step, time_us: time, metrics: &[] },
                    Some(DiskEventRef::Log { dstep, dtime, metrics: Keyed(&[]) }),
                ),
                (
                    EncEvent::System { step, time_us: time, metrics: &kv[..3] },
                    Some(DiskEventRef::System { dstep, dtime, metrics: Keyed(&kv[..3]) }),
                ),
                (EncEvent::Config { step, patch: &kv }, Some(DiskEventRef::Config { dstep, patch: Keyed(&kv) })),
                (
                    EncEvent::Summary { step, patch: &kv[2..] },
                    Some(DiskEventRef::Summary { dstep, patch: Keyed(&kv[2..]) }),
                ),
                (
                    EncEvent::Finish { step, exit_code: time as i32 },
                    Some(DiskEventRef::Finish { dstep, exit_code: time as i32 }),
                ),
                (EncEvent::Meta { step, patch: &patch }, None),
            ];
            for (ev, reference) in cases {
                let (mut ps, mut pt) = prev;
                let mut mine = Vec::new();
                encode_event(&mut mine, &ev, &mut ps, &mut pt);
                assert_eq!(ps, step);
                if let Some(r) = reference {
                    assert_eq!(mine, bincode::serde::encode_to_vec(r, config()).unwrap(), "step {step}");
                }
                // And the decoders (hand-written and bincode's) read it back.
                let mut payload = Vec::new();
                encode_prefix(&mut payload, 1, prev.0, prev.1, step);
                let want = bincode::serde::encode_to_vec((1u32, prev.0, prev.1, step), config()).unwrap();
                assert_eq!(payload, want, "prefix");
                payload.extend_from_slice(&mine);
                let mut d = PayloadDecoder::for_format(&payload, 2).unwrap();
                let back = d.next_event().unwrap().unwrap().0;
                assert_eq!(back.step(), step);
                assert_eq!(format!("{:?}", decode_with_bincode(&payload).unwrap()[0]), format!("{back:?}"));
            }
        }
        // A value on its own (zone maps' snapshots) is the same tagged encoding.
        for v in &values {
            let mut mine = Vec::new();
            put_value(&mut mine, v);
            assert_eq!(mine, bincode::serde::encode_to_vec(Tagged(v), config()).unwrap(), "{v:?}");
        }
    }

    #[test]
    fn dense_rows_are_what_bincode_writes_and_decode_like_keyed_rows() {
        let vals = [Value::Float(0.5), Value::Float(f64::from_bits(0x7ff8_0000_0000_beef)), Value::Float(-0.0)];
        let m: Vec<(u32, &Value)> = vec![(4, &vals[0]), (9, &vals[1]), (300, &vals[2])];
        let mut body = Vec::new();
        let mut prev = (7u64, 1_000i64);
        encode_event(&mut body, &EncEvent::Log { step: 7, time_us: 1_000, metrics: &m }, &mut prev.0, &mut prev.1);
        let rows = [(8u64, 1_500i64, [1.0, f64::INFINITY, 3.0]), (1 << 40, -5, [f64::MIN, 0.0, -1.0])];
        for (step, t, v) in &rows {
            let before = body.len();
            let (dstep, dtime) = (step.wrapping_sub(prev.0), t.wrapping_sub(prev.1));
            encode_dense_row(&mut body, *step, *t, v.iter().copied(), &mut prev);
            let reference = bincode::serde::encode_to_vec(DiskEventRef::Dense { dstep, dtime, values: v }, config());
            assert_eq!(&body[before..], reference.unwrap().as_slice());
        }
        let mut payload = Vec::new();
        encode_prefix(&mut payload, 3, 7, 1_000, 80);
        payload.extend_from_slice(&body);
        let reference = decode_with_bincode(&payload).unwrap();
        let mut d = PayloadDecoder::new(&payload).unwrap();
        let mine: Vec<RawEvent> = std::iter::from_fn(|| d.next_event()).map(|r| r.unwrap().0).collect();
        assert_eq!(format!("{mine:?}"), format!("{reference:?}"));
        let RawEvent::Log { step, time_us, metrics } = &mine[2] else { panic!("{mine:?}") };
        assert_eq!((*step, *time_us), (1 << 40, -5));
        assert_eq!(metrics.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [4, 9, 300]);
        // The lean walk sees the same rows.
        let mut d = PayloadDecoder::new(&payload).unwrap();
        let mut row = Vec::new();
        let mut lean = Vec::new();
        while let Some(r) = d.next_lean(&mut row) {
            let l = r.unwrap();
            let vals: Vec<(u32, Option<u64>)> = match l.dense {
                Some(b) => {
                    d.template().0.iter().zip(b.chunks_exact(8)).map(|(k, b)| (*k, Some(f64_at(b).to_bits()))).collect()
                }
                None => row.iter().map(|(k, v)| (*k, v.map(f64::to_bits))).collect(),
            };
            lean.push((l.step, l.time_us, l.is_log, vals));
        }
        assert_eq!(lean.len(), 3);
        assert_eq!(
            lean[1].3,
            vec![(4, Some(1f64.to_bits())), (9, Some(f64::INFINITY.to_bits())), (300, Some(3f64.to_bits()))]
        );
        assert_eq!(lean[2].0, 1 << 40);
    }

    #[test]
    fn the_lean_walk_reads_non_canonical_value_tags_like_the_full_decoder() {
        // Found by fuzz/ (record_decode): a value tag written as a 3-byte varint (251, 3, 0 = Float) was
        // skipped as non-numeric by the lean walk, while the full decoder read a float.
        let mut p = Vec::new();
        encode_prefix(&mut p, 1, 0, 0, 80);
        p.extend_from_slice(&[0, 0, 0, 1, 7, 251, 3, 0]);
        p.extend_from_slice(&2.5f64.to_le_bytes());
        let mut d = PayloadDecoder::new(&p).unwrap();
        let RawEvent::Log { metrics, .. } = d.next_event().unwrap().unwrap().0 else { panic!() };
        assert_eq!(metrics, vec![(7, Value::Float(2.5))]);
        let mut row = Vec::new();
        let mut d = PayloadDecoder::new(&p).unwrap();
        assert!(d.next_lean(&mut row).unwrap().is_ok());
        assert_eq!(row, vec![(7, Some(2.5))]);
    }

    #[test]
    fn a_dense_row_needs_a_matching_template() {
        // A dense row first in its frame (no template), and one whose count differs from the template.
        let mut p = Vec::new();
        encode_prefix(&mut p, 1, 0, 0, 80);
        let mut prev = (0, 0);
        encode_dense_row(&mut p, 0, 0, [1.0].into_iter(), &mut prev);
        assert!(PayloadDecoder::new(&p).unwrap().next_event().unwrap().is_err());
        assert!(PayloadDecoder::new(&p).unwrap().next_lean(&mut Vec::new()).unwrap().is_err());
        let v = Value::Float(1.0);
        let mut p = Vec::new();
        encode_prefix(&mut p, 2, 0, 0, 80);
        let (mut ps, mut pt) = (0, 0);
        encode_event(&mut p, &EncEvent::Log { step: 0, time_us: 0, metrics: &[(0, &v)] }, &mut ps, &mut pt);
        encode_dense_row(&mut p, 1, 0, [1.0, 2.0].into_iter(), &mut (ps, pt));
        let mut d = PayloadDecoder::new(&p).unwrap();
        assert!(d.next_event().unwrap().is_ok());
        assert!(d.next_event().unwrap().is_err());
        assert!(decode_with_bincode(&p).is_none());
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        // A crafted payload: one Log with a value nested 100_000 lists deep.
        let mut p = vec![1, 0, 0, 80, 0, 0, 0, 1, 0];
        for _ in 0..100_000 {
            p.extend_from_slice(&[6, 1]);
        }
        p.push(0);
        let mut d = PayloadDecoder::new(&p).unwrap();
        assert!(d.next_event().unwrap().is_err());
    }

    #[test]
    fn event_count_beyond_the_payload_is_refused() {
        // Found by fuzz/ (record_decode): a CRC-valid frame claiming u32::MAX events made `frame_events`
        // reserve ~240 GB (`Vec::with_capacity(count)`) and abort. The count is now bounded by the bytes.
        let p = [252, 0xff, 0xff, 0xff, 0xff, 0, 0, 80, 3, 0, 0, 0];
        assert!(PayloadDecoder::new(&p).is_err());
        assert!(frame_events(std::path::Path::new("x.seg"), 80, &p, 2).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u64..2000 {
            let bytes: Vec<u8> = (0..(seed % 64)).map(|i| crate::format::mix64(seed * 131 + i) as u8).collect();
            if let Ok(mut d) = PayloadDecoder::new(&bytes) {
                while d.next_event().is_some() {}
            }
            if let Ok(mut d) = PayloadDecoder::new(&bytes) {
                let mut row = Vec::new();
                while d.next_lean(&mut row).is_some() {}
            }
        }
    }

    /// The skimming decoder accepts and rejects exactly what the full one does, with the same steps, kinds and
    /// end offsets (every prefix and every single-byte change of a payload holding every kind of value).
    #[test]
    fn skim_agrees_with_the_full_decoder() {
        let nested = Value::Map(
            [
                (Key::from("a"), Value::List(vec![Value::Bytes(vec![1, 2]), Value::Null, Value::Bool(true)])),
                (Key::from("é"), Value::Str("x y".into())),
            ]
            .into(),
        );
        let (f, i) = (Value::Float(-0.0), Value::Int(-70_000));
        let m: Vec<(u32, &Value)> = vec![(0, &f), (300, &nested), (2, &i)];
        let evs = [
            EncEvent::Log { step: 10, time_us: 1_000_000, metrics: &m },
            EncEvent::Config { step: 10, patch: &m },
            EncEvent::System { step: 10, time_us: 999_000, metrics: &m },
            EncEvent::Log { step: 400, time_us: 1_000_500, metrics: &m },
            EncEvent::Summary { step: 400, patch: &m },
            EncEvent::Finish { step: 400, exit_code: -3 },
        ];
        let payload = payload_of(&evs, (10, 1_000_000), 80);
        type Out = Vec<Result<(Skim, usize), ()>>;
        let full = |p: &[u8]| -> Option<Out> {
            let mut d = PayloadDecoder::new(p).ok()?;
            let mut out = Vec::new();
            while let Some(r) = d.next_event() {
                out.push(
                    r.map(|(e, end)| ((e.step(), e.is_log(), matches!(e, RawEvent::Finish { .. })), end))
                        .map_err(|_| ()),
                );
            }
            Some(out)
        };
        let skim = |p: &[u8]| -> Option<Out> {
            let mut d = PayloadDecoder::new(p).ok()?;
            let mut out = Vec::new();
            while let Some(r) = d.next_skim() {
                out.push(r.map_err(|_| ()));
            }
            Some(out)
        };
        assert_eq!(full(&payload).map(|o| o.iter().filter(|r| r.is_ok()).count()), Some(6));
        for n in 0..=payload.len() {
            assert_eq!(skim(&payload[..n]), full(&payload[..n]), "prefix {n}");
        }
        for at in 0..payload.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut p = payload.clone();
                p[at] ^= x;
                assert_eq!(skim(&p), full(&p), "byte {at} ^ {x:#x}");
            }
        }
    }
}
