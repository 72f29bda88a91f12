//! History replay: walks a run's ancestry (root first, each ancestor up to its fork pointer), then the run's
//! own segments, streaming one frame at a time so memory stays bounded whatever the history length.
//! A `from_step` seek binary-searches segments and step indexes instead of scanning from the start.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::catalog::{Catalog, VersionView};
use crate::codec::{frame_events, RawEvent};
use crate::error::{Error, Result};
use crate::event::{Event, EventRecord, LogRow};
use crate::format::{micros_to_secs, SEG_HEADER_LEN};
use crate::ids::RunRef;
use crate::scan::{first_step, open_index, open_segment, trusted_entry, Ptr};
use crate::segment::SegmentReader;
use crate::value::{Key, Metrics, Value};

/// A snapshot of a writer's buffered events, for readers of this process: what a reader sees of them
/// without writing them (a writer's `WriterCore::tail` makes it).
pub(crate) struct Tail {
    /// The version and header nonce the writer appends to.
    pub version: u32,
    pub nonce: u64,
    /// The segment, salt and offset the frame is built for (the frame passes the usual checks): where the
    /// writer's data ended when the snapshot was taken, so a reader of the disk stops there (the segment may
    /// not exist yet).
    pub seq: u32,
    pub salt: u64,
    pub offset: u64,
    /// The buffered events as one complete frame.
    pub frame: Vec<u8>,
    /// Every key name by id, the buffered events' new keys included.
    pub keys: Arc<Vec<Key>>,
    /// The format version the frame is decoded with.
    pub format: u16,
}

/// Ends the own piece (the last of `pieces`) where the writer's data ended when `tail` was taken: the disk may
/// hold more since, and the copy in `tail` stands for it.
pub(crate) fn cut_at_tail(pieces: &mut [Piece], view: &VersionView, tail: Option<&Tail>) {
    if let (Some(t), Some(own)) = (tail, pieces.last_mut()) {
        own.cut = (view.segs > t.seq).then_some(Ptr { seg: t.seq, offset: t.offset });
    }
}

/// Filters for [`Store::history_with`](crate::Store::history_with) and [`Store::events_with`](crate::Store::events_with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryOptions {
    /// First step to return (inclusive).
    pub from_step: Option<u64>,
    /// Last step to return (inclusive).
    pub to_step: Option<u64>,
    /// Only these metric keys; rows with none of them are skipped.
    pub keys: Option<Vec<Key>>,
    /// Only the run's own events, not the inherited prefix.
    pub own_only: bool,
}

impl HistoryOptions {
    /// No filters.
    pub fn new() -> HistoryOptions {
        HistoryOptions::default()
    }
    /// Starts at `step` (inclusive).
    pub fn from_step(mut self, step: u64) -> HistoryOptions {
        self.from_step = Some(step);
        self
    }
    /// Ends at `step` (inclusive).
    pub fn to_step(mut self, step: u64) -> HistoryOptions {
        self.to_step = Some(step);
        self
    }
    /// Keeps only these metric keys.
    pub fn keys<I: IntoIterator<Item = S>, S: Into<Key>>(mut self, keys: I) -> HistoryOptions {
        self.keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }
    /// Only the run's own events.
    pub fn own_only(mut self, own: bool) -> HistoryOptions {
        self.own_only = own;
        self
    }
}

/// One version's share of a replay: its own data up to `cut`, events with step `<= cap`.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    /// The version.
    pub view: VersionView,
    /// End of the share (`None`: all of the version's data).
    pub cut: Option<Ptr>,
    /// Largest step of the share.
    pub cap: Option<u64>,
}

/// The pieces a replay of `view` walks, root first.
pub(crate) fn plan(cat: &Catalog, view: &VersionView, own_only: bool) -> Result<Vec<Piece>> {
    let mut pieces = vec![Piece { view: view.clone(), cut: None, cap: None }];
    let mut cap: Option<u64> = None;
    let mut cur = view.clone();
    while let (false, Some(b)) = (own_only, cur.header.base.clone()) {
        let parent = cat.view(&RunRef::at(b.run_id.clone(), b.version), true)?;
        cap = Some(cap.map_or(b.step, |c| c.min(b.step)));
        pieces.push(Piece { view: parent.clone(), cut: Some(Ptr { seg: b.segment, offset: b.offset }), cap });
        cur = parent;
    }
    pieces.reverse();
    Ok(pieces)
}

struct Cursor {
    piece: Piece,
    origin: RunRef,
    keys: Arc<Vec<Key>>,
    seg: u32,
    last_seg: u32,
    reader: Option<SegmentReader>,
    started: bool,
}

/// Key `id` of `view`'s key table, reloading `keys` once if it does not know `id` yet (a writer appended keys
/// since it was loaded): the one place replay reloads a key table. `Corrupt` if the table on disk lacks it too.
fn key_of<'k>(cat: &Catalog, view: &VersionView, keys: &'k mut Arc<Vec<Key>>, id: u32) -> Result<&'k Key> {
    if id as usize >= keys.len() {
        *keys = cat.keys(view, Some(id))?;
    }
    keys.get(id as usize).ok_or_else(|| {
        Error::corrupt(view.keys_path(), 0, format!("an event uses key #{id}, which the key table lacks"))
    })
}

/// The frame walker of replay (the only one): the frames of a plan's pieces in order, root first, each piece from
/// its seek point to its cut, then this process's writer's buffered frames. Event-level replay
/// ([`EventStream`]'s iterators) and frame-level readers ([`EventStream::for_each_frame`]: columns, meta) both
/// walk through it, so seeking, segment changes and the check of a fork pointer are written once.
struct Frames {
    cat: Arc<Catalog>,
    pieces: VecDeque<Piece>,
    from: Option<u64>,
    to: Option<u64>,
    cur: Option<Cursor>,
    done: bool,
    /// This process's writer's buffered events, read after the last piece's data on disk.
    tail: Option<Tail>,
}

/// A stream of raw events with their origin, across the pieces of a plan.
pub(crate) struct EventStream {
    frames: Frames,
    /// Decoded events of the current frame not delivered yet, with their end offsets.
    pending: VecDeque<(RawEvent, u64)>,
}

impl EventStream {
    /// A stream over `pieces`, limited to steps `from..=to`.
    /// `tail` is this process's writer's buffered events of the last piece (whose `cut` is where the writer's
    /// data on disk ended when they were copied).
    pub(crate) fn new(
        cat: Arc<Catalog>,
        pieces: Vec<Piece>,
        from: Option<u64>,
        to: Option<u64>,
        tail: Option<Tail>,
    ) -> EventStream {
        let pieces: VecDeque<Piece> =
            pieces.into_iter().filter(|p| !(from.is_some() && p.cap.is_some() && p.cap < from)).collect();
        if from.is_none() && to.is_none() {
            // A replay of the whole history reads every segment of its pieces up to their cuts, in order (one
            // with a step range may read a small part of them).
            let segs = pieces.iter().flat_map(|p| {
                let last = p.cut.map_or(p.view.segs, |c| c.seg.saturating_add(1).min(p.view.segs));
                (0..last).map(|seq| p.view.seg_path(seq))
            });
            cat.vfs.will_read(&segs.collect::<Vec<_>>());
        }
        let frames = Frames { cat, pieces, from, to, cur: None, done: false, tail };
        EventStream { frames, pending: VecDeque::new() }
    }

    /// Makes `pending` start with the next deliverable event; false at the end.
    fn advance(&mut self) -> Result<bool> {
        loop {
            if self.frames.done {
                return Ok(false);
            }
            if self.frames.cur.is_none() {
                // Pending events belong to the current piece.
                self.pending.clear();
            }
            if let (Some((ev, end)), Some(cur)) = (self.pending.front(), self.frames.cur.as_ref()) {
                let past_cut = cur.piece.cut.is_some_and(|c| c.seg == cur.seg && *end > c.offset);
                let past_cap = cur.piece.cap.is_some_and(|c| ev.step() > c);
                if past_cut || past_cap {
                    self.pending.clear();
                    self.frames.end_piece();
                    continue;
                }
                if self.frames.to.is_some_and(|t| ev.step() > t) {
                    self.frames.done = true;
                    return Ok(false);
                }
                if self.frames.from.is_some_and(|f| ev.step() < f) {
                    self.pending.pop_front();
                    continue;
                }
                return Ok(true);
            }
            // Nothing pending: decode the next frame (the walk pauses after it).
            let pending = &mut self.pending;
            self.frames.for_each_frame(|ctx, off, payload| {
                pending.extend(frame_events(ctx.path, off, payload, ctx.format)?);
                Ok(Flow::Pause)
            })?;
        }
    }

    /// The step range of the stream.
    pub(crate) fn range(&self) -> (Option<u64>, Option<u64>) {
        (self.frames.from, self.frames.to)
    }

    /// Walks the raw frames of the plan, piece after piece (seeking as event replay does). The visitor applies
    /// cuts, caps and the step range itself: the frame-level fast path of columnar reads.
    pub(crate) fn for_each_frame<F>(&mut self, f: F) -> Result<()>
    where
        F: FnMut(&mut FrameCtx<'_>, u64, &[u8]) -> Result<Flow>,
    {
        self.pending.clear();
        self.frames.for_each_frame(f)
    }
}

impl Frames {
    /// Moves `cur` (at the end of its data on disk) onto the writer's buffered events when it is the last
    /// piece and there are some: true if it did.
    fn enter_tail(pieces: &VecDeque<Piece>, tail: &mut Option<Tail>, cur: &mut Cursor) -> bool {
        if !pieces.is_empty() {
            return false;
        }
        let Some(t) = tail.take() else { return false };
        let path = cur.piece.view.seg_path(t.seq);
        cur.reader = Some(SegmentReader::memory(&path, t.salt, t.offset, t.frame, t.format));
        cur.keys = t.keys;
        // A segment of its own (past any cut), read whole.
        cur.seg = cur.last_seg.max(t.seq).saturating_add(1);
        cur.last_seg = cur.seg;
        cur.piece.cut = None;
        cur.started = true;
        true
    }

    fn start_piece(&mut self, piece: Piece) -> Result<Cursor> {
        let keys = self.cat.keys(&piece.view, None)?;
        let origin = piece.view.run_ref();
        let segs = piece.view.segs;
        let last_seg = match piece.cut {
            Some(c) if segs == 0 && c == Ptr::START => 0,
            Some(c) if c.seg >= segs => {
                return Err(Error::corrupt(piece.view.seg_path(c.seg), c.offset, "fork pointer past the last segment"))
            }
            Some(c) => c.seg,
            None => segs.saturating_sub(1),
        };
        let mut cursor = Cursor { piece, origin, keys, seg: 0, last_seg, reader: None, started: segs > 0 };
        if segs == 0 {
            cursor.started = false;
            Frames::enter_tail(&self.pieces, &mut self.tail, &mut cursor);
            return Ok(cursor);
        }
        // Seek: the last segment whose first step is below `from`, then its last index entry below `from`.
        let mut seek_to = None;
        if let Some(from) = self.from {
            let view = cursor.piece.view.clone();
            let (mut lo, mut hi) = (0u32, last_seg + 1);
            let mut seg = 0;
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if first_step(&self.cat, &view, mid)?.is_some_and(|s| s < from) {
                    seg = mid;
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            cursor.seg = seg;
        }
        let (mut reader, h) = open_segment(&self.cat, &cursor.piece.view, cursor.seg)?;
        if let Some(from) = self.from {
            let (view, seg) = (&cursor.piece.view, cursor.seg);
            if let Some(mut idx) = open_index(&self.cat, view, seg, h.salt, &mut reader)? {
                let e = idx.last_where(|e| e.first_step < from)?;
                if let Some(e) = trusted_entry(&self.cat, view, seg, e, &mut reader)? {
                    seek_to = Some(e.offset);
                }
            }
        }
        match seek_to {
            Some(off) => reader.seek(off),
            None => reader.restart(),
        }
        cursor.reader = Some(reader);
        Ok(cursor)
    }

    /// Ends the current piece: this process's writer's buffered events follow the last piece's data on disk,
    /// else the next piece starts at the next call.
    fn end_piece(&mut self) {
        let tail = match self.cur.as_mut() {
            Some(cur) => Frames::enter_tail(&self.pieces, &mut self.tail, cur),
            None => false,
        };
        if !tail {
            self.cur = None;
        }
    }
}

/// What a frame visitor ([`EventStream::for_each_frame`]) asks for next.
pub(crate) enum Flow {
    /// The next frame.
    Next,
    /// This piece is done (a cut or cap was reached): go on with the next piece.
    EndPiece,
    /// The replay is done (the `to` step was passed).
    Stop,
    /// Return from the walk after this frame; the next walk goes on with the next frame.
    Pause,
}

/// Where a frame visitor is: the piece, its segment, and the piece's key table.
pub(crate) struct FrameCtx<'c> {
    /// The catalog (to reload a key table that lags behind).
    pub cat: &'c Catalog,
    /// The piece being read.
    pub piece: &'c Piece,
    /// Segment of the frame.
    pub seg: u32,
    /// Key names by id for the piece's version.
    pub keys: &'c mut Arc<Vec<Key>>,
    /// Path of the segment (for errors).
    pub path: &'c std::path::Path,
    /// The segment's format version (for [`PayloadDecoder::for_format`](crate::codec::PayloadDecoder::for_format)).
    pub format: u16,
}

impl FrameCtx<'_> {
    /// The key table, reloaded if it does not know key `id` yet; `Corrupt` if it never will.
    pub(crate) fn key(&mut self, id: u32) -> Result<&Key> {
        key_of(self.cat, &self.piece.view, self.keys, id)
    }
}

impl Frames {
    /// Walks the raw frames from where the last walk stopped (see [`EventStream::for_each_frame`]).
    fn for_each_frame<F>(&mut self, mut f: F) -> Result<()>
    where
        F: FnMut(&mut FrameCtx<'_>, u64, &[u8]) -> Result<Flow>,
    {
        loop {
            if self.done {
                return Ok(());
            }
            let Some(cur) = self.cur.as_mut() else {
                match self.pieces.pop_front() {
                    None => self.done = true,
                    Some(p) => self.cur = Some(self.start_piece(p)?),
                }
                continue;
            };
            let Cursor { piece, keys, seg, last_seg, reader, started, .. } = cur;
            let Some(r) = reader.as_mut().filter(|_| *started) else {
                self.cur = None;
                continue;
            };
            let path = r.path().to_path_buf();
            let format = r.format();
            match r.next_frame()? {
                Some((off, payload)) => {
                    let mut ctx = FrameCtx { cat: &self.cat, piece, seg: *seg, keys, path: &path, format };
                    match f(&mut ctx, off, payload)? {
                        Flow::Next => {}
                        Flow::EndPiece => {
                            if !Frames::enter_tail(&self.pieces, &mut self.tail, cur) {
                                self.cur = None;
                            }
                        }
                        Flow::Stop => self.done = true,
                        Flow::Pause => return Ok(()),
                    }
                }
                None if *seg < *last_seg => {
                    *seg += 1;
                    let (next, _) = open_segment(&self.cat, &piece.view, *seg)?;
                    *reader = Some(next);
                }
                None => {
                    if let Some(c) = piece.cut {
                        if r.position() < c.offset && c.offset > SEG_HEADER_LEN as u64 {
                            return Err(Error::corrupt(&path, c.offset, "a fork points at bytes that are not there"));
                        }
                    }
                    if !Frames::enter_tail(&self.pieces, &mut self.tail, cur) {
                        self.cur = None;
                    }
                }
            }
        }
    }
}

impl Cursor {
    /// Resolves key ids to keys, reloading the key table once if it lags behind.
    fn metrics(&mut self, cat: &Catalog, kv: Vec<(u32, Value)>, filter: Option<&[Key]>) -> Result<Metrics> {
        let mut m = Vec::with_capacity(kv.len());
        for (id, v) in kv {
            let k = key_of(cat, &self.piece.view, &mut self.keys, id)?;
            if filter.is_none_or(|f| f.iter().any(|x| x == k)) {
                m.push((k.clone(), v));
            }
        }
        // Keys come in the writer's (sorted) order, so this is a linear bulk build.
        Ok(Metrics::from_iter(m))
    }
}

/// Turns a raw event into a public one.
fn to_event(cat: &Catalog, cur: &mut Cursor, ev: RawEvent, filter: Option<&[Key]>) -> Result<Event> {
    Ok(match ev {
        RawEvent::Log { step, time_us, metrics } => {
            Event::Log { step, time: micros_to_secs(time_us), metrics: cur.metrics(cat, metrics, filter)? }
        }
        RawEvent::System { step, time_us, metrics } => {
            Event::System { step, time: micros_to_secs(time_us), metrics: cur.metrics(cat, metrics, filter)? }
        }
        RawEvent::Config { step, patch } => Event::Config { step, patch: cur.metrics(cat, patch, None)? },
        RawEvent::Summary { step, patch } => Event::Summary { step, patch: cur.metrics(cat, patch, None)? },
        RawEvent::Finish { step, exit_code } => Event::Finish { step, exit_code },
        RawEvent::Meta { step, patch } => Event::Meta { step, patch },
    })
}

/// The history rows of a run, in step order ([`Store::history`](crate::Store::history)).
pub struct History {
    stream: EventStream,
    keys: Option<Vec<Key>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl History {
    /// A history over a stream.
    pub(crate) fn new(stream: EventStream, keys: Option<Vec<Key>>) -> History {
        History { stream, keys }
    }

    /// Streams the rows without building a map per row: `f` gets a borrowed [`RowRef`] of each row. This
    /// is the fast path for full replays (no per-row map, no key reference counting).
    pub fn for_each_row<F: FnMut(&RowRef<'_>)>(mut self, mut f: F) -> Result<()> {
        loop {
            if !self.stream.advance()? {
                return Ok(());
            }
            let Some((ev, _)) = self.stream.pending.pop_front() else { return Ok(()) };
            let RawEvent::Log { step, time_us, metrics } = ev else { continue };
            let frames = &mut self.stream.frames;
            let Some(cur) = frames.cur.as_mut() else { return Ok(()) };
            if let Some(max) = metrics.iter().map(|(k, _)| *k).max() {
                key_of(&frames.cat, &cur.piece.view, &mut cur.keys, max)?;
            }
            let row = RowRef {
                step,
                time: micros_to_secs(time_us),
                origin: &cur.origin,
                keys: &cur.keys,
                metrics: &metrics,
                filter: self.keys.as_deref(),
            };
            if row.filter.is_some() && row.metrics().next().is_none() {
                continue;
            }
            f(&row);
        }
    }
}

/// A borrowed view of one history row (see [`History::for_each_row`]).
#[derive(Debug)]
pub struct RowRef<'a> {
    /// The row's step.
    pub step: u64,
    /// Wall-clock time in seconds since the Unix epoch.
    pub time: f64,
    /// Where the row is stored (`ID@vK`).
    pub origin: &'a RunRef,
    keys: &'a [Key],
    metrics: &'a [(u32, Value)],
    filter: Option<&'a [Key]>,
}

impl<'a> RowRef<'a> {
    /// The row's metrics in key order (filtered to the requested keys, if any).
    pub fn metrics(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + '_ {
        let keys = self.keys;
        let filter = self.filter;
        self.metrics.iter().filter_map(move |(id, v)| {
            let k: &'a str = keys.get(*id as usize)?;
            filter.is_none_or(|f| f.iter().any(|x| &**x == k)).then_some((k, v))
        })
    }

    /// The value of metric `key`, if the row has it.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.metrics().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// An owned copy of the row.
    pub fn to_row(&self) -> LogRow {
        LogRow {
            step: self.step,
            time: self.time,
            metrics: self.metrics().map(|(k, v)| (Key::from(k), v.clone())).collect(),
            origin: self.origin.clone(),
        }
    }
}

impl Iterator for History {
    type Item = Result<LogRow>;

    fn next(&mut self) -> Option<Result<LogRow>> {
        loop {
            let cat = self.stream.frames.cat.clone();
            match self.stream.advance() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.stream.frames.done = true;
                    return Some(Err(e));
                }
            }
            let (ev, _) = self.stream.pending.pop_front()?;
            let cur = self.stream.frames.cur.as_mut()?;
            if let RawEvent::Log { step, time_us, metrics } = ev {
                let m = match cur.metrics(&cat, metrics, self.keys.as_deref()) {
                    Ok(m) => m,
                    Err(e) => {
                        self.stream.frames.done = true;
                        return Some(Err(e));
                    }
                };
                if self.keys.is_some() && m.is_empty() {
                    continue;
                }
                return Some(Ok(LogRow {
                    step,
                    time: micros_to_secs(time_us),
                    metrics: m,
                    origin: cur.origin.clone(),
                }));
            }
        }
    }
}

/// Events of a run, in order ([`Store::events`](crate::Store::events)).
pub struct Events {
    stream: EventStream,
    keys: Option<Vec<Key>>,
    system_only: bool,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl Events {
    /// Events over a stream.
    pub(crate) fn new(stream: EventStream, keys: Option<Vec<Key>>, system_only: bool) -> Events {
        Events { stream, keys, system_only }
    }
}

impl Iterator for Events {
    type Item = Result<EventRecord>;

    fn next(&mut self) -> Option<Result<EventRecord>> {
        loop {
            let cat = self.stream.frames.cat.clone();
            match self.stream.advance() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.stream.frames.done = true;
                    return Some(Err(e));
                }
            }
            let (ev, _) = self.stream.pending.pop_front()?;
            if self.system_only && !matches!(ev, RawEvent::System { .. }) {
                continue;
            }
            let cur = self.stream.frames.cur.as_mut()?;
            return Some(match to_event(&cat, cur, ev, self.keys.as_deref()) {
                Ok(event) => Ok(EventRecord { origin: cur.origin.clone(), event }),
                Err(e) => {
                    self.stream.frames.done = true;
                    Err(e)
                }
            });
        }
    }
}
