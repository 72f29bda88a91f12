//! Columnar reads ([`Store::columns`](crate::Store::columns)): a history as one vector of steps, one of times
//! and one vector per metric, decoded straight from the frames with no per-row map, `Value` or allocation.
//! This is what a chart or a dataframe wants, and the fastest way to replay a run.

use std::collections::HashMap;

use crate::codec::{f64_at, Lean, PayloadDecoder};
use crate::error::{Error, Result};
use crate::format::{micros_to_secs, FRAME_HEADER_LEN};
use crate::replay::{EventStream, Flow, FrameCtx};
use crate::value::{Key, ValueKinds};

/// A run's history rows as columns: row `i` has step `steps[i]`, time `times[i]` and, for each column, the
/// value `column.values[i]` (`None` where the row lacks the metric).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Columns {
    /// Step of each row, increasing.
    pub steps: Vec<u64>,
    /// Wall-clock time of each row, seconds since the Unix epoch.
    pub times: Vec<f64>,
    /// One column per metric: the requested keys in the order asked, or else every key met, sorted.
    pub columns: Vec<Column>,
}

/// One metric's values, aligned with [`Columns::steps`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Column {
    /// The metric key.
    pub key: Key,
    /// The value at each row: floats as stored (bit-exact), integers converted to `f64`, booleans as 0 or 1;
    /// `None` where the row lacks the metric or holds a non-numeric value.
    pub values: Vec<Option<f64>>,
    /// The kinds of the values these rows held (rows lacking the metric add nothing): `FLOAT` alone means
    /// every `Some` is a float as logged and every `None` a missing value.
    pub kinds: ValueKinds,
}

impl Column {
    /// An empty column of `key`.
    pub fn new(key: impl Into<Key>) -> Column {
        Column { key: key.into(), values: Vec::new(), kinds: ValueKinds::NONE }
    }
}

impl Columns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The column of `key`, if any.
    pub fn column(&self, key: &str) -> Option<&Column> {
        self.columns.iter().find(|c| &*c.key == key)
    }
}

/// Column slot of a key id: not yet looked up, or not wanted.
const UNRESOLVED: u32 = u32::MAX;
const UNWANTED: u32 = u32::MAX - 1;

/// Builds [`Columns`] frame by frame.
struct Builder<'k> {
    out: Columns,
    /// Requested keys (deduplicated, in order), if any.
    wanted: Option<Vec<&'k str>>,
    /// Column of each key name met so far (without a key filter).
    by_name: HashMap<Key, u32>,
    /// Column slot per key id of the current piece's version.
    slot: Vec<u32>,
    /// The version whose key ids `slot` maps.
    piece: Option<(String, u32)>,
    /// A row's (key id, value) pairs, reused.
    row: Vec<(u32, Option<f64>)>,
    /// Column slot of each key of the current frame's dense-row template, and the template's generation.
    dense_slots: Vec<u32>,
    dense_gen: Option<u64>,
    /// True when the template's keys are exactly the columns, in order (the common case: no gaps to pad).
    dense_identity: bool,
}

impl Builder<'_> {
    /// The column of key `id`, creating it on first sight (backfilled with `None`).
    fn slot(&mut self, ctx: &mut FrameCtx<'_>, id: u32) -> Result<u32> {
        let i = id as usize;
        if let Some(&s) = self.slot.get(i).filter(|s| **s != UNRESOLVED) {
            return Ok(s);
        }
        // The key table vouches for the id before anything is sized by it (a damaged id fails here).
        let key = ctx.key(id)?.clone();
        if i >= self.slot.len() {
            self.slot.resize(i + 1, UNRESOLVED);
        }
        let s = match &self.wanted {
            Some(w) => w.iter().position(|k| *k == &*key).map_or(UNWANTED, |p| p as u32),
            None => match self.by_name.get(&key) {
                Some(c) => *c,
                None => {
                    let c = self.out.columns.len() as u32;
                    self.out.columns.push(Column {
                        key: key.clone(),
                        values: vec![None; self.out.steps.len()],
                        kinds: ValueKinds::NONE,
                    });
                    self.by_name.insert(key, c);
                    c
                }
            },
        };
        self.slot[i] = s;
        Ok(s)
    }

    fn frame(
        &mut self,
        ctx: &mut FrameCtx<'_>,
        off: u64,
        payload: &[u8],
        range: (Option<u64>, Option<u64>),
    ) -> Result<Flow> {
        let view = &ctx.piece.view;
        if self.piece.as_ref().is_none_or(|(id, v)| *id != view.id || *v != view.version) {
            self.slot.clear();
            self.piece = Some((view.id.clone(), view.version));
        }
        let bad = |e: crate::codec::DecodeError| Error::corrupt(ctx.path, off, e.0);
        let mut d = PayloadDecoder::for_format(payload, ctx.format).map_err(bad)?;
        let base = off + FRAME_HEADER_LEN as u64;
        let (cut, cap) = (ctx.piece.cut, ctx.piece.cap);
        let mut row = std::mem::take(&mut self.row);
        let mut flow = Flow::Next;
        self.dense_gen = None;
        while let Some(r) = d.next_lean(&mut row) {
            let Lean { dense, step, time_us, is_log, end, .. } = r.map_err(|e| Error::corrupt(ctx.path, off, e.0))?;
            if cut.is_some_and(|c| c.seg == ctx.seg && base + end as u64 > c.offset) || cap.is_some_and(|c| step > c) {
                flow = Flow::EndPiece;
                break;
            }
            if range.1.is_some_and(|t| step > t) {
                flow = Flow::Stop;
                break;
            }
            if !is_log || range.0.is_some_and(|f| step < f) {
                continue;
            }
            match dense {
                Some(bytes) => {
                    let (template, generation) = d.template();
                    if self.dense_gen != Some(generation) {
                        self.dense_slots.clear();
                        for &id in template {
                            let s = self.slot(ctx, id)?;
                            self.dense_slots.push(s);
                        }
                        self.dense_gen = Some(generation);
                        self.dense_identity = self.dense_slots.len() == self.out.columns.len()
                            && self.dense_slots.iter().enumerate().all(|(j, s)| *s as usize == j);
                    }
                    self.push_dense(step, time_us, bytes);
                }
                None => self.push_row(ctx, step, time_us, &row, d.lean_kinds())?,
            }
        }
        self.row = row;
        Ok(flow)
    }

    /// Appends a dense row: its floats go to the columns of the template's keys.
    #[inline]
    fn push_dense(&mut self, step: u64, time_us: i64, bytes: &[u8]) {
        if self.dense_identity {
            // Every column gets this row's value, in order: no lookups, nothing to pad.
            for (col, b) in self.out.columns.iter_mut().zip(bytes.chunks_exact(8)) {
                col.values.push(Some(f64_at(b)));
                col.kinds.insert(ValueKinds::FLOAT);
            }
            self.out.steps.push(step);
            self.out.times.push(micros_to_secs(time_us));
            return;
        }
        let n = self.out.steps.len();
        let mut any = false;
        for j in 0..self.dense_slots.len() {
            let v = f64_at(bytes.get(j * 8..).unwrap_or_default());
            any |= self.put(n, self.dense_slots[j], Some(v), ValueKinds::FLOAT);
        }
        self.finish_row(n, any, step, time_us);
    }

    /// Sets row `n`'s value in column `slot` (the first value wins) and notes its kind; false for an unwanted
    /// key.
    #[inline]
    fn put(&mut self, n: usize, slot: u32, v: Option<f64>, kind: ValueKinds) -> bool {
        match self.out.columns.get_mut(slot as usize) {
            Some(col) => {
                if col.values.len() == n {
                    col.values.push(v);
                    col.kinds.insert(kind);
                }
                true
            }
            None => false,
        }
    }

    /// Ends row `n`: records its step and time and pads the columns it lacks, or (with a key filter, when it
    /// had none of the keys) drops it.
    #[inline]
    fn finish_row(&mut self, n: usize, any: bool, step: u64, time_us: i64) {
        if self.wanted.is_some() && !any {
            return;
        }
        self.out.steps.push(step);
        self.out.times.push(micros_to_secs(time_us));
        for c in &mut self.out.columns {
            if c.values.len() == n {
                c.values.push(None);
            }
        }
    }

    fn push_row(
        &mut self,
        ctx: &mut FrameCtx<'_>,
        step: u64,
        time_us: i64,
        row: &[(u32, Option<f64>)],
        kinds: &[ValueKinds],
    ) -> Result<()> {
        let n = self.out.steps.len();
        let mut any = false;
        for (&(id, v), &kind) in row.iter().zip(kinds) {
            let s = self.slot(ctx, id)?;
            any |= self.put(n, s, v, kind);
        }
        self.finish_row(n, any, step, time_us);
        Ok(())
    }
}

/// Rows a chunk handed out by [`scan`] reaches before it ends (at the next frame boundary).
pub(crate) const CHUNK_ROWS: usize = 1024;

fn builder(keys: Option<&[Key]>) -> Builder<'_> {
    let mut wanted: Option<Vec<&str>> = None;
    let mut out = Columns::default();
    if let Some(keys) = keys {
        let mut w: Vec<&str> = Vec::new();
        for k in keys {
            if !w.contains(&&**k) {
                w.push(k);
                out.columns.push(Column::new(k.clone()));
            }
        }
        wanted = Some(w);
    }
    Builder {
        out,
        wanted,
        by_name: HashMap::new(),
        slot: Vec::new(),
        piece: None,
        row: Vec::new(),
        dense_slots: Vec::new(),
        dense_gen: None,
        dense_identity: false,
    }
}

/// Reads `stream` into columns, keeping only `keys` if given (rows with none of them are skipped).
pub(crate) fn collect(mut stream: EventStream, keys: Option<&[Key]>) -> Result<Columns> {
    let mut b = builder(keys);
    let range = stream.range();
    stream.for_each_frame(|ctx, off, payload| b.frame(ctx, off, payload, range))?;
    let mut out = b.out;
    if keys.is_none() {
        out.columns.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(out)
}

/// Streams `stream` as chunks of at least [`CHUNK_ROWS`] rows (but the last), each ending at a frame boundary:
/// the buffers are reused, so memory stays bounded and the data stays in cache. Without `keys`, columns appear in the order their keys are first met (a
/// chunk has every column met so far, `None`-filled where its rows lack them).
pub(crate) fn scan(mut stream: EventStream, keys: Option<&[Key]>, mut f: impl FnMut(&Columns)) -> Result<()> {
    let mut b = builder(keys);
    let range = stream.range();
    stream.for_each_frame(|ctx, off, payload| {
        let flow = b.frame(ctx, off, payload, range)?;
        if b.out.len() >= CHUNK_ROWS {
            f(&b.out);
            b.clear();
        }
        Ok(flow)
    })?;
    if !b.out.is_empty() {
        f(&b.out);
    }
    Ok(())
}

impl Builder<'_> {
    /// Empties the rows, keeping the columns and the buffers' capacity.
    fn clear(&mut self) {
        self.out.steps.clear();
        self.out.times.clear();
        for c in &mut self.out.columns {
            c.values.clear();
            c.kinds = ValueKinds::NONE;
        }
    }
}
