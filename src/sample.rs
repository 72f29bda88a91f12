//! Exact downsampled history for charts ([`Store::sample`](crate::Store::sample)): the M4 aggregation.
//!
//! The step range `from..=to` is split into `n` buckets of equal width (step `s` falls in bucket
//! `floor((s - from) * n / (to - from + 1))`, so bucket `i` starts at `from + ceil(i * (to - from + 1) / n)`).
//! For every bucket and key the sample holds the first, last, minimum and maximum value with their steps and
//! the number of values: the four points of each pixel column that a line chart of all rows draws, so a chart
//! of `n` pixels drawn from the sample is the chart of the full data.
//!
//! Values are the numeric projection [`Store::columns`](crate::Store::columns) uses: floats as stored, integers
//! as `f64`, booleans as 0 or 1; other values are not counted. `count`, `first` and `last` include NaN values;
//! `min` and `max` skip them (a bucket of NaNs only has `min` = `max` = `first`). Of equal values the earliest
//! is the minimum or maximum (`-0.0` and `0.0` are equal).

use crate::value::Key;

/// A value and the step it was logged at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The step.
    pub step: u64,
    /// The value (numeric projection, bit-exact for floats).
    pub value: f64,
}

/// The M4 aggregate of one key's values in one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The bucket's number, `0..n`.
    pub index: u32,
    /// First step of the bucket's range.
    pub start: u64,
    /// Last step of the bucket's range (inclusive).
    pub end: u64,
    /// Number of values in the bucket (NaN included).
    pub count: u64,
    /// The value at the smallest step.
    pub first: Point,
    /// The value at the largest step.
    pub last: Point,
    /// The smallest non-NaN value (the earliest of equals); `first` when every value is NaN.
    pub min: Point,
    /// The largest non-NaN value (the earliest of equals); `first` when every value is NaN.
    pub max: Point,
}

/// One key's buckets: only those holding at least one value, in bucket order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric key.
    pub key: Key,
    /// The non-empty buckets, by increasing index.
    pub buckets: Vec<Bucket>,
}

/// The result of [`Store::sample`](crate::Store::sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// First step of the sampled range.
    pub from_step: u64,
    /// Last step of the sampled range (inclusive).
    pub to_step: u64,
    /// Number of buckets the range is split into.
    pub buckets: u32,
    /// One series per key: the requested keys in the order asked, or else every numeric key met, sorted.
    /// Empty when the range holds no rows.
    pub series: Vec<Series>,
}

impl Sample {
    /// The series of `key`, if any.
    pub fn series(&self, key: &str) -> Option<&Series> {
        self.series.iter().find(|s| &*s.key == key)
    }

    /// The bucket step `step` falls in (`None` outside the range).
    pub fn bucket_of(&self, step: u64) -> Option<u32> {
        Buckets::new(self.from_step, self.to_step, self.buckets).index(step)
    }

    /// The step range (inclusive) of bucket `i`; empty buckets (more buckets than steps) give `start > end`.
    pub fn bucket_range(&self, i: u32) -> (u64, u64) {
        Buckets::new(self.from_step, self.to_step, self.buckets).range(i)
    }
}

/// The bucketing of a step range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buckets {
    pub from: u64,
    pub to: u64,
    pub n: u32,
}

impl Buckets {
    pub(crate) fn new(from: u64, to: u64, n: u32) -> Buckets {
        Buckets { from, to, n: n.max(1) }
    }

    fn span(&self) -> u128 {
        u128::from(self.to - self.from) + 1
    }

    /// The bucket of `step`, `None` outside `from..=to`.
    pub(crate) fn index(&self, step: u64) -> Option<u32> {
        if step < self.from || step > self.to {
            return None;
        }
        Some((u128::from(step - self.from) * u128::from(self.n) / self.span()) as u32)
    }

    /// First step of bucket `i` (`to + 1` for `i == n`).
    pub(crate) fn start(&self, i: u32) -> u64 {
        let off = (u128::from(i) * self.span()).div_ceil(u128::from(self.n));
        (u128::from(self.from) + off).min(u128::from(u64::MAX)) as u64
    }

    /// Inclusive step range of bucket `i` (`start > end` for an empty bucket).
    pub(crate) fn range(&self, i: u32) -> (u64, u64) {
        let start = self.start(i);
        let end = if i + 1 >= self.n { self.to } else { self.start(i + 1).wrapping_sub(1) };
        (start, end)
    }
}

/// The M4 aggregate of a run of values in step order; [`Agg::then`] merges a later run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Agg {
    pub count: u64,
    pub first: Point,
    pub last: Point,
    /// `None` while every value is NaN.
    pub min: Option<Point>,
    pub max: Option<Point>,
}

impl Agg {
    /// The aggregate of one value.
    #[inline]
    pub(crate) fn one(step: u64, value: f64) -> Agg {
        let p = Point { step, value };
        let m = (!value.is_nan()).then_some(p);
        Agg { count: 1, first: p, last: p, min: m, max: m }
    }

    /// Adds a value at a later step.
    #[inline]
    pub(crate) fn push(&mut self, step: u64, value: f64) {
        let p = Point { step, value };
        self.count += 1;
        self.last = p;
        if !value.is_nan() {
            if self.min.is_none_or(|m| value < m.value) {
                self.min = Some(p);
            }
            if self.max.is_none_or(|m| value > m.value) {
                self.max = Some(p);
            }
        }
    }

    /// Merges the aggregate of later values.
    pub(crate) fn then(&mut self, later: &Agg) {
        self.count += later.count;
        self.last = later.last;
        if let Some(p) = later.min {
            if self.min.is_none_or(|m| p.value < m.value) {
                self.min = Some(p);
            }
        }
        if let Some(p) = later.max {
            if self.max.is_none_or(|m| p.value > m.value) {
                self.max = Some(p);
            }
        }
    }

    pub(crate) fn bucket(&self, index: u32, b: &Buckets) -> Bucket {
        let (start, end) = b.range(index);
        Bucket {
            index,
            start,
            end,
            count: self.count,
            first: self.first,
            last: self.last,
            min: self.min.unwrap_or(self.first),
            max: self.max.unwrap_or(self.first),
        }
    }
}

/// A series being collected: its key, its finished buckets and the open one.
pub(crate) type OpenSeries = (Key, Vec<Bucket>, Option<(u32, Agg)>);

/// Collects aggregates per key and bucket, fed in step order per key.
pub(crate) struct Collector {
    pub buckets: Buckets,
    /// Per series: the finished buckets and the open one.
    pub series: Vec<OpenSeries>,
}

impl Collector {
    pub(crate) fn new(buckets: Buckets) -> Collector {
        Collector { buckets, series: Vec::new() }
    }

    /// The series slot of `key`, created on first sight.
    pub(crate) fn slot(&mut self, key: &Key) -> usize {
        match self.series.iter().position(|s| &s.0 == key) {
            Some(i) => i,
            None => {
                self.series.push((key.clone(), Vec::new(), None));
                self.series.len() - 1
            }
        }
    }

    /// Adds the aggregate of values of series `slot` lying in bucket `b`, later than everything added before.
    #[inline]
    pub(crate) fn add(&mut self, slot: usize, b: u32, agg: &Agg) {
        let s = &mut self.series[slot];
        match &mut s.2 {
            Some((open, a)) if *open == b => a.then(agg),
            open => {
                if let Some((i, a)) = open.take() {
                    s.1.push(a.bucket(i, &self.buckets));
                }
                *open = Some((b, *agg));
            }
        }
    }

    /// Adds one value of series `slot` at `step` (which must lie in the range).
    #[inline]
    pub(crate) fn add_value(&mut self, slot: usize, step: u64, value: f64) {
        let Some(b) = self.buckets.index(step) else { return };
        self.add_value_in(slot, b, step, value);
    }

    /// Adds one value of series `slot` at `step`, which lies in bucket `b`.
    #[inline]
    pub(crate) fn add_value_in(&mut self, slot: usize, b: u32, step: u64, value: f64) {
        let s = &mut self.series[slot];
        match &mut s.2 {
            Some((open, a)) if *open == b => a.push(step, value),
            open => {
                if let Some((i, a)) = open.take() {
                    s.1.push(a.bucket(i, &self.buckets));
                }
                *open = Some((b, Agg::one(step, value)));
            }
        }
    }

    /// The sample: series in the order of `order` (requested keys) or sorted by key.
    pub(crate) fn finish(self, order: Option<&[String]>) -> Sample {
        let b = self.buckets;
        let mut series: Vec<Series> = self
            .series
            .into_iter()
            .map(|(key, mut buckets, open)| {
                if let Some((i, a)) = open {
                    buckets.push(a.bucket(i, &b));
                }
                Series { key, buckets }
            })
            .collect();
        match order {
            Some(keys) => {
                let mut out = Vec::new();
                for k in keys {
                    if out.iter().any(|s: &Series| &*s.key == k.as_str()) {
                        continue;
                    }
                    let s = match series.iter().position(|s| &*s.key == k.as_str()) {
                        Some(i) => series.swap_remove(i),
                        None => Series { key: Key::from(k.as_str()), buckets: Vec::new() },
                    };
                    out.push(s);
                }
                series = out;
            }
            None => {
                series.retain(|s| !s.buckets.is_empty());
                series.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        Sample { from_step: b.from, to_step: b.to, buckets: b.n, series }
    }
}

/// The bucketing of a sample request, `None` when the range holds no rows (a run without rows, or defaults
/// that leave nothing). `InvalidArgument` for zero buckets or an explicit `from > to`.
pub(crate) fn bucketing(
    info: crate::RunInfo,
    n: u32,
    from: Option<u64>,
    to: Option<u64>,
) -> crate::Result<Option<Buckets>> {
    if n == 0 {
        return Err(crate::Error::InvalidArgument { reason: "a sample needs at least one bucket".into() });
    }
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(crate::Error::InvalidArgument { reason: format!("from_step {f} is after to_step {t}") });
        }
    }
    let (Some(f), Some(t)) = (from.or(info.first_step), to.or(info.last_step)) else { return Ok(None) };
    Ok((f <= t).then(|| Buckets::new(f, t, n)))
}

/// The sample of a range without rows.
pub(crate) fn empty(keys: &[String], n: u32, from: Option<u64>, to: Option<u64>) -> Sample {
    let from_step = from.unwrap_or(0);
    let c = Collector::new(Buckets::new(from_step, to.unwrap_or(from_step).max(from_step), n));
    c.finish((!keys.is_empty()).then_some(keys))
}

/// [`Store::sample`](crate::Store::sample) of a resolved version.
pub(crate) fn sample(
    store: &crate::Store,
    view: &crate::catalog::VersionView,
    keys: &[String],
    n: u32,
    from: Option<u64>,
    to: Option<u64>,
    tail: Option<&crate::replay::Tail>,
) -> crate::Result<Sample> {
    let info = store.info(&view.run_ref().to_string())?;
    let Some(b) = bucketing(info, n, from, to)? else { return Ok(empty(keys, n, from, to)) };
    let cat = store.catalog();
    let mut c = Collector::new(b);
    for k in keys {
        c.slot(&Key::from(k.as_str()));
    }
    let mut pieces = crate::replay::plan(cat, view, false)?;
    crate::replay::cut_at_tail(&mut pieces, view, tail);
    let mut stopped = false;
    for piece in pieces {
        let mut v = Visit::new(cat, &piece.view, &mut c, keys, b, None);
        let flow =
            crate::zonemap::walk(cat, &piece.view, piece.cut, piece.cap, crate::scan::Ptr::START, None, true, &mut v)?;
        if flow == crate::zonemap::Flow::Stop {
            stopped = true;
            break;
        }
    }
    if let (Some(t), false) = (tail, stopped) {
        // The buffered events of this process's live writer, after the disk's data (key names: the copy's).
        use crate::zonemap::Visit as _;
        let mut v = Visit::new(cat, view, &mut c, keys, b, Some(&t.keys));
        let payload = t.frame.get(crate::format::FRAME_HEADER_LEN..).unwrap_or_default();
        let bad = |e: crate::codec::DecodeError| crate::Error::corrupt(view.seg_path(t.seq), t.offset, e.0);
        let mut d = crate::codec::PayloadDecoder::for_format(payload, t.format).map_err(bad)?;
        while let Some(r) = d.next_event() {
            if !v.event(&r.map_err(bad)?.0) {
                break;
            }
        }
    }
    Ok(c.finish((!keys.is_empty()).then_some(keys)))
}

/// The sample's visitor of a zone-map walk: merges whole blocks inside one bucket, decodes the rest.
struct Visit<'a> {
    cat: &'a crate::catalog::Catalog,
    view: &'a crate::catalog::VersionView,
    c: &'a mut Collector,
    wanted: &'a [String],
    /// Series slot per key id of this version (`UNSEEN` until looked up, `SKIP` for unwanted keys).
    slots: Vec<usize>,
    b: Buckets,
    /// The bucket of the last row: (first step, last step, index); steps only grow, so most rows hit it.
    cur: (u64, u64, u32),
    /// Key names by id when not the version's key table (a live writer's buffered events).
    names: Option<&'a [crate::value::Key]>,
    /// Scratch: the column aggregates of a run of dense rows.
    aggs: Vec<Agg>,
}

const UNSEEN: usize = usize::MAX;
const SKIP: usize = usize::MAX - 1;

impl<'a> Visit<'a> {
    fn new(
        cat: &'a crate::catalog::Catalog,
        view: &'a crate::catalog::VersionView,
        c: &'a mut Collector,
        wanted: &'a [String],
        b: Buckets,
        names: Option<&'a [crate::value::Key]>,
    ) -> Visit<'a> {
        Visit { cat, view, c, wanted, slots: Vec::new(), b, cur: (1, 0, 0), names, aggs: Vec::new() }
    }

    /// The bucket of `step` (in the range).
    #[inline]
    fn bucket(&mut self, step: u64) -> u32 {
        let (lo, hi, i) = self.cur;
        if lo <= step && step <= hi {
            return i;
        }
        let i = self.b.index(step).unwrap_or_default();
        let (lo, hi) = self.b.range(i);
        self.cur = (lo, hi, i);
        i
    }

    fn slot(&mut self, id: u32) -> usize {
        let i = id as usize;
        if let Some(&s) = self.slots.get(i).filter(|s| **s != UNSEEN) {
            return s;
        }
        if self.slots.len() <= i {
            self.slots.resize(i + 1, UNSEEN);
        }
        // A key id the key table lacks cannot be named: treat it as unwanted (verify reports the damage).
        let name = match self.names {
            Some(n) => n.get(i).cloned(),
            None => self.cat.keys(self.view, Some(id)).ok().and_then(|t| t.get(i).cloned()),
        };
        let s = match name {
            Some(k) if self.wanted.is_empty() || self.wanted.iter().any(|w| w.as_str() == &*k) => self.c.slot(&k),
            _ => SKIP,
        };
        self.slots[i] = s;
        s
    }
}

impl crate::zonemap::Visit for Visit<'_> {
    fn block(&mut self, blk: &crate::zonemap::Block, inside: bool) -> crate::zonemap::Use {
        use crate::zonemap::Use;
        if blk.first_step > self.b.to {
            return Use::Stop;
        }
        if blk.last_step < self.b.from {
            return Use::Done;
        }
        if inside && blk.first_step >= self.b.from && blk.last_step <= self.b.to {
            let bucket = self.bucket(blk.first_step);
            if blk.last_step > self.cur.1 {
                return Use::Read; // the block straddles a bucket edge
            }
            for k in &blk.keys {
                if let Some(a) = &k.agg {
                    let s = self.slot(k.key);
                    if s != SKIP {
                        self.c.add(s, bucket, a);
                    }
                }
            }
            return Use::Done;
        }
        Use::Read
    }

    fn dense(&mut self, step: u64, template: &[u32], bytes: &[u8]) -> bool {
        if step > self.b.to {
            return false;
        }
        if step >= self.b.from {
            let bucket = self.bucket(step);
            for (k, x) in template.iter().zip(bytes.chunks_exact(8)) {
                let s = self.slot(*k);
                if s != SKIP {
                    self.c.add_value_in(s, bucket, step, crate::codec::f64_at(x));
                }
            }
        }
        true
    }

    fn group(&mut self, g: &crate::zonemap::Group) -> bool {
        if g.first_step < self.b.from || g.last_step > self.b.to {
            return false;
        }
        let bucket = self.bucket(g.first_step);
        if g.last_step > self.cur.1 {
            return false; // the group straddles a bucket edge
        }
        for (key, a) in &g.keys {
            let s = self.slot(*key);
            if s != SKIP {
                self.c.add(s, bucket, a);
            }
        }
        true
    }

    fn dense_run(&mut self, steps: &[u64], template: &[u32], rows: &[u8]) -> bool {
        // Each bucket's share of the run, a column at a time.
        let k = template.len();
        let stride = 4 + 8 * k;
        let mut i = steps.partition_point(|s| *s < self.b.from);
        while i < steps.len() {
            let step = steps[i];
            if step > self.b.to {
                return false;
            }
            let bucket = self.bucket(step);
            let hi = self.cur.1;
            let j = i + steps[i..].partition_point(|s| *s <= hi);
            // Every column in one pass when all are wanted, else only the wanted ones (a key filter).
            let wanted = template.iter().filter(|key| self.slot(**key) != SKIP).count();
            let all = wanted == k;
            for (col, key) in template.iter().enumerate() {
                let slot = self.slot(*key);
                if slot == SKIP {
                    continue;
                }
                if !all || col == 0 {
                    self.aggs.clear();
                    let cols = if all { 0..k } else { col..col + 1 };
                    crate::zonemap::columns_agg(rows, i * stride, k, cols, &steps[i..j], &mut self.aggs);
                }
                let agg = if all { self.aggs[col] } else { self.aggs[0] };
                self.c.add(slot, bucket, &agg);
            }
            i = j;
        }
        true
    }

    fn event(&mut self, ev: &crate::codec::RawEvent) -> bool {
        let step = ev.step();
        if step > self.b.to {
            return false;
        }
        if let crate::codec::RawEvent::Log { metrics, .. } = ev {
            if step >= self.b.from {
                let bucket = self.bucket(step);
                for (k, v) in metrics {
                    let x = match v {
                        crate::Value::Float(x) => *x,
                        crate::Value::Int(i) => *i as f64,
                        crate::Value::Bool(b) => f64::from(u8::from(*b)),
                        _ => continue,
                    };
                    let s = self.slot(*k);
                    if s != SKIP {
                        self.c.add_value_in(s, bucket, step, x);
                    }
                }
            }
        }
        true
    }
}
