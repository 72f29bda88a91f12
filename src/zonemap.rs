//! Zone maps and snapshots (format version 2, derived data): the file `v<K>-<S>.zmap` beside each segment.
//!
//! A **block** is a run of consecutive events of one frame: a frame is cut into blocks of at most
//! [`BLOCK_ROWS`] `Log` rows. Its record holds, per metric key, the M4 aggregate of the key's numeric values
//! (count, first, last, min, max) and its exact last value, plus the block's merged `Config` and `Summary`
//! patches and the decoder state at its first event (so a reader can decode the block alone, without the
//! frame's earlier events). A **snapshot** record holds the cumulative state of the version's own data from
//! its start up to a frame end: the last value of every `Log` key, the merged `Summary` and `Config` patches.
//!
//! [`Store::sample`](crate::Store::sample) merges the aggregates of whole blocks that fall inside one bucket
//! and re-reads only the blocks that straddle a bucket edge, a fork pointer or the range; `summary` and
//! `config` start from the last snapshot and apply the few blocks after it. docs/FORMAT.md specifies the bytes.
//!
//! Records are written under the step index's rule: only after the segment was fsynced past their frames.
//! Anything a zone file lacks (a store written by format version 1, the unsynced tail of an active segment, a
//! damaged record and what follows it) is computed from the segment's frames instead: reads never depend on
//! the zone maps being there, only on them being right when they are (CRCs; `verify` recomputes them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, MapKind, VersionView};
use crate::codec::{f64_at, put_u64, put_value, zigzag, DecState, Mixed, PayloadDecoder, RawEvent, Reader};
use crate::error::{Error, Result};
use crate::format::{
    self, build_fixed_header, check_fixed_header, crc, FRAME_HEADER_LEN, SEG_HEADER_LEN, SMALL_HEADER_LEN,
};
use crate::meta::MetaPatch;
use crate::sample::{Agg, Point};
use crate::scan::{open_segment, Ptr};
use crate::stats::Stats;
use crate::value::Value;
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// Magic of a zone-map file.
pub(crate) const ZONE_MAGIC: [u8; 8] = *b"FLKZONE\0";
/// A block closes after this many `Log` rows (or at its frame's end).
pub(crate) const BLOCK_ROWS: u64 = 256;
/// A snapshot is written once the blocks written since the last one cover this many segment bytes (and 64
/// times the last snapshot's size), and always when a segment is sealed.
pub(crate) const SNAPSHOT_BYTES: u64 = 256 << 10;
/// Largest record payload.
pub(crate) const MAX_RECORD_LEN: u32 = 16 << 20;
/// A group record follows every this many block records (docs/FORMAT.md, Zone map).
pub(crate) const GROUP_BLOCKS: u32 = 4;
/// Layout version of zone-map records (header bytes 10..12). Version 0 (no `Meta` patches, no groups) is
/// ignored: readers use the frames instead, and a writer resuming such a segment records it afresh.
pub(crate) const ZONE_LAYOUT: u16 = 1;
/// Zone maps exist only beside segments of format version 2 or later.
const FORMAT_V2: u16 = 2;
const TAG_BLOCK: u64 = 0;
const TAG_SNAPSHOT: u64 = 1;
const TAG_GROUP: u64 = 2;
const TAG_DIRECTORY: u64 = 3;

/// File name of the zone map of segment `seq` of version `version`.
pub(crate) fn zone_name(version: u32, seq: u32) -> String {
    format!("v{version}-{seq}.zmap")
}

/// The zone-map path of segment `seq` of `view`.
pub(crate) fn zone_path(view: &VersionView, seq: u32) -> PathBuf {
    view.dir.join(zone_name(view.version, seq))
}

/// Encodes a zone-map file header (32 bytes; the index header's layout with its own magic).
pub(crate) fn encode_zone_header(version: u32, seq: u32, salt: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(18);
    body.extend_from_slice(&ZONE_LAYOUT.to_le_bytes());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(&salt.to_le_bytes());
    build_fixed_header(SMALL_HEADER_LEN, &ZONE_MAGIC, &body)
}

/// One key's share of a block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyZone {
    pub key: u32,
    /// Step and exact value of the key's last `Log` value in the block.
    pub last_step: u64,
    pub last: Value,
    /// M4 aggregate of the key's numeric values (`None`: no numeric value in the block).
    pub agg: Option<Agg>,
}

/// A block record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    /// Offset of the frame in the segment and the frame's length (12-byte header included).
    pub frame: u64,
    pub frame_len: u64,
    /// Decoder state before the block's first event.
    pub state: DecState,
    /// Events in the block, and the payload offset just past the last.
    pub events: u32,
    pub end: u64,
    /// CRC of the block's bytes (payload offsets `state.pos..end`): a reader decodes the block alone.
    pub crc: u32,
    /// Steps of the block's first and last event.
    pub first_step: u64,
    pub last_step: u64,
    pub keys: Vec<KeyZone>,
    pub config: Vec<(u32, Value)>,
    pub summary: Vec<(u32, Value)>,
    /// The block's `Meta` patches composed in order (`None`: no `Meta` event).
    pub meta: Option<MetaPatch>,
    /// Statistics of the block's events (rows, events, first/last `Log` step, last event, ends with `Finish`).
    pub stats: Stats,
}

impl Block {
    /// Segment offset just past the block's frame.
    pub(crate) fn frame_end(&self) -> u64 {
        self.frame + self.frame_len
    }
}

/// The cumulative state of a version's own data (key ids of its key table).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OwnState {
    /// Last `Log` value of every key, with its step.
    pub auto: BTreeMap<u32, (u64, Value)>,
    /// Merged explicit `Summary` patches.
    pub summary: BTreeMap<u32, Value>,
    /// Merged `Config` patches.
    pub config: BTreeMap<u32, Value>,
    /// Every `Meta` patch composed in order.
    pub meta: MetaPatch,
    /// Statistics of the events.
    pub stats: Stats,
}

impl OwnState {
    /// Applies a block (later than everything applied before).
    pub(crate) fn apply(&mut self, b: &Block) {
        for k in &b.keys {
            self.auto.insert(k.key, (k.last_step, k.last.clone()));
        }
        self.config.extend(b.config.iter().cloned());
        self.summary.extend(b.summary.iter().cloned());
        if let Some(m) = &b.meta {
            self.meta.then(m);
        }
        self.stats = self.stats.then(&b.stats);
    }

    /// Applies one event.
    pub(crate) fn event(&mut self, ev: &RawEvent) {
        self.stats.push(ev);
        match ev {
            RawEvent::Log { step, metrics, .. } => {
                for (k, v) in metrics {
                    self.auto.insert(*k, (*step, v.clone()));
                }
            }
            RawEvent::Config { patch, .. } => self.config.extend(patch.iter().cloned()),
            RawEvent::Summary { patch, .. } => self.summary.extend(patch.iter().cloned()),
            RawEvent::Meta { patch, .. } => self.meta.then(patch),
            _ => {}
        }
    }

    /// Applies a dense row.
    pub(crate) fn dense(&mut self, step: u64, template: &[u32], bytes: &[u8]) {
        self.stats.record(step, true, false);
        for (k, b) in template.iter().zip(bytes.chunks_exact(8)) {
            self.auto.insert(*k, (step, Value::Float(f64_at(b))));
        }
    }
}

/// A snapshot record: the own state up to `end` (a frame end) of its segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub end: u64,
    /// Step of the last own event covered (`None`: no own event yet).
    pub last_step: Option<u64>,
    pub state: OwnState,
}

/// A group record: the M4 aggregates of the [`GROUP_BLOCKS`] block records before it, merged, and where they
/// start and end (so a reader can use it in their place).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// Number of block records covered (the ones right before the group, snapshots aside).
    pub blocks: u32,
    /// The first covered block's frame.
    pub first_frame: u64,
    /// The last covered block's frame, the frame's length, and the payload offset just past the block.
    pub last_frame: u64,
    pub last_frame_len: u64,
    pub last_end: u64,
    /// Steps of the first and the last event covered.
    pub first_step: u64,
    pub last_step: u64,
    /// Per key (by increasing id) with numeric values: the merged aggregate.
    pub keys: Vec<(u32, Agg)>,
}

impl Group {
    /// True when the last covered block ends its frame.
    pub(crate) fn ends_frame(&self) -> bool {
        self.last_end + FRAME_HEADER_LEN as u64 == self.last_frame_len
    }
}

/// Accumulates a group from consecutive blocks.
#[derive(Default)]
struct GroupAcc {
    group: Option<Group>,
    keys: BTreeMap<u32, Agg>,
    /// File offset of the first block's record (the writer's).
    first_at: u64,
}

impl GroupAcc {
    fn add(&mut self, b: &Block) {
        let g = self.group.get_or_insert_with(|| Group {
            blocks: 0,
            first_frame: b.frame,
            last_frame: 0,
            last_frame_len: 0,
            last_end: 0,
            first_step: b.first_step,
            last_step: 0,
            keys: Vec::new(),
        });
        g.blocks += 1;
        g.last_frame = b.frame;
        g.last_frame_len = b.frame_len;
        g.last_end = b.end;
        g.last_step = b.last_step;
        for k in &b.keys {
            if let Some(a) = &k.agg {
                match self.keys.get_mut(&k.key) {
                    Some(x) => x.then(a),
                    None => {
                        self.keys.insert(k.key, *a);
                    }
                }
            }
        }
    }

    /// The group, once it covers `n` blocks.
    fn take_if(&mut self, n: u32) -> Option<Group> {
        if self.group.as_ref().is_none_or(|g| g.blocks < n) {
            return None;
        }
        let mut g = self.group.take()?;
        g.keys = std::mem::take(&mut self.keys).into_iter().collect();
        Some(g)
    }
}

/// The group of `blocks` (consecutive), as the writer records it.
pub(crate) fn group_of(blocks: &[Block]) -> Option<Group> {
    let mut acc = GroupAcc::default();
    for b in blocks {
        acc.add(b);
    }
    acc.take_if(blocks.len() as u32)
}

/// A parsed record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Block(Box<Block>),
    Snapshot(Box<Snapshot>),
    Group(Group),
    /// Where every group record of the file is: (file offset of its first block record, of the group record).
    Directory(Vec<(u64, u64)>),
}

/// The payload of a directory record.
pub(crate) fn encode_directory(groups: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 6 * groups.len());
    put_u64(&mut out, TAG_DIRECTORY);
    put_u64(&mut out, groups.len() as u64);
    for (b, g) in groups {
        put_u64(&mut out, *b);
        put_u64(&mut out, *g);
    }
    out
}

/// The groups of parsed records `(offset, record)`: (offset of the first covered block record, of the group).
pub(crate) fn groups_in(records: &[(u64, Record)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut blocks: Vec<u64> = Vec::new();
    for (at, r) in records {
        match r {
            Record::Block(_) => blocks.push(*at),
            Record::Group(g) => {
                if let Some(first) = blocks.len().checked_sub(g.blocks as usize).and_then(|i| blocks.get(i)) {
                    out.push((*first, *at));
                }
                blocks.clear();
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------- encoding

fn put_kv(out: &mut Vec<u8>, kv: &[(u32, Value)]) {
    put_u64(out, kv.len() as u64);
    for (k, v) in kv {
        put_u64(out, u64::from(*k));
        put_value(out, v);
    }
}

fn put_point(out: &mut Vec<u8>, p: Point) {
    put_u64(out, p.step);
    out.extend_from_slice(&p.value.to_bits().to_le_bytes());
}

fn put_opt_point(out: &mut Vec<u8>, p: Option<Point>) {
    match p {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_point(out, p);
        }
    }
}

/// The payload of a block record.
pub(crate) fn encode_block(b: &Block) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 48 * b.keys.len());
    put_u64(&mut out, TAG_BLOCK);
    put_u64(&mut out, b.frame);
    put_u64(&mut out, b.frame_len);
    put_u64(&mut out, b.state.pos);
    put_u64(&mut out, u64::from(b.state.remaining));
    put_u64(&mut out, b.state.prev_step);
    put_u64(&mut out, zigzag(b.state.prev_time));
    match &b.state.template {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            put_u64(&mut out, t.len() as u64);
            for k in t {
                put_u64(&mut out, u64::from(*k));
            }
        }
    }
    put_u64(&mut out, u64::from(b.events));
    put_u64(&mut out, b.end);
    out.extend_from_slice(&b.crc.to_le_bytes());
    put_u64(&mut out, b.first_step);
    put_u64(&mut out, b.last_step);
    put_u64(&mut out, b.keys.len() as u64);
    for k in &b.keys {
        put_u64(&mut out, u64::from(k.key));
        put_u64(&mut out, k.last_step);
        put_value(&mut out, &k.last);
        match &k.agg {
            None => put_u64(&mut out, 0),
            Some(a) => put_agg(&mut out, a),
        }
    }
    put_kv(&mut out, &b.config);
    put_kv(&mut out, &b.summary);
    match &b.meta {
        None => out.push(0),
        Some(m) => {
            out.push(1);
            put_patch(&mut out, m);
        }
    }
    put_stats(&mut out, &b.stats);
    out
}

fn put_opt_u64(out: &mut Vec<u8>, x: Option<u64>) {
    match x {
        None => out.push(0),
        Some(x) => {
            out.push(1);
            put_u64(out, x);
        }
    }
}

/// Statistics: rows, events, then first/last `Log` step and last event step as options, then a finish byte.
fn put_stats(out: &mut Vec<u8>, s: &Stats) {
    put_u64(out, s.rows);
    put_u64(out, s.events);
    put_opt_u64(out, s.first_log);
    put_opt_u64(out, s.last_log);
    put_opt_u64(out, s.last_event);
    out.push(u8::from(s.last_is_finish));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A `Meta` patch as a `Meta` event's fields: three options of string, then the tags and the untags.
fn put_patch(out: &mut Vec<u8>, m: &MetaPatch) {
    for f in [&m.name, &m.notes, &m.group] {
        match f {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_str(out, s);
            }
        }
    }
    for list in [&m.tags, &m.untags] {
        put_u64(out, list.len() as u64);
        for t in list {
            put_str(out, t);
        }
    }
}

fn put_agg(out: &mut Vec<u8>, a: &Agg) {
    put_u64(out, a.count);
    put_point(out, a.first);
    put_point(out, a.last);
    put_opt_point(out, a.min);
    put_opt_point(out, a.max);
}

/// The payload of a group record.
pub(crate) fn encode_group(g: &Group) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + 48 * g.keys.len());
    put_u64(&mut out, TAG_GROUP);
    put_u64(&mut out, u64::from(g.blocks));
    put_u64(&mut out, g.first_frame);
    put_u64(&mut out, g.last_frame);
    put_u64(&mut out, g.last_frame_len);
    put_u64(&mut out, g.last_end);
    put_u64(&mut out, g.first_step);
    put_u64(&mut out, g.last_step);
    put_u64(&mut out, g.keys.len() as u64);
    for (k, a) in &g.keys {
        put_u64(&mut out, u64::from(*k));
        put_agg(&mut out, a);
    }
    out
}

/// The payload of a snapshot record.
pub(crate) fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, TAG_SNAPSHOT);
    put_u64(&mut out, s.end);
    match s.last_step {
        None => out.push(0),
        Some(x) => {
            out.push(1);
            put_u64(&mut out, x);
        }
    }
    put_u64(&mut out, s.state.auto.len() as u64);
    for (k, (step, v)) in &s.state.auto {
        put_u64(&mut out, u64::from(*k));
        put_u64(&mut out, *step);
        put_value(&mut out, v);
    }
    let summary: Vec<_> = s.state.summary.iter().map(|(k, v)| (*k, v.clone())).collect();
    put_kv(&mut out, &summary);
    let config: Vec<_> = s.state.config.iter().map(|(k, v)| (*k, v.clone())).collect();
    put_kv(&mut out, &config);
    put_patch(&mut out, &s.state.meta);
    put_stats(&mut out, &s.state.stats);
    out
}

/// Frames a record payload at file offset `at`: `len u32`, CRC(salt ‖ at ‖ len ‖ payload) `u32`, payload,
/// `len u32` again (so the file can be read backwards from its end).
pub(crate) fn frame_record(salt: u64, at: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&len.to_le_bytes());
    let c = crc(&[&salt.to_le_bytes(), &at.to_le_bytes(), &len.to_le_bytes(), payload]);
    out.extend_from_slice(&c.to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out
}

// ---------------------------------------------------------------- decoding

type D<T> = std::result::Result<T, crate::codec::DecodeError>;

fn bad<T>(what: &str) -> D<T> {
    Err(crate::codec::DecodeError(what.to_string()))
}

fn get_point(r: &mut Reader<'_>) -> D<Point> {
    Ok(Point { step: r.u64()?, value: r.f64()? })
}

fn get_opt_point(r: &mut Reader<'_>) -> D<Option<Point>> {
    match r.byte()? {
        0 => Ok(None),
        1 => Ok(Some(get_point(r)?)),
        _ => bad("bad option byte"),
    }
}

fn get_agg(r: &mut Reader<'_>, count: u64) -> D<Agg> {
    Ok(Agg { count, first: get_point(r)?, last: get_point(r)?, min: get_opt_point(r)?, max: get_opt_point(r)? })
}

fn get_opt_u64(r: &mut Reader<'_>) -> D<Option<u64>> {
    match r.byte()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        _ => bad("bad option byte"),
    }
}

fn get_stats(r: &mut Reader<'_>) -> D<Stats> {
    Ok(Stats {
        rows: r.u64()?,
        events: r.u64()?,
        first_log: get_opt_u64(r)?,
        last_log: get_opt_u64(r)?,
        last_event: get_opt_u64(r)?,
        last_is_finish: match r.byte()? {
            0 => false,
            1 => true,
            _ => return bad("bad bool byte"),
        },
    })
}

fn get_kv(r: &mut Reader<'_>) -> D<Vec<(u32, Value)>> {
    let n = r.len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((r.u32()?, r.value()?));
    }
    Ok(out)
}

/// Decodes a record payload; `lite` skips what `sample` does not use (blocks' last values and patches, which
/// are still checked), so nothing is allocated for them.
pub(crate) fn decode_record_with(payload: &[u8], lite: bool) -> D<Record> {
    let mut r = Reader::new(payload);
    let rec = match r.u64()? {
        TAG_BLOCK => {
            let frame = r.u64()?;
            let frame_len = r.u64()?;
            let pos = r.u64()?;
            let remaining = r.u32()?;
            let prev_step = r.u64()?;
            let zz = r.u64()?;
            let prev_time = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            let template = match r.byte()? {
                0 => None,
                1 => {
                    let n = r.len()?;
                    let mut t = Vec::with_capacity(n);
                    for _ in 0..n {
                        t.push(r.u32()?);
                    }
                    Some(t)
                }
                _ => return bad("bad option byte"),
            };
            let events = r.u32()?;
            let end = r.u64()?;
            let crc = u32::from_le_bytes([r.byte()?, r.byte()?, r.byte()?, r.byte()?]);
            let first_step = r.u64()?;
            let last_step = r.u64()?;
            let n = r.len()?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let key = r.u32()?;
                let ls = r.u64()?;
                let last = if lite {
                    r.skip_value()?;
                    Value::Null
                } else {
                    r.value()?
                };
                let count = r.u64()?;
                let agg = if count == 0 { None } else { Some(get_agg(&mut r, count)?) };
                keys.push(KeyZone { key, last_step: ls, last, agg });
            }
            let (config, summary) = if lite {
                for _ in 0..2 {
                    for _ in 0..r.len()? {
                        r.u32()?;
                        r.skip_value()?;
                    }
                }
                (Vec::new(), Vec::new())
            } else {
                (get_kv(&mut r)?, get_kv(&mut r)?)
            };
            let meta = match r.byte()? {
                0 => None,
                1 => Some(r.meta()?),
                _ => return bad("bad option byte"),
            };
            let stats = get_stats(&mut r)?;
            if events == 0 || frame_len < FRAME_HEADER_LEN as u64 || end < pos || first_step > last_step {
                return bad("inconsistent block record");
            }
            Record::Block(Box::new(Block {
                frame,
                frame_len,
                state: DecState { pos, remaining, prev_step, prev_time, template },
                events,
                end,
                crc,
                first_step,
                last_step,
                keys,
                config,
                summary,
                meta,
                stats,
            }))
        }
        TAG_SNAPSHOT => {
            let end = r.u64()?;
            let last_step = match r.byte()? {
                0 => None,
                1 => Some(r.u64()?),
                _ => return bad("bad option byte"),
            };
            let mut state = OwnState::default();
            let n = r.len()?;
            for _ in 0..n {
                let k = r.u32()?;
                let step = r.u64()?;
                state.auto.insert(k, (step, r.value()?));
            }
            state.summary = get_kv(&mut r)?.into_iter().collect();
            state.config = get_kv(&mut r)?.into_iter().collect();
            state.meta = r.meta()?;
            state.stats = get_stats(&mut r)?;
            Record::Snapshot(Box::new(Snapshot { end, last_step, state }))
        }
        TAG_DIRECTORY => {
            let n = r.len()?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push((r.u64()?, r.u64()?));
            }
            Record::Directory(out)
        }
        TAG_GROUP => {
            let blocks = r.u32()?;
            let (first_frame, last_frame, last_frame_len, last_end) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let (first_step, last_step) = (r.u64()?, r.u64()?);
            let n = r.len()?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.u32()?;
                let count = r.u64()?;
                if count == 0 {
                    return bad("empty aggregate in a group record");
                }
                keys.push((k, get_agg(&mut r, count)?));
            }
            if blocks == 0 || first_step > last_step || last_frame < first_frame {
                return bad("inconsistent group record");
            }
            Record::Group(Group {
                blocks,
                first_frame,
                last_frame,
                last_frame_len,
                last_end,
                first_step,
                last_step,
                keys,
            })
        }
        _ => return bad("unknown zone record tag"),
    };
    if !r.done() {
        return bad("trailing bytes in a zone record");
    }
    Ok(rec)
}

/// The records of a zone file's bytes from its start: the valid prefix, where it ends, and why it ends early
/// (`Some(reason)` when a record fails its checks before the end of the file).
pub(crate) struct Parsed {
    pub records: Vec<(u64, Record)>,
    pub valid_len: u64,
    pub damage: Option<(u64, String)>,
}

/// Checks the header of a zone file's bytes.
pub(crate) fn check_header(path: &Path, bytes: &[u8], version: u32, seq: u32, salt: u64) -> Result<()> {
    let h = check_fixed_header(path, bytes, SMALL_HEADER_LEN, &ZONE_MAGIC)?;
    if h[10..28] != encode_zone_header(version, seq, salt)[10..28] {
        return Err(Error::corrupt(path, 0, "zone map header names another segment"));
    }
    Ok(())
}

/// True when `bytes` start with a valid zone-map header of layout version 0 for this segment: a zone map of an
/// earlier build, which readers ignore (see [`ZONE_LAYOUT`]).
pub(crate) fn old_layout(path: &Path, bytes: &[u8], version: u32, seq: u32, salt: u64) -> bool {
    let Ok(h) = check_fixed_header(path, bytes, SMALL_HEADER_LEN, &ZONE_MAGIC) else { return false };
    let want = encode_zone_header(version, seq, salt);
    h[10..12] == [0, 0] && h[12..28] == want[12..28]
}

/// The record at `at` in `bytes` (which start at file offset `base`), with its framed length.
fn record_at(bytes: &[u8], base: u64, at: u64, salt: u64) -> std::result::Result<(Record, u64), String> {
    record_at_with(bytes, base, at, salt, false)
}

fn record_at_with(
    bytes: &[u8],
    base: u64,
    at: u64,
    salt: u64,
    lite: bool,
) -> std::result::Result<(Record, u64), String> {
    let i = (at - base) as usize;
    let head = bytes.get(i..i + 8).ok_or("truncated record header")?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD_LEN {
        return Err("record length out of range".into());
    }
    let payload = bytes.get(i + 8..i + 8 + len as usize).ok_or("truncated record")?;
    let trailer = bytes.get(i + 8 + len as usize..i + 12 + len as usize).ok_or("truncated record trailer")?;
    if crc(&[&salt.to_le_bytes(), &at.to_le_bytes(), &len.to_le_bytes(), payload]) != stored
        || trailer != len.to_le_bytes()
    {
        return Err("record checksum mismatch".into());
    }
    let rec = decode_record_with(payload, lite).map_err(|e| e.0)?;
    Ok((rec, u64::from(len) + 12))
}

/// Parses a whole zone file's bytes (header included).
pub(crate) fn parse(bytes: &[u8], salt: u64) -> Parsed {
    parse_with(bytes, salt, false)
}

fn parse_with(bytes: &[u8], salt: u64, lite: bool) -> Parsed {
    let mut records = Vec::new();
    let mut at = SMALL_HEADER_LEN as u64;
    let len = bytes.len() as u64;
    while at < len {
        match record_at_with(bytes, 0, at, salt, lite) {
            Ok((rec, n)) => {
                records.push((at, rec));
                at += n;
            }
            Err(why) => return Parsed { records, valid_len: at, damage: Some((at, why)) },
        }
    }
    Parsed { records, valid_len: at, damage: None }
}

/// Reads a zone file: `None` if it is missing or its header is bad (derived data: the caller reads frames).
fn read_file(cat: &Catalog, view: &VersionView, seq: u32) -> Option<Vec<u8>> {
    let path = zone_path(view, seq);
    let bytes = crate::catalog::read_all(&*cat.vfs, &path).ok()?;
    let salt = format::segment_salt(view.header.nonce, seq);
    check_header(&path, &bytes, view.version, seq, salt).ok()?;
    Some(bytes)
}

/// All valid records of segment `seq`'s zone map, in order (empty when it has none).
pub(crate) fn load(cat: &Catalog, view: &VersionView, seq: u32) -> Vec<Record> {
    load_with(cat, view, seq, false)
}

/// [`load`], `lite` as in [`decode_record_with`].
pub(crate) fn load_with(cat: &Catalog, view: &VersionView, seq: u32, lite: bool) -> Vec<Record> {
    let Some(bytes) = read_file(cat, view, seq) else { return Vec::new() };
    let salt = format::segment_salt(view.header.nonce, seq);
    parse_with(&bytes, salt, lite).records.into_iter().map(|(_, r)| r).collect()
}

/// The records at the end of segment `seq`'s zone map, read backwards from the file's end until `stop` holds
/// for one (included): `(records in file order, true)` if found, else every valid record and false. Reads
/// 16 KiB first (growing 4x), so a summary costs the same whatever the history length.
pub(crate) fn tail(cat: &Catalog, view: &VersionView, seq: u32, stop: impl Fn(&Record) -> bool) -> (Vec<Record>, bool) {
    let path = zone_path(view, seq);
    let salt = format::segment_salt(view.header.nonce, seq);
    let Ok(file) = cat.vfs.open(&path, OpenMode::Read) else { return (Vec::new(), false) };
    let Ok(len) = file.len() else { return (Vec::new(), false) };
    let mut head = [0u8; SMALL_HEADER_LEN];
    if file.read_exact_at(&mut head, 0).is_err() || check_header(&path, &head, view.version, seq, salt).is_err() {
        return (Vec::new(), false);
    }
    let floor = SMALL_HEADER_LEN as u64;
    let mut chunk = 16u64 << 10;
    loop {
        let start = len.saturating_sub(chunk).max(floor);
        let mut buf = vec![0u8; (len - start) as usize];
        if file.read_exact_at(&mut buf, start).is_err() {
            return (Vec::new(), false);
        }
        let mut out = Vec::new();
        let mut end = len;
        let mut found = false;
        let mut broken = false;
        while end > start {
            // The trailer names the record's length.
            let Some(t) = end.checked_sub(4).filter(|t| *t >= start) else { break };
            let i = (t - start) as usize;
            let n = u64::from(u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]));
            let Some(at) = end.checked_sub(n + 12).filter(|a| *a >= floor) else {
                broken = true;
                break;
            };
            if at < start {
                break; // needs a bigger chunk
            }
            match record_at(&buf, start, at, salt) {
                Ok((rec, _)) => {
                    let hit = stop(&rec);
                    out.push(rec);
                    end = at;
                    if hit {
                        found = true;
                        break;
                    }
                }
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            // A torn or damaged record: fall back to the valid prefix read forwards.
            let recs = load(cat, view, seq);
            let pos = recs.iter().rposition(&stop);
            return match pos {
                Some(p) => (recs[p..].to_vec(), true),
                None => (recs, false),
            };
        }
        if found || end == floor {
            out.reverse();
            return (out, found);
        }
        if start == floor {
            out.reverse();
            return (out, false);
        }
        chunk *= 4;
    }
}

// ---------------------------------------------------------------- building blocks from a frame

/// Accumulates one block.
struct Builder {
    block: Block,
    logs: u64,
    /// The block's keys, and the index in `keys` of each key id (`u32::MAX`: not yet in the block).
    keys: Vec<KeyZone>,
    slot: Vec<u32>,
    config: BTreeMap<u32, Value>,
    summary: BTreeMap<u32, Value>,
    meta: Option<MetaPatch>,
}

fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

impl Builder {
    fn new(frame: u64, frame_len: u64, state: DecState) -> Builder {
        Builder {
            block: Block {
                frame,
                frame_len,
                state,
                events: 0,
                end: 0,
                crc: 0,
                first_step: 0,
                last_step: 0,
                keys: Vec::new(),
                config: Vec::new(),
                summary: Vec::new(),
                meta: None,
                stats: Stats::default(),
            },
            logs: 0,
            keys: Vec::new(),
            slot: Vec::new(),
            config: BTreeMap::new(),
            summary: BTreeMap::new(),
            meta: None,
        }
    }

    #[inline]
    fn zone(&mut self, step: u64, k: u32) -> &mut KeyZone {
        let i = k as usize;
        if i >= 1 << 20 {
            // Key ids are dense from 0; a huge one is looked up without sizing anything by it.
            let j = match self.keys.iter().position(|z| z.key == k) {
                Some(j) => j,
                None => {
                    self.keys.push(KeyZone { key: k, last_step: step, last: Value::Null, agg: None });
                    self.keys.len() - 1
                }
            };
            return &mut self.keys[j];
        }
        if i >= self.slot.len() {
            self.slot.resize(i + 1, u32::MAX);
        }
        if self.slot[i] == u32::MAX {
            self.slot[i] = self.keys.len() as u32;
            self.keys.push(KeyZone { key: k, last_step: step, last: Value::Null, agg: None });
        }
        let j = self.slot[i] as usize;
        &mut self.keys[j]
    }

    #[inline]
    fn float(&mut self, step: u64, k: u32, x: f64) {
        let z = self.zone(step, k);
        z.last_step = step;
        z.last = Value::Float(x);
        match &mut z.agg {
            Some(a) => a.push(step, x),
            None => z.agg = Some(Agg::one(step, x)),
        }
    }

    /// Adds the aggregate of a run of float values of key `k` (later than everything added before).
    fn floats(&mut self, k: u32, agg: &Agg) {
        let z = self.zone(agg.first.step, k);
        z.last_step = agg.last.step;
        z.last = Value::Float(agg.last.value);
        match &mut z.agg {
            Some(a) => a.then(agg),
            None => z.agg = Some(*agg),
        }
    }

    fn value(&mut self, step: u64, k: u32, v: Value) {
        let n = numeric(&v);
        let z = self.zone(step, k);
        z.last_step = step;
        z.last = v;
        if let Some(x) = n {
            match &mut z.agg {
                Some(a) => a.push(step, x),
                None => z.agg = Some(Agg::one(step, x)),
            }
        }
    }

    fn step(&mut self, step: u64, end: usize) {
        if self.block.events == 0 {
            self.block.first_step = step;
        }
        self.block.events += 1;
        self.block.last_step = step;
        self.block.end = end as u64;
    }

    fn finish(mut self, payload: &[u8]) -> Block {
        let bytes = payload.get(self.block.state.pos as usize..self.block.end as usize).unwrap_or_default();
        self.block.crc = crc(&[bytes]);
        self.keys.sort_by_key(|z| z.key);
        self.block.keys = self.keys;
        self.block.config = self.config.into_iter().collect();
        self.block.summary = self.summary.into_iter().collect();
        self.block.meta = self.meta;
        self.block
    }
}

/// The M4 aggregates of columns `cols` of `steps.len()` (>= 1) dense rows of `k` floats starting at payload
/// offset `start` (rows of `4 + 8k` bytes), appended to `out` in column order: the same results as pushing
/// each column's values one by one ([`Agg::push`]). One pass over the rows updates up to 8 columns at a time,
/// so their comparisons do not wait on each other.
pub(crate) fn columns_agg(
    payload: &[u8],
    start: usize,
    k: usize,
    cols: std::ops::Range<usize>,
    steps: &[u64],
    out: &mut Vec<Agg>,
) {
    const W: usize = 8;
    let stride = 4 + 8 * k;
    let n = steps.len();
    if n == 0 {
        return;
    }
    let rows = payload.get(start..).unwrap_or_default();
    // A row past the payload's end reads as zeros (a caller passes only rows the decoder has checked).
    let at = |r: usize, j: usize| f64_at(rows.get(r * stride + 4 + 8 * j..).unwrap_or_default());
    for c0 in cols.clone().step_by(W) {
        let m = W.min(cols.end - c0);
        // Strict comparisons from the infinities keep the earliest of equals and skip NaNs; a column whose
        // non-NaN values are all +inf (or all -inf) never passes them and is found by the slow path below.
        let (mut lo, mut lo_i) = ([f64::INFINITY; W], [usize::MAX; W]);
        let (mut hi, mut hi_i) = ([f64::NEG_INFINITY; W], [usize::MAX; W]);
        // Selects, not branches: which values set a new extreme is data, not a pattern.
        let mut take = |j: usize, r: usize, x: f64| {
            let (lt, gt) = (x < lo[j], x > hi[j]);
            lo_i[j] = if lt { r } else { lo_i[j] };
            hi_i[j] = if gt { r } else { hi_i[j] };
            lo[j] = f64::from_bits(if lt { x.to_bits() } else { lo[j].to_bits() });
            hi[j] = f64::from_bits(if gt { x.to_bits() } else { hi[j].to_bits() });
        };
        let mut done = 0;
        for (r, row) in rows.chunks_exact(stride).take(n).enumerate() {
            let row = &row[4 + 8 * c0..];
            for j in 0..m {
                take(j, r, f64_at(&row[8 * j..]));
            }
            done = r + 1;
        }
        for r in done..n {
            for j in 0..m {
                take(j, r, at(r, c0 + j));
            }
        }
        for j in 0..m {
            let col = c0 + j;
            let find = |v: f64| (0..n).find(|r| at(*r, col) == v).unwrap_or(usize::MAX);
            let lo_at = if lo_i[j] == usize::MAX { find(f64::INFINITY) } else { lo_i[j] };
            let hi_at = if hi_i[j] == usize::MAX { find(f64::NEG_INFINITY) } else { hi_i[j] };
            let point = |r: usize| Point { step: steps[r], value: at(r, col) };
            out.push(Agg {
                count: n as u64,
                first: point(0),
                last: point(n - 1),
                min: (lo_at != usize::MAX).then(|| point(lo_at)),
                max: (hi_at != usize::MAX).then(|| point(hi_at)),
            });
        }
    }
}

/// Cuts the frame at segment offset `off` (its payload `payload`) into blocks.
pub(crate) fn blocks_of(off: u64, payload: &[u8]) -> D<Vec<Block>> {
    let frame_len = (payload.len() + FRAME_HEADER_LEN) as u64;
    let mut d = PayloadDecoder::new(payload)?;
    let mut out = Vec::new();
    let mut row = Vec::new();
    let mut steps = Vec::new();
    let mut aggs = Vec::new();
    let mut cur: Option<Builder> = None;
    loop {
        if cur.is_none() {
            if d.remaining() == 0 {
                // Let the decoder check the payload's end.
                if let Some(next) = d.next_mixed(&mut row) {
                    next?;
                }
                break;
            }
            cur = Some(Builder::new(off, frame_len, d.state()));
        }
        let Some(b) = cur.as_mut() else { break };
        // The common case, dense rows in their fixed-size form: aggregated a column at a time.
        steps.clear();
        let (start, n) = d.dense_run((BLOCK_ROWS - b.logs) as usize, &mut steps);
        if n > 0 {
            let (template, _) = d.template();
            let k = template.len();
            b.step(steps[0], start + 4 + 8 * k);
            b.block.events += n as u32 - 1;
            b.block.last_step = steps[n - 1];
            b.block.end = (start + n * (4 + 8 * k)) as u64;
            b.block.stats.record_logs(steps[0], steps[n - 1], n as u64);
            aggs.clear();
            columns_agg(payload, start, k, 0..k, &steps, &mut aggs);
            for (key, agg) in template.iter().zip(&aggs) {
                b.floats(*key, agg);
            }
            b.logs += n as u64;
            if b.logs >= BLOCK_ROWS {
                if let Some(b) = cur.take() {
                    out.push(b.finish(payload));
                }
            }
            continue;
        }
        let Some(next) = d.next_mixed(&mut row) else { break };
        let (ev, end) = next?;
        let is_log = match ev {
            Mixed::Dense { step, bytes } => {
                b.step(step, end);
                b.block.stats.record(step, true, false);
                let (template, _) = d.template();
                for (k, x) in template.iter().zip(bytes.chunks_exact(8)) {
                    b.float(step, *k, f64_at(x));
                }
                true
            }
            Mixed::Event(ev) => {
                b.step(ev.step(), end);
                b.block.stats.push(&ev);
                match ev {
                    RawEvent::Log { step, metrics, .. } => {
                        for (k, v) in metrics {
                            b.value(step, k, v);
                        }
                        true
                    }
                    RawEvent::Config { patch, .. } => {
                        b.config.extend(patch);
                        false
                    }
                    RawEvent::Summary { patch, .. } => {
                        b.summary.extend(patch);
                        false
                    }
                    RawEvent::Meta { patch, .. } => {
                        b.meta.get_or_insert_with(MetaPatch::default).then(&patch);
                        false
                    }
                    _ => false,
                }
            }
        };
        if is_log {
            b.logs += 1;
            if b.logs >= BLOCK_ROWS {
                if let Some(b) = cur.take() {
                    out.push(b.finish(payload));
                }
            }
        }
    }
    if let Some(b) = cur.take() {
        out.push(b.finish(payload));
    }
    Ok(out)
}

// ---------------------------------------------------------------- the writer's side

/// The writer's zone map of its active segment: records wait in memory until the segment is fsynced.
pub(crate) struct ZoneLog {
    file: Box<dyn VfsFile>,
    salt: u64,
    len: u64,
    pending: Vec<u8>,
    /// Covered segment bytes (the end of the last block's frame), counting pending blocks.
    covered: u64,
    /// Segment offset covered by the last snapshot, and the last snapshot's payload size.
    snap_end: u64,
    snap_size: u64,
    /// The own state through `covered`, and the step of the last own event.
    state: OwnState,
    last_step: Option<u64>,
    /// False when the state of the data before this writer is unknown (earlier segments without zone maps,
    /// e.g. written by format version 1): then only blocks are recorded, no snapshots.
    known: bool,
    /// The blocks recorded since the last group record.
    groups: GroupAcc,
    /// Every group record of the file: (offset of its first block record, of the group), for the directory.
    dir: Vec<(u64, u64)>,
}

impl ZoneLog {
    /// Creates the zone map of a new segment (header written; the caller fsyncs it and the directory).
    pub(crate) fn create(
        vfs: &dyn Vfs,
        dir: &Path,
        version: u32,
        seq: u32,
        salt: u64,
        carry: Option<(OwnState, Option<u64>)>,
    ) -> std::io::Result<ZoneLog> {
        let known = carry.is_some();
        let path = dir.join(zone_name(version, seq));
        let file = vfs.open(&path, OpenMode::CreateOrOpen)?;
        let h = encode_zone_header(version, seq, salt);
        file.set_len(0)?;
        file.write_all_at(&h, 0)?;
        let (state, last_step) = carry.unwrap_or_default();
        Ok(ZoneLog {
            file,
            salt,
            len: h.len() as u64,
            pending: Vec::new(),
            covered: SEG_HEADER_LEN as u64,
            snap_end: SEG_HEADER_LEN as u64,
            snap_size: 0,
            state,
            last_step,
            known,
            groups: GroupAcc::default(),
            dir: Vec::new(),
        })
    }

    pub(crate) fn sync_file(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The state to carry into the next segment (`None` when unknown).
    pub(crate) fn carry(&self) -> Option<(OwnState, Option<u64>)> {
        self.known.then(|| (self.state.clone(), self.last_step))
    }

    /// Records the blocks of a frame just written at `off`.
    pub(crate) fn frame(&mut self, off: u64, payload: &[u8]) {
        // A frame the writer just encoded always decodes; if not, the zone map simply stops here.
        let Ok(blocks) = blocks_of(off, payload) else { return };
        for b in blocks {
            self.state.apply(&b);
            self.last_step = Some(b.last_step);
            self.covered = b.frame_end();
            let at = self.len + self.pending.len() as u64;
            let rec = frame_record(self.salt, at, &encode_block(&b));
            self.pending.extend_from_slice(&rec);
            if self.groups.group.is_none() {
                self.groups.first_at = at;
            }
            self.groups.add(&b);
            if let Some(g) = self.groups.take_if(GROUP_BLOCKS) {
                let gat = self.len + self.pending.len() as u64;
                let rec = frame_record(self.salt, gat, &encode_group(&g));
                self.pending.extend_from_slice(&rec);
                self.dir.push((self.groups.first_at, gat));
            }
        }
    }

    /// Writes the pending records (call only once the segment is fsynced past them), then a snapshot if due
    /// (or `force`d, at a seal).
    pub(crate) fn write_pending(&mut self, force: bool) -> std::io::Result<()> {
        let since = self.covered - self.snap_end;
        if self.known && since > 0 && (force || since >= SNAPSHOT_BYTES.max(64 * self.snap_size)) {
            let snap = Snapshot { end: self.covered, last_step: self.last_step, state: self.state.clone() };
            let payload = encode_snapshot(&snap);
            let rec = frame_record(self.salt, self.len + self.pending.len() as u64, &payload);
            self.pending.extend_from_slice(&rec);
            self.snap_end = self.covered;
            self.snap_size = payload.len() as u64;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.pending, self.len)?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Seals the zone map with its segment: the pending records, a final snapshot, the directory of its groups
    /// (the file's last record), fsynced.
    pub(crate) fn seal(&mut self) -> std::io::Result<()> {
        self.write_pending(true)?;
        let rec = frame_record(self.salt, self.len, &encode_directory(&self.dir));
        self.file.write_all_at(&rec, self.len)?;
        self.len += rec.len() as u64;
        self.file.sync_data()
    }

    /// Opens the zone map of the active segment `seq` of `view` after recovery (the segment is durable up to
    /// `seg_len`): keeps its valid records, cuts a torn or damaged rest, records the frames it lacks, and loads
    /// the own state. A zone map of an old format or an unreadable one is started afresh.
    pub(crate) fn resume(cat: &Catalog, view: &VersionView, seq: u32, seg_len: u64) -> Result<ZoneLog> {
        let vfs = &*cat.vfs;
        let salt = format::segment_salt(view.header.nonce, seq);
        let path = zone_path(view, seq);
        let io = |op: &'static str| move |e| Error::io(op, zone_path(view, seq), e);
        let bytes = crate::catalog::read_all(vfs, &path).ok();
        let parsed = bytes
            .as_deref()
            .filter(|b| check_header(&path, b, view.version, seq, salt).is_ok())
            .filter(|b| format::stored_version(b) == Some(format::FORMAT_VERSION))
            .map(|b| parse(b, salt));
        let mut z = match parsed {
            Some(p) => {
                let file = vfs.open(&path, OpenMode::ReadWrite).map_err(io("opening zone map"))?;
                // Keep records up to the last one that completes a frame (a torn write may have stopped
                // between the blocks of one frame), and cut the rest.
                let mut good = SMALL_HEADER_LEN as u64;
                // A group counts as complete when the block before it ends its frame.
                let mut block_done = true;
                for (i, (at, r)) in p.records.iter().enumerate() {
                    let next = p.records.get(i + 1).map_or(p.valid_len, |(a, _)| *a);
                    let framed = next - at;
                    let complete = match r {
                        Record::Block(b) => {
                            block_done = b.end + FRAME_HEADER_LEN as u64 == b.frame_len;
                            block_done
                        }
                        Record::Snapshot(_) => true,
                        Record::Group(_) => block_done,
                        Record::Directory(_) => false,
                    };
                    if complete {
                        good = at + framed;
                    }
                }
                if good < p.valid_len || p.damage.is_some() {
                    file.set_len(good).map_err(io("truncating zone map"))?;
                }
                let records: Vec<&Record> = p.records.iter().filter(|(at, _)| *at < good).map(|(_, r)| r).collect();
                let mut z = ZoneLog {
                    file,
                    salt,
                    len: good,
                    pending: Vec::new(),
                    covered: SEG_HEADER_LEN as u64,
                    snap_end: SEG_HEADER_LEN as u64,
                    snap_size: 0,
                    state: OwnState::default(),
                    last_step: None,
                    known: false,
                    groups: GroupAcc::default(),
                    dir: groups_in(&p.records).into_iter().filter(|(_, g)| *g < good).collect(),
                };
                for r in records {
                    match r {
                        Record::Block(b) => z.covered = b.frame_end(),
                        Record::Snapshot(s) => {
                            z.snap_end = s.end;
                            z.snap_size = encode_snapshot(s).len() as u64;
                        }
                        Record::Group(_) | Record::Directory(_) => {}
                    }
                }
                if z.covered > seg_len {
                    // Records of frames that are not there (cannot happen under the write-after-sync rule):
                    // start afresh rather than trust them.
                    ZoneLog::create(vfs, &view.dir, view.version, seq, salt, None).map_err(io("creating zone map"))?
                } else {
                    z
                }
            }
            None => ZoneLog::create(vfs, &view.dir, view.version, seq, salt, None).map_err(io("creating zone map"))?,
        };
        // Record the frames the zone map lacks (recovery made them durable).
        if z.covered < seg_len {
            let (mut reader, _) = open_segment(cat, view, seq)?;
            reader.seek(z.covered);
            while let Some((off, payload)) = reader.next_frame()? {
                if off >= seg_len {
                    break;
                }
                z.frame(off, payload);
            }
            z.snap_end = z.snap_end.min(z.covered);
            z.write_pending(false).map_err(io("writing zone map"))?;
            z.file.sync_data().map_err(io("syncing zone map"))?;
        }
        // The state for snapshots: only when a snapshot of this or the previous segment bounds the work (a run
        // whose earlier segments have no zone maps records blocks only; its summaries read those segments).
        let is_snap = |r: &Record| matches!(r, Record::Snapshot(_));
        let cheap = seq == 0 || tail(cat, view, seq, is_snap).1 || tail(cat, view, seq - 1, is_snap).1;
        if cheap {
            let (state, last) = own_state(cat, view, None, None)?;
            z.state = state;
            z.last_step = last;
            z.known = true;
        } else {
            z.known = false;
        }
        Ok(z)
    }
}

// ---------------------------------------------------------------- reading

/// The length of segment `seq` when it is the active one (records past it describe bytes that are gone:
/// only a disk that lost fsynced data leaves such records, and readers must not use them); `None` for a
/// sealed segment.
fn active_len(cat: &Catalog, view: &VersionView, seq: u32) -> Option<u64> {
    if view.sealed(seq) {
        return None;
    }
    Some(cat.vfs.open(&view.seg_path(seq), OpenMode::Read).and_then(|f| f.len()).unwrap_or(0))
}

/// What a [`walk`] visitor does with a block.
pub(crate) enum Use {
    /// Its record answered it: skip its rows.
    Done,
    /// Decode its rows.
    Read,
    /// Stop the whole walk.
    Stop,
}

/// Visitor of a [`walk`]: whole blocks, and the events of blocks (or frames without records) it decodes.
pub(crate) trait Visit {
    /// A block wholly inside the piece (`inside`: before the cut and within the cap) or not (then it is
    /// read whatever this returns, unless it returns `Stop`).
    fn block(&mut self, b: &Block, inside: bool) -> Use;
    /// A dense row.
    fn dense(&mut self, step: u64, template: &[u32], bytes: &[u8]) -> bool;
    /// Any other event; false stops the walk.
    fn event(&mut self, ev: &RawEvent) -> bool;
    /// A group record that lies wholly inside the piece: true if its aggregates answered it (its blocks are
    /// then skipped), false to go through its blocks. By default false.
    fn group(&mut self, _g: &Group) -> bool {
        false
    }
    /// Consecutive dense rows at `steps`, their bytes `rows` (`4 + 8n` bytes each for the `n` keys of
    /// `template`); false stops the walk. By default one [`dense`](Visit::dense) call per row.
    fn dense_run(&mut self, steps: &[u64], template: &[u32], rows: &[u8]) -> bool {
        let stride = 4 + 8 * template.len();
        for (i, s) in steps.iter().enumerate() {
            let row = rows.get(i * stride + 4..(i + 1) * stride).unwrap_or_default();
            if !self.dense(*s, template, row) {
                return false;
            }
        }
        true
    }
}

/// Outcome of walking a piece.
#[derive(PartialEq, Eq)]
pub(crate) enum Flow {
    Next,
    Stop,
}

/// Decodes the events of one frame payload from `st` (or its start), at most `limit` events, applying the
/// cut (`cut`: segment offset no event may end past) and the cap. Returns `Ok(false)` when the piece ends
/// inside (cut or cap reached) or the visitor stopped.
#[allow(clippy::too_many_arguments)]
fn decode(
    path: &Path,
    off: u64,
    base: u64,
    payload: &[u8],
    st: Option<&DecState>,
    limit: u32,
    cut: Option<u64>,
    cap: Option<u64>,
    v: &mut dyn Visit,
    stopped: &mut bool,
    format: u16,
) -> Result<bool> {
    let badf = |e: crate::codec::DecodeError| Error::corrupt(path, off, e.0);
    let mut d = match st {
        Some(s) => PayloadDecoder::resume(payload, s).map_err(badf)?,
        None => PayloadDecoder::for_format(payload, format).map_err(badf)?,
    };
    let mut row = Vec::new();
    let mut steps = Vec::new();
    let mut n = 0;
    while n < limit {
        // Dense rows in their fixed-size form go to the visitor as runs.
        steps.clear();
        let (start, m) = d.dense_run((limit - n) as usize, &mut steps);
        if m > 0 {
            n += m as u32;
            let (t, _) = d.template();
            let stride = 4 + 8 * t.len();
            // Rows past the cut or the cap end the piece.
            let mut keep = m;
            if let Some(c) = cut {
                let room = c.saturating_sub(base + start as u64) / stride as u64;
                keep = keep.min(usize::try_from(room).unwrap_or(usize::MAX));
            }
            if let Some(c) = cap {
                keep = keep.min(steps.partition_point(|s| *s <= c));
            }
            let rows = payload.get(start..start + keep * stride).unwrap_or_default();
            if keep > 0 && !v.dense_run(&steps[..keep], t, rows) {
                *stopped = true;
                return Ok(false);
            }
            if keep < m {
                return Ok(false);
            }
            continue;
        }
        let Some(next) = d.next_mixed(&mut row) else { break };
        let (ev, end) = next.map_err(badf)?;
        n += 1;
        let step = match &ev {
            Mixed::Dense { step, .. } => *step,
            Mixed::Event(e) => e.step(),
        };
        if cut.is_some_and(|c| base + end as u64 > c) || cap.is_some_and(|c| step > c) {
            return Ok(false);
        }
        let go = match ev {
            Mixed::Dense { step, bytes } => {
                let (t, _) = d.template();
                v.dense(step, t, bytes)
            }
            Mixed::Event(e) => v.event(&e),
        };
        if !go {
            *stopped = true;
            return Ok(false);
        }
    }
    Ok(true)
}

/// The records a [`walk`] goes through: a list already read, or a zone file parsed one record at a time (the
/// valid prefix; nothing is kept once passed). In `lite` mode (sample) the file's records are first located by
/// their lengths alone, so a group record can stand in for its blocks without parsing them.
enum Records {
    List(std::vec::IntoIter<Record>),
    File(FileRecords),
    None,
}

struct FileRecords {
    bytes: crate::vfs::MappedBytes,
    salt: u64,
    lite: bool,
    /// The next record's offset.
    at: u64,
    /// (`lite` only) The group records.
    groups: std::sync::Arc<GroupIndex>,
}

/// A zone map's valid group records, in file order: (offset of the first block record each covers, offset of
/// the group record, offset just past it, the group), located through the directory of a sealed segment's zone map, else by
/// hopping over the records, then CRC-checked and decoded (a damaged one is left out). A walk that uses a group
/// moves past it without touching the file's bytes again.
#[derive(Default)]
struct GroupIndex(Vec<(u64, u64, u64, Group)>);

impl Records {
    fn open(cat: &Catalog, view: &VersionView, seq: u32, lite: bool) -> Records {
        let salt = format::segment_salt(view.header.nonce, seq);
        // A sealed segment's zone map is never modified again: mapped (no copy); an active one is read.
        let path = zone_path(view, seq);
        let sealed = view.sealed(seq);
        let key = crate::catalog::Known::key(view, seq);
        let kept = if sealed { cat.maps.get(&*cat.vfs, &key, MapKind::ZoneMap, &path).ok() } else { None };
        let bytes = match &kept {
            Some(k) if check_header(&path, (*k.bytes).as_ref(), view.version, seq, salt).is_ok() => k.bytes.clone(),
            Some(_) => return Records::None,
            None => match read_file(cat, view, seq) {
                Some(b) => std::sync::Arc::new(b),
                None => return Records::None,
            },
        };
        let mut f = FileRecords { bytes, salt, lite, at: SMALL_HEADER_LEN as u64, groups: Default::default() };
        if lite {
            // A kept (sealed) zone map's groups are located, checked and decoded once.
            let build = |f: &FileRecords| std::sync::Arc::new(f.group_index(sealed));
            f.groups = match &kept {
                Some(k) => {
                    let any = k.derived.get_or_init(|| build(&f)).clone();
                    any.downcast::<GroupIndex>().unwrap_or_else(|_| build(&f))
                }
                None => build(&f),
            };
        }
        Records::File(f)
    }

    fn next(&mut self) -> Option<Record> {
        match self {
            Records::List(it) => it.next(),
            Records::File(f) => f.next(),
            Records::None => None,
        }
    }

    /// The group records (CRC-checked) and the index of the one whose first block is the next record, if any.
    fn group_here(&self) -> Option<(std::sync::Arc<GroupIndex>, usize)> {
        match self {
            Records::File(f) => f.group_here().map(|i| (f.groups.clone(), i)),
            _ => None,
        }
    }

    /// Moves on to the record at `at` (just past a group used in place of its blocks).
    fn skip_to(&mut self, at: u64) {
        if let Records::File(f) = self {
            f.at = at;
        }
    }

    /// The last block record before the record at `at`.
    fn block_before(&self, at: u64) -> Option<Block> {
        let Records::File(f) = self else { return None };
        let b: &[u8] = (*f.bytes).as_ref();
        let mut end = at;
        // Hop backwards by the trailers (a snapshot may sit between the block and the group).
        for _ in 0..3 {
            let t = end.checked_sub(4)? as usize;
            let len = u64::from(u32::from_le_bytes(b.get(t..t + 4)?.try_into().ok()?));
            let start = end.checked_sub(len + 12).filter(|s| *s >= SMALL_HEADER_LEN as u64)?;
            match record_at_with(b, 0, start, f.salt, f.lite) {
                Ok((Record::Block(blk), _)) => return Some(*blk),
                Ok(_) => end = start,
                Err(_) => return None,
            }
        }
        None
    }
}

impl FileRecords {
    /// The groups a sealed zone map's last record (its directory) lists.
    fn directory(&self) -> Option<Vec<(u64, u64)>> {
        let b: &[u8] = (*self.bytes).as_ref();
        let t = b.len().checked_sub(4)?;
        let len = u64::from(u32::from_le_bytes(b.get(t..t + 4)?.try_into().ok()?));
        let start = (b.len() as u64).checked_sub(len + 12).filter(|s| *s >= SMALL_HEADER_LEN as u64)?;
        match record_at_with(b, 0, start, self.salt, true) {
            Ok((Record::Directory(d), _)) => Some(d),
            _ => None,
        }
    }

    /// Finds the groups by hopping over the records by their lengths (no CRC yet: a group is checked when used).
    fn locate(&self) -> Vec<(u64, u64)> {
        let b: &[u8] = (*self.bytes).as_ref();
        let mut out = Vec::new();
        let mut blocks: Vec<u64> = Vec::new();
        let mut at = SMALL_HEADER_LEN;
        while let Some(head) = b.get(at..at + 8) {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len == 0 || len > MAX_RECORD_LEN as usize || at + 12 + len > b.len() {
                break;
            }
            let payload = &b[at + 8..at + 8 + len];
            match u64::from(payload[0]) {
                TAG_BLOCK => blocks.push(at as u64),
                TAG_GROUP => {
                    let mut r = Reader::new(payload);
                    let n = r.u64().and_then(|_| r.u32()).unwrap_or(0) as usize;
                    if let Some(first) = blocks.len().checked_sub(n).filter(|_| n > 0).and_then(|i| blocks.get(i)) {
                        out.push((*first, at as u64));
                    }
                    blocks.clear();
                }
                _ => {}
            }
            at += 12 + len;
        }
        out
    }

    fn next(&mut self) -> Option<Record> {
        let bytes: &[u8] = (*self.bytes).as_ref();
        if self.at >= bytes.len() as u64 {
            return None;
        }
        match record_at_with(bytes, 0, self.at, self.salt, self.lite) {
            Ok((rec, n)) => {
                self.at += n;
                Some(rec)
            }
            Err(_) => {
                self.at = bytes.len() as u64; // the valid prefix ends here
                None
            }
        }
    }

    /// The index of the group whose first block is the next record, if any.
    fn group_here(&self) -> Option<usize> {
        let g = &self.groups.0;
        let k = g.partition_point(|(first, _, _, _)| *first < self.at);
        (g.get(k)?.0 == self.at).then_some(k)
    }

    /// The groups of this zone map (see [`GroupIndex`]).
    fn group_index(&self, sealed: bool) -> GroupIndex {
        let at = self.directory().filter(|_| sealed).unwrap_or_else(|| self.locate());
        let b: &[u8] = (*self.bytes).as_ref();
        let decode = |(first, gat): (u64, u64)| match record_at_with(b, 0, gat, self.salt, true) {
            Ok((Record::Group(g), n)) => Some((first, gat, gat + n, g)),
            _ => None,
        };
        GroupIndex(at.into_iter().filter_map(decode).collect())
    }
}

/// Walks the own data of `view` up to `cut` and `cap`, from `start` (a frame start) on: blocks through their
/// records where the zone maps have them, every other frame decoded. `first` gives, for the start segment,
/// records already read (by [`tail`]) to use instead of loading its zone map.
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk(
    cat: &Catalog,
    view: &VersionView,
    cut: Option<Ptr>,
    cap: Option<u64>,
    start: Ptr,
    first: Option<Vec<Record>>,
    lite: bool,
    v: &mut dyn Visit,
) -> Result<Flow> {
    let segs = view.segs;
    if segs == 0 {
        return Ok(Flow::Next);
    }
    let last_seg = match cut {
        Some(c) if c.seg >= segs => {
            return Err(Error::corrupt(view.seg_path(c.seg), c.offset, "fork pointer past the last segment"))
        }
        Some(c) => c.seg,
        None => segs - 1,
    };
    let mut first = first;
    for seq in start.seg..=last_seg {
        let seg_cut = cut.filter(|c| c.seg == seq).map(|c| c.offset);
        let mut records = match (seq == start.seg, first.take()) {
            (true, Some(r)) => Records::List(r.into_iter()),
            _ => Records::open(cat, view, seq, lite),
        };
        let mut pos = if seq == start.seg { start.offset } else { SEG_HEADER_LEN as u64 };
        let limit = active_len(cat, view, seq);
        let mut seg_file: Option<Box<dyn VfsFile>> = None;
        let mut frame: Option<(u64, Vec<u8>)> = None;
        let mut buf: Vec<u8> = Vec::new();
        let mut seg_map: Option<crate::vfs::MappedBytes> = None;
        let path = view.seg_path(seq);
        let mut stopped = false;
        // The last block handled when it is not its frame's last (the frame is partly done); `mid_group`: it is
        // the last block of a group used in its place (read only if the records stop there).
        let mut mid: Option<Block> = None;
        let mut mid_group: Option<u64> = None;
        loop {
            if let Some((groups, i)) = records.group_here() {
                let (_, gi, next, g) = &groups.0[i];
                let gi = *gi;
                let inside = seg_cut.is_none_or(|c| g.last_frame + FRAME_HEADER_LEN as u64 + g.last_end <= c)
                    && cap.is_none_or(|c| g.last_step <= c);
                let fits = g.first_frame == pos && limit.is_none_or(|l| g.last_frame + g.last_frame_len <= l);
                if inside && fits && v.group(g) {
                    records.skip_to(*next);
                    mid = None;
                    if g.ends_frame() {
                        pos = g.last_frame + g.last_frame_len;
                        mid_group = None;
                    } else {
                        pos = g.last_frame;
                        mid_group = Some(gi);
                    }
                    continue;
                }
            }
            let Some(rec) = records.next() else { break };
            let Record::Block(b) = rec else { continue };
            mid_group = None;
            if b.frame < pos {
                continue;
            }
            if b.frame != pos || limit.is_some_and(|l| b.frame_end() > l) {
                break; // records are contiguous; anything else is read from the frames
            }
            let block_end = b.frame + FRAME_HEADER_LEN as u64 + b.end;
            let inside = seg_cut.is_none_or(|c| block_end <= c) && cap.is_none_or(|c| b.last_step <= c);
            // A block the cut or cap ends inside is read (and ends the piece) whatever the visitor wants.
            let u = if inside { v.block(&b, true) } else { Use::Read };
            match u {
                Use::Stop => return Ok(Flow::Stop),
                Use::Done => {}
                _ => {
                    // Only the block's own bytes, checked against the block's CRC, decoded from its state.
                    let p = block_bytes(cat, view, seq, &mut seg_file, &mut seg_map, &mut buf, &b)?;
                    let st = DecState { pos: 0, remaining: b.events, ..b.state.clone() };
                    let base = b.frame + FRAME_HEADER_LEN as u64 + b.state.pos;
                    let more =
                        decode(&path, b.frame, base, p, Some(&st), b.events, seg_cut, cap, v, &mut stopped, FORMAT_V2)?;
                    if stopped {
                        return Ok(Flow::Stop);
                    }
                    if !more {
                        return Ok(Flow::Next);
                    }
                }
            }
            if b.end + FRAME_HEADER_LEN as u64 == b.frame_len {
                pos = b.frame_end();
                mid = None;
            } else {
                mid = Some(*b);
            }
        }
        if let Some(gi) = mid_group {
            let b = records.block_before(gi);
            let b = b.ok_or_else(|| Error::corrupt(zone_path(view, seq), 0, "a zone map block is damaged"))?;
            mid = Some(b);
        }
        if let Some(b) = mid {
            // The records stop inside a frame (a torn write): read the rest of it.
            let p = frame_bytes(cat, view, seq, &mut seg_file, &mut frame, &b)?;
            let mut d = PayloadDecoder::resume(p, &b.state).map_err(|e| Error::corrupt(&path, b.frame, e.0))?;
            let mut row = Vec::new();
            for _ in 0..b.events {
                if let Some(r) = d.next_mixed(&mut row) {
                    r.map_err(|e| Error::corrupt(&path, b.frame, e.0))?;
                }
            }
            let st = d.state();
            let base = b.frame + FRAME_HEADER_LEN as u64;
            let more = decode(&path, b.frame, base, p, Some(&st), u32::MAX, seg_cut, cap, v, &mut stopped, FORMAT_V2)?;
            if stopped {
                return Ok(Flow::Stop);
            }
            if !more {
                return Ok(Flow::Next);
            }
            pos = b.frame_end();
        }
        // Frames without records (none when the records reach the segment's end).
        if seg_cut.is_some_and(|c| pos >= c) {
            return Ok(Flow::Next);
        }
        let seg_len = match limit {
            Some(l) => Some(l),
            None => cat.vfs.open(&path, OpenMode::Read).and_then(|f| f.len()).ok(),
        };
        if seg_cut.is_none() && pos > SEG_HEADER_LEN as u64 && seg_len.is_some_and(|l| pos >= l) {
            continue;
        }
        // The frames past the zone map's records: a few, at a known offset (not a scan of the segment).
        let mut r = crate::scan::probe_segment(cat, view, seq)?.0;
        r.seek(pos);
        // A version-1 segment's frames are decoded as such (a kind version 2 added is corruption there).
        let format = r.format();
        while let Some((off, payload)) = r.next_frame()? {
            if seg_cut.is_some_and(|c| off >= c) {
                return Ok(Flow::Next);
            }
            let base = off + FRAME_HEADER_LEN as u64;
            let more = decode(&path, off, base, payload, None, u32::MAX, seg_cut, cap, v, &mut stopped, format)?;
            if stopped {
                return Ok(Flow::Stop);
            }
            if !more {
                return Ok(Flow::Next);
            }
        }
        if let Some(c) = seg_cut {
            if r.position() < c {
                return Err(Error::corrupt(&path, c, "a fork points at bytes that are not there"));
            }
        }
    }
    Ok(Flow::Next)
}

/// The bytes of block `b` (payload offsets `pos..end` of its frame), checked against the block's CRC: a slice
/// of the segment's kept mapping when it is sealed (see [`crate::catalog::Maps`]), else read into `buf`.
fn block_bytes<'f>(
    cat: &Catalog,
    view: &VersionView,
    seq: u32,
    file: &mut Option<Box<dyn VfsFile>>,
    map: &'f mut Option<crate::vfs::MappedBytes>,
    buf: &'f mut Vec<u8>,
    b: &Block,
) -> Result<&'f [u8]> {
    let path = view.seg_path(seq);
    let missing = || Error::corrupt(&path, b.frame, "a zone map names bytes that are not in the segment");
    let n = usize::try_from(b.end - b.state.pos).ok().filter(|n| *n <= format::MAX_FRAME_LEN as usize);
    let n = n.ok_or_else(missing)?;
    let at = b.frame + FRAME_HEADER_LEN as u64 + b.state.pos;
    if map.is_none() && view.sealed(seq) {
        let key = crate::catalog::Known::key(view, seq);
        let kept = cat.maps.get(&*cat.vfs, &key, MapKind::Segment, &path);
        *map = Some(kept.map_err(|e| Error::io("mapping segment", &path, e))?.bytes.clone());
    }
    let bytes: &'f [u8] = match map {
        Some(m) => {
            let all: &[u8] = (**m).as_ref();
            usize::try_from(at).ok().and_then(|at| all.get(at..at.checked_add(n)?)).ok_or_else(missing)?
        }
        None => {
            let f = match file {
                Some(f) => f,
                None => file
                    .insert(cat.vfs.open(&path, OpenMode::Read).map_err(|e| Error::io("opening segment", &path, e))?),
            };
            buf.resize(n, 0);
            f.read_exact_at(buf, at).map_err(|_| missing())?;
            buf
        }
    };
    if crc(&[bytes]) != b.crc {
        return Err(missing());
    }
    Ok(bytes)
}

/// The payload of block `b`'s frame, read (CRC-checked, exactly its bytes) once and kept for the frame's
/// next blocks.
fn frame_bytes<'f>(
    cat: &Catalog,
    view: &VersionView,
    seq: u32,
    file: &mut Option<Box<dyn VfsFile>>,
    frame: &'f mut Option<(u64, Vec<u8>)>,
    b: &Block,
) -> Result<&'f [u8]> {
    let path = view.seg_path(seq);
    if frame.as_ref().is_none_or(|(o, _)| *o != b.frame) {
        let f = match file {
            Some(f) => f,
            None => {
                file.insert(cat.vfs.open(&path, OpenMode::Read).map_err(|e| Error::io("opening segment", &path, e))?)
            }
        };
        let missing = || Error::corrupt(&path, b.frame, "a zone map names a frame that is not there");
        let n = usize::try_from(b.frame_len).ok().filter(|n| *n <= format::MAX_FRAME_LEN as usize + FRAME_HEADER_LEN);
        let n = n.ok_or_else(missing)?;
        // Reuse the buffer of the previous frame.
        let mut buf = frame.take().map(|(_, v)| v).unwrap_or_default();
        buf.resize(n, 0);
        f.read_exact_at(&mut buf, b.frame).map_err(|_| missing())?;
        let salt = format::segment_salt(view.header.nonce, seq);
        if buf.len() < FRAME_HEADER_LEN
            || buf[..FRAME_HEADER_LEN] != crate::segment::frame_header(salt, b.frame, &buf[FRAME_HEADER_LEN..])
        {
            return Err(missing());
        }
        *frame = Some((b.frame, buf));
    }
    Ok(frame.as_ref().map(|(_, p)| p.get(FRAME_HEADER_LEN..).unwrap_or_default()).unwrap_or_default())
}

/// State visitor: the own state of a prefix.
struct StateVisit {
    state: OwnState,
    last_step: Option<u64>,
}

impl Visit for StateVisit {
    fn block(&mut self, b: &Block, inside: bool) -> Use {
        if inside {
            self.state.apply(b);
            self.last_step = Some(b.last_step);
            Use::Done
        } else {
            Use::Read
        }
    }
    fn dense(&mut self, step: u64, template: &[u32], bytes: &[u8]) -> bool {
        self.state.dense(step, template, bytes);
        self.last_step = Some(step);
        true
    }
    fn event(&mut self, ev: &RawEvent) -> bool {
        self.state.event(ev);
        self.last_step = Some(ev.step());
        true
    }
}

/// The own state of `view`'s data up to `cut` and `cap`: the last usable snapshot, then the blocks and frames
/// after it. Costs a snapshot read and at most [`SNAPSHOT_BYTES`] of blocks (plus frames without records).
pub(crate) fn own_state(
    cat: &Catalog,
    view: &VersionView,
    cut: Option<Ptr>,
    cap: Option<u64>,
) -> Result<(OwnState, Option<u64>)> {
    if view.segs == 0 {
        return Ok((OwnState::default(), None));
    }
    let last_seg = cut.map_or(view.segs - 1, |c| c.seg.min(view.segs - 1));
    let usable = |seq: u32| {
        let limit = active_len(cat, view, seq);
        move |r: &Record| match r {
            Record::Snapshot(s) => {
                limit.is_none_or(|l| s.end <= l)
                    && cut.is_none_or(|c| c.seg > seq || s.end <= c.offset)
                    && cap.is_none_or(|c| s.last_step.is_none_or(|l| l <= c))
            }
            _ => false,
        }
    };
    let mut start = (Ptr::START, None, OwnState::default(), None);
    for seq in (0..=last_seg).rev() {
        let (recs, found) = tail(cat, view, seq, usable(seq));
        if found {
            if let Some(Record::Snapshot(s)) = recs.first() {
                let rest = recs[1..].to_vec();
                start = (Ptr { seg: seq, offset: s.end }, Some(rest), s.state.clone(), s.last_step);
            }
            break;
        }
        if seq == 0 {
            // No snapshot at all: the walk starts at the beginning, with the records just read.
            start.1 = Some(recs);
        }
    }
    let (from, first, state, last_step) = start;
    let mut v = StateVisit { state, last_step };
    walk(cat, view, cut, cap, from, first, false, &mut v)?;
    Ok((v.state, v.last_step))
}

/// The statistics of `view`'s own data from the snapshot that ends its zone maps, when that snapshot covers the
/// whole of it (its end is the last segment's length): `info` without skimming frames. `None` otherwise.
pub(crate) fn own_stats(cat: &Catalog, view: &VersionView) -> Option<Stats> {
    if view.segs == 0 {
        return Some(Stats::default());
    }
    covering_snapshot(cat, view).map(|s| s.state.stats)
}

/// The snapshot that ends the zone map of `view`'s last segment when it covers the whole of its own data (its
/// end is the segment's length).
pub(crate) fn covering_snapshot(cat: &Catalog, view: &VersionView) -> Option<Snapshot> {
    let last = view.segs.checked_sub(1)?;
    let len = cat.vfs.open(&view.seg_path(last), OpenMode::Read).and_then(|f| f.len()).ok()?;
    let (recs, found) = tail(cat, view, last, |r| matches!(r, Record::Snapshot(_)));
    match recs.into_iter().next() {
        Some(Record::Snapshot(s)) if found && s.end == len => Some(*s),
        _ => None,
    }
}

// ---------------------------------------------------------------- verify

/// Checks the zone map of segment `seq` against the blocks recomputed from its frames (`blocks`, every frame
/// of the segment in order) and the own state carried from the previous segments (`state`, `None` when
/// unknown; updated to the state at the end of this segment). Returns the bytes read and the problems: in a
/// sealed segment's zone map any damage is corruption; an active one is unsynced derived data, so damage there
/// is reported as a torn tail (the next writer cuts it and records the frames again). A missing zone map is
/// fine (stores written by format version 1 have none).
pub(crate) fn verify_segment(
    vfs: &dyn Vfs,
    view: &VersionView,
    seq: u32,
    sealed: bool,
    blocks: &[Block],
    state: &mut Option<(OwnState, Option<u64>)>,
) -> (Option<u64>, Vec<crate::report::Problem>) {
    use crate::report::{Problem, ProblemKind};
    let path = zone_path(view, seq);
    let mut problems = Vec::new();
    let kind = if sealed { ProblemKind::Corrupt } else { ProblemKind::TornTail };
    let mut at_start = state.clone();
    // The state at the end of the segment, from the recomputed blocks.
    if let Some((s, last)) = state.as_mut() {
        for b in blocks {
            s.apply(b);
            *last = Some(b.last_step);
        }
    }
    if !vfs.exists(&path) {
        return (None, problems);
    }
    let bytes = match crate::catalog::read_all(vfs, &path) {
        Ok(b) => b,
        Err(e) => {
            problems.push(Problem { file: path, offset: 0, kind: ProblemKind::Corrupt, message: e.to_string() });
            return (None, problems);
        }
    };
    let n = Some(bytes.len() as u64);
    let salt = format::segment_salt(view.header.nonce, seq);
    if old_layout(&path, &bytes, view.version, seq, salt) {
        return (n, problems); // an older layout, ignored by readers (and replaced by the next writer)
    }
    if let Err(e) = check_header(&path, &bytes, view.version, seq, salt) {
        problems.push(Problem { file: path, offset: 0, kind, message: format!("zone map header: {e}") });
        return (n, problems);
    }
    let parsed = parse(&bytes, salt);
    if let Some((off, why)) = &parsed.damage {
        problems.push(Problem { file: path.clone(), offset: *off, kind, message: format!("zone map record: {why}") });
    }
    let valid_end = blocks.last().map_or(SEG_HEADER_LEN as u64, Block::frame_end);
    let mut i = 0;
    for (idx, (off, rec)) in parsed.records.iter().enumerate() {
        // In an active segment, records past its valid frames describe a torn tail (as index entries do).
        let beyond = match rec {
            Record::Block(b) => b.frame_end() > valid_end,
            Record::Snapshot(x) => x.end > valid_end,
            Record::Group(g) => g.last_frame + g.last_frame_len > valid_end,
            Record::Directory(_) => false,
        };
        if !sealed && beyond {
            break;
        }
        let bad = match rec {
            Record::Block(b) => {
                let ok = blocks.get(i).is_some_and(|want| encode_block(want) == encode_block(b));
                if ok {
                    if let Some((s, last)) = at_start.as_mut() {
                        s.apply(b);
                        *last = Some(b.last_step);
                    }
                }
                i += 1;
                (!ok).then_some("a zone map block does not match the segment's frames")
            }
            Record::Snapshot(snap) => {
                let end_ok = i > 0 && blocks.get(i - 1).is_some_and(|b| b.frame_end() == snap.end);
                let state_ok = match &at_start {
                    Some((s, last)) => {
                        let want = Snapshot { end: snap.end, last_step: *last, state: s.clone() };
                        encode_snapshot(&want) == encode_snapshot(snap)
                    }
                    None => true,
                };
                (!(end_ok && state_ok)).then_some("a zone map snapshot does not match the data before it")
            }
            Record::Group(g) => {
                let n = g.blocks as usize;
                let want = i.checked_sub(n).and_then(|from| blocks.get(from..i)).and_then(group_of);
                let ok = want.is_some_and(|w| encode_group(&w) == encode_group(g));
                (!ok).then_some("a zone map group does not match the blocks before it")
            }
            Record::Directory(d) => {
                let ok = *d == groups_in(&parsed.records[..idx]);
                (!ok).then_some("a zone map directory does not list the groups before it")
            }
        };
        if let Some(msg) = bad {
            problems.push(Problem {
                file: path.clone(),
                offset: *off,
                kind: ProblemKind::Corrupt,
                message: msg.into(),
            });
            break;
        }
    }
    (n, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_dense_row, encode_event, encode_prefix, EncEvent};

    /// `columns_agg` equals pushing each column's values one by one, for columns mixing NaNs, infinities and
    /// signed zeros (the earliest of equals wins, NaNs are counted but never the extremes).
    #[test]
    fn columns_agg_equals_pushing_each_value() {
        let pool = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1.5, -2.0, 1.5];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for case in 0..4000 {
            let k = 1 + case % 11;
            let n = 1 + case % 17;
            let mut rows = Vec::new();
            let mut cols = vec![Vec::new(); k];
            for _ in 0..n {
                rows.extend_from_slice(&[0u8; 4]);
                for col in cols.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let x = pool[(seed % pool.len() as u64) as usize];
                    rows.extend_from_slice(&x.to_le_bytes());
                    col.push(x);
                }
            }
            let steps: Vec<u64> = (0..n as u64).map(|i| 10 + 3 * i).collect();
            let mut got = Vec::new();
            columns_agg(&rows, 0, k, 0..k, &steps, &mut got);
            assert_eq!(got.len(), k);
            // One column alone (as a sample with a key filter asks) is that column's aggregate.
            let j = case % k;
            let mut one = Vec::new();
            columns_agg(&rows, 0, k, j..j + 1, &steps, &mut one);
            assert_eq!(format!("{:?}", one), format!("{:?}", [got[j]]));
            for (col, got) in cols.iter().zip(&got) {
                let mut want = Agg::one(steps[0], col[0]);
                for (s, x) in steps.iter().zip(col).skip(1) {
                    want.push(*s, *x);
                }
                let bits = |p: Option<Point>| p.map(|p| (p.step, p.value.to_bits()));
                assert_eq!(got.count, want.count);
                assert_eq!((got.first.step, got.first.value.to_bits()), (want.first.step, want.first.value.to_bits()));
                assert_eq!((got.last.step, got.last.value.to_bits()), (want.last.step, want.last.value.to_bits()));
                assert_eq!(bits(got.min), bits(want.min), "min of {col:?}");
                assert_eq!(bits(got.max), bits(want.max), "max of {col:?}");
            }
        }
    }

    /// The blocks of a payload built event by event through the general decoder (the model of
    /// [`blocks_of`], whose dense rows take the column-at-a-time path).
    fn blocks_by_event(off: u64, payload: &[u8]) -> Vec<Block> {
        let frame_len = (payload.len() + FRAME_HEADER_LEN) as u64;
        let mut d = PayloadDecoder::new(payload).expect("payload");
        let mut out = Vec::new();
        let mut cur: Option<Builder> = None;
        loop {
            let st = d.state();
            let Some(next) = d.next_event() else { break };
            let (ev, end) = next.expect("event");
            let b = cur.get_or_insert_with(|| Builder::new(off, frame_len, st));
            b.step(ev.step(), end);
            b.block.stats.push(&ev);
            let is_log = match ev {
                RawEvent::Log { step, metrics, .. } => {
                    for (k, v) in metrics {
                        b.value(step, k, v);
                    }
                    true
                }
                RawEvent::Config { patch, .. } => {
                    b.config.extend(patch);
                    false
                }
                RawEvent::Summary { patch, .. } => {
                    b.summary.extend(patch);
                    false
                }
                RawEvent::Meta { patch, .. } => {
                    b.meta.get_or_insert_with(MetaPatch::default).then(&patch);
                    false
                }
                _ => false,
            };
            if is_log {
                b.logs += 1;
                if b.logs >= BLOCK_ROWS {
                    out.extend(cur.take().map(|b| b.finish(payload)));
                }
            }
        }
        out.extend(cur.take().map(|b| b.finish(payload)));
        out
    }

    /// A frame mixing keyed rows, dense rows in both encodings (long deltas), NaNs, signed zeros, infinities,
    /// equal extremes, config and summary patches, over several blocks.
    #[test]
    fn dense_fast_path_equals_event_by_event() {
        let specials = [f64::NAN, -0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, 1.5, 1.5, -2.0];
        for seed in 0..6u64 {
            let mut body = Vec::new();
            let (mut ps, mut pt) = (7u64, 1_000i64);
            let mut count = 0u32;
            let v = [Value::Float(0.25), Value::Int(3), Value::Float(f64::NAN)];
            let keyed: Vec<(u32, &Value)> = vec![(0, &v[0]), (2, &v[1]), (5, &v[2])];
            encode_event(&mut body, &EncEvent::Log { step: 7, time_us: 1_000, metrics: &keyed }, &mut ps, &mut pt);
            let mut prev = (ps, pt);
            count += 1;
            let mut step = 7u64;
            let mut x = seed as f64;
            for i in 0..1_000u64 {
                // Mostly one-byte deltas; now and then a long one (the general dense encoding).
                step += if (i + seed) % 97 == 0 { 300 } else { 1 + (i % 3) };
                let t = prev.1 + if i % 211 == 0 { 1_000_000 } else { 5 };
                x = (x * 1.7 + 0.3) % 11.0 - 5.0;
                let vals = [specials[((i + seed) % 8) as usize], x, if i % 13 == 0 { f64::NAN } else { -x }];
                encode_dense_row(&mut body, step, t, vals.into_iter(), &mut prev);
                count += 1;
                if (i + 3 * seed) % 389 == 0 {
                    // A patch between dense rows (the template stays).
                    let c = Value::Int(i as i64);
                    let patch: Vec<(u32, &Value)> = vec![(1, &c)];
                    let (mut s2, mut t2) = prev;
                    let ev = if i % 2 == 0 {
                        EncEvent::Config { step, patch: &patch }
                    } else {
                        EncEvent::Summary { step, patch: &patch }
                    };
                    encode_event(&mut body, &ev, &mut s2, &mut t2);
                    prev = (s2, t2);
                    count += 1;
                }
            }
            let mut payload = Vec::new();
            encode_prefix(&mut payload, count, 7, 1_000, 80);
            payload.extend_from_slice(&body);
            let fast = blocks_of(80, &payload).expect("blocks");
            let model = blocks_by_event(80, &payload);
            assert!(fast.len() >= 4, "several blocks");
            assert_eq!(fast.len(), model.len());
            for (a, b) in fast.iter().zip(&model) {
                // Bit-exact (NaN payloads, signed zeros): compare the encodings.
                assert_eq!(encode_block(a), encode_block(b));
            }
        }
    }
}
