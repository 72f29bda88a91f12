//! Positions in a version's own data: where a step ends, and the statistics of everything before it.
//!
//! This is what makes a fork copy-free and cheap: a fork point is found with a binary search over segments
//! and over one segment's step index, then by decoding the few frames between the index entry and the
//! point. Its cost does not grow with the length of the history.

use crate::catalog::{Catalog, Known, VersionView};
use crate::codec::{frame_events, PayloadDecoder};
use crate::error::{Error, Result};
use crate::format::{FRAME_HEADER_LEN, SEG_HEADER_LEN};
use crate::index::{IndexEntry, IndexReader};
use crate::segment::{torn_creation, SegmentHeader, SegmentReader};
use crate::stats::Stats;

/// A byte position in a version's own data: `offset` within segment `seg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ptr {
    /// Segment sequence number.
    pub seg: u32,
    /// Byte offset within the segment.
    pub offset: u64,
}

impl Ptr {
    /// The start of a version's own data.
    pub(crate) const START: Ptr = Ptr { seg: 0, offset: SEG_HEADER_LEN as u64 };
}

/// Opens segment `seq` of `view` for reading.
/// The active segment's creation may have been cut short by a crash (its header incomplete, no frame in
/// it): readers see it as empty, and the next writer removes it.
pub(crate) fn open_segment(cat: &Catalog, view: &VersionView, seq: u32) -> Result<(SegmentReader, SegmentHeader)> {
    open_segment_as(cat, view, seq, true)
}

/// [`open_segment`] for a lookup of a few frames (a fork point, a first step, the frames past the zone
/// maps): a sealed segment is read in chunks rather than mapped whole (see [`SegmentReader::open_with`]).
pub(crate) fn probe_segment(cat: &Catalog, view: &VersionView, seq: u32) -> Result<(SegmentReader, SegmentHeader)> {
    open_segment_as(cat, view, seq, false)
}

fn open_segment_as(cat: &Catalog, view: &VersionView, seq: u32, map: bool) -> Result<(SegmentReader, SegmentHeader)> {
    let path = view.seg_path(seq);
    let (version, nonce, sealed) = (view.version, view.header.nonce, view.sealed(seq));
    match SegmentReader::open_with(&*cat.vfs, &path, version, seq, nonce, sealed, map) {
        Err(e) if !sealed && e.is_corruption() && torn_creation(&*cat.vfs, &path, nonce, seq)? => {
            Ok(SegmentReader::empty(&path, version, seq, nonce))
        }
        other => other,
    }
}

/// Opens the index of segment `seq` (salt from its segment header); `seg` is a reader of the same segment.
pub(crate) fn open_index(
    cat: &Catalog,
    view: &VersionView,
    seq: u32,
    salt: u64,
    seg: &mut SegmentReader,
) -> Result<Option<IndexReader>> {
    let mut idx = IndexReader::open(&*cat.vfs, &view.idx_path(seq), view.version, seq, salt, view.sealed(seq))?;
    if let (Some(r), false) = (idx.as_mut(), view.sealed(seq)) {
        // An active segment's index is unsynced: after a crash it may name frames past a torn tail. Trust only
        // entries that name a genuine frame header.
        while r.len() > 0 {
            let genuine = match r.get(r.len() - 1) {
                Ok(e) => seg.frame_header_at(e.offset)?,
                Err(_) => false,
            };
            if genuine {
                break;
            }
            r.truncate(r.len() - 1);
        }
    }
    Ok(idx)
}

/// Vets an index entry chosen as a place to start reading, with `seg` a reader of the same segment: in an
/// active segment, the entry must name a genuine frame. (Entries are written only after their frame was
/// fsynced, so no hole a crash left in unsynced data can lie before one: a seek from it sees what a full read
/// sees.) A prefix this process already found clean ([`Known`](crate::catalog::Known)) needs no check.
pub(crate) fn trusted_entry(
    cat: &Catalog,
    view: &VersionView,
    seq: u32,
    entry: Option<IndexEntry>,
    seg: &mut SegmentReader,
) -> Result<Option<IndexEntry>> {
    let Some(e) = entry else { return Ok(None) };
    if view.sealed(seq) {
        return Ok(Some(e));
    }
    let key = Known::key(view, seq);
    if cat.known.get(&key).clean >= e.offset {
        return Ok(Some(e));
    }
    seg.seek(e.offset);
    match seg.next_frame() {
        Ok(Some((off, _))) if off == e.offset => Ok(Some(e)),
        // Not a frame: read from the segment's start, as a full read does.
        _ => Ok(None),
    }
}

/// Step of the first event of segment `seq` (from its index, else from its first frame).
pub(crate) fn first_step(cat: &Catalog, view: &VersionView, seq: u32) -> Result<Option<u64>> {
    // The index alone answers (its header is checked against the salt the segment must have).
    let salt = crate::format::segment_salt(view.header.nonce, seq);
    if view.sealed(seq) {
        // A sealed index is complete and synced: no need to look at the segment.
        let mut idx = IndexReader::open(&*cat.vfs, &view.idx_path(seq), view.version, seq, salt, true)?;
        if let Some(s) = idx.as_mut().map(|i| i.first_step()).transpose()?.flatten() {
            return Ok(Some(s));
        }
    }
    let (mut r, _) = probe_segment(cat, view, seq)?;
    if !view.sealed(seq) {
        if let Some(mut idx) = open_index(cat, view, seq, salt, &mut r)? {
            if let Some(s) = idx.first_step()? {
                return Ok(Some(s));
            }
        }
    }
    let path = r.path().to_path_buf();
    let format = r.format();
    match r.next_frame()? {
        Some((off, p)) => Ok(frame_events(&path, off, p, format)?.first().map(|(e, _)| e.step())),
        None => Ok(None),
    }
}

/// The position just past the last own event of `view` that lies before `cut` and has step `<= cap`, with
/// the statistics of the own events before it. `None` for `cut`/`cap` means no limit.
pub(crate) fn own_position(
    cat: &Catalog,
    view: &VersionView,
    cut: Option<Ptr>,
    cap: Option<u64>,
) -> Result<(Stats, Ptr)> {
    // A last segment whose creation a crash interrupted holds nothing: the data ends with the segment before
    // it (sealed, so durable), and no pointer may name bytes of the empty file.
    let last = view.segs.wrapping_sub(1);
    if view.segs > 0 && !view.sealed(last) && cut.is_none_or(|c| c.seg == last && c.offset <= SEG_HEADER_LEN as u64) {
        let (reader, _) = open_segment(cat, view, last)?;
        if reader.position() == 0 {
            let mut trimmed = view.clone();
            trimmed.segs = last;
            // Still the current version: the segment before is sealed, which `sealed` tells by its position.
            let cut = cut.filter(|c| c.seg < last);
            return own_position_in(cat, &trimmed, cut, cap);
        }
    }
    own_position_in(cat, view, cut, cap)
}

fn own_position_in(cat: &Catalog, view: &VersionView, cut: Option<Ptr>, cap: Option<u64>) -> Result<(Stats, Ptr)> {
    if view.segs == 0 {
        if let Some(c) = cut {
            if c != Ptr::START {
                return Err(Error::corrupt(
                    view.seg_path(c.seg),
                    c.offset,
                    "a fork or rewind points into a segment that does not exist",
                ));
            }
        }
        return Ok((Stats::default(), Ptr::START));
    }
    let last = match cut {
        Some(c) if c.seg >= view.segs => {
            return Err(Error::corrupt(view.seg_path(c.seg), c.offset, "a fork or rewind points past the last segment"))
        }
        Some(c) => c.seg,
        None => view.segs - 1,
    };
    // The last segment whose first step is <= cap (steps never decrease along the data). Segment 0 needs no
    // look: if even its first step is above cap, the scan below stops at its first event, at `Ptr::START`
    // with no statistics, which is the answer.
    let mut seg = last;
    if let Some(cap) = cap {
        let (mut lo, mut hi) = (1u32, last + 1);
        seg = 0;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if first_step(cat, view, mid)?.is_some_and(|s| s <= cap) {
                seg = mid;
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
    }
    let limit = cut.filter(|c| c.seg == seg).map(|c| c.offset);
    let (mut reader, header) = probe_segment(cat, view, seg)?;
    let entry: Option<IndexEntry> = match open_index(cat, view, seg, header.salt, &mut reader)? {
        Some(mut idx) => {
            let e = idx.last_where(|e| limit.is_none_or(|l| e.offset < l) && cap.is_none_or(|c| e.first_step <= c))?;
            trusted_entry(cat, view, seg, e, &mut reader)?
        }
        None => None,
    };
    let (mut stats, start) = match entry {
        Some(e) => (header.base.then(&e.before), e.offset),
        None => (header.base, SEG_HEADER_LEN as u64),
    };
    let mut pos = start;
    match entry {
        Some(_) => reader.seek(start),
        None => reader.restart(),
    }
    let path = reader.path().to_path_buf();
    let format = reader.format();
    let mut steps = Vec::new();
    'frames: while let Some((off, payload)) = reader.next_frame()? {
        if limit.is_some_and(|l| off >= l) {
            break;
        }
        // Only steps, kinds and end offsets matter here: skim the events (same checks, no values built).
        let bad = |e: crate::codec::DecodeError| Error::corrupt(&path, off, e.0);
        let mut d = PayloadDecoder::for_format(payload, format).map_err(bad)?;
        let base = off + FRAME_HEADER_LEN as u64;
        loop {
            // Runs of fixed-size dense rows are skimmed in one go (issue 12: a `log_columns` frame).
            steps.clear();
            let (start, n) = d.dense_run(usize::MAX, &mut steps);
            if n > 0 {
                let stride = 4 + 8 * d.template().0.len();
                let mut keep = n;
                if let Some(l) = limit {
                    let room = l.saturating_sub(base + start as u64) / stride as u64;
                    keep = keep.min(usize::try_from(room).unwrap_or(usize::MAX));
                }
                if let Some(c) = cap {
                    keep = keep.min(steps.partition_point(|s| *s <= c));
                }
                if keep > 0 {
                    stats.record_logs(steps[0], steps[keep - 1], keep as u64);
                    pos = base + (start + keep * stride) as u64;
                }
                if keep < n {
                    break 'frames;
                }
                continue;
            }
            let Some(r) = d.next_skim() else { break };
            let ((step, is_log, is_finish), end) = r.map_err(bad)?;
            let end = base + end as u64;
            if limit.is_some_and(|l| end > l) || cap.is_some_and(|c| step > c) {
                break 'frames;
            }
            stats.record(step, is_log, is_finish);
            pos = end;
        }
    }
    if let Some(l) = limit {
        if pos != l && cap.is_none() {
            return Err(Error::corrupt(&path, l, "a fork or rewind points past the valid data or inside an event"));
        }
    }
    if !view.sealed(seg) {
        // The walk started at a trusted place and every frame it read passed its CRCs.
        cat.known.note(&Known::key(view, seg), reader.position(), 0);
    }
    Ok((stats, Ptr { seg, offset: pos }))
}

/// Statistics of the visible events of `view` up to `cut` (own data) with step `<= cap`, ancestors included.
pub(crate) fn prefix_stats(cat: &Catalog, view: &VersionView, cut: Option<Ptr>, cap: Option<u64>) -> Result<Stats> {
    let (own, _) = own_position(cat, view, cut, cap)?;
    let inherited = match &view.header.base {
        None => Stats::default(),
        Some(b) if cap.is_none_or(|c| c >= b.step) => b.inherited,
        Some(b) => {
            let parent = cat.view(&crate::ids::RunRef::at(b.run_id.clone(), b.version), true)?;
            let c = cap.map_or(b.step, |c| c.min(b.step));
            prefix_stats(cat, &parent, Some(Ptr { seg: b.segment, offset: b.offset }), Some(c))?
        }
    };
    Ok(inherited.then(&own))
}
