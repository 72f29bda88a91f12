//! Segment files: the fixed header, frame framing and CRCs, and a reader that walks frames and tells a torn
//! tail (expected after a crash: report and truncate) from corruption (an error, never skipped).
//!
//! A frame is `len u32 | header_crc u32 | payload_crc u32 | payload`. Both CRCs are seeded with the segment's
//! salt and the frame's own offset, so zero-filled regions, stale bytes and frames copied from another
//! segment or position never validate. The header CRC guards the length on its own (as TFRecord does): a
//! flipped length bit is caught before the length is trusted.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{
    build_fixed_header, check_fixed_header, crc, segment_salt, Le, FRAME_HEADER_LEN, MAX_FRAME_LEN, SEG_HEADER_LEN,
    SEG_MAGIC,
};
use crate::source::{Source, SEGMENT_CHUNK};
use crate::stats::{opt, presence, unopt, Stats};
use crate::vfs::{OpenMode, Vfs};

/// The fixed header at the start of every segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct SegmentHeader {
    /// Sequence number of the segment within its version (0, 1, ...).
    pub seq: u32,
    /// The run version the segment belongs to.
    pub version: u32,
    /// The salt seeding every frame CRC of this segment.
    pub salt: u64,
    /// Statistics of the version's own events in all earlier segments.
    pub base: Stats,
}

impl SegmentHeader {
    /// Encodes the header (80 bytes).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(62);
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&self.seq.to_le_bytes());
        body.extend_from_slice(&self.version.to_le_bytes());
        body.extend_from_slice(&(u32::from(self.base.last_is_finish) | presence(&self.base)).to_le_bytes());
        body.extend_from_slice(&self.salt.to_le_bytes());
        body.extend_from_slice(&self.base.rows.to_le_bytes());
        body.extend_from_slice(&self.base.events.to_le_bytes());
        body.extend_from_slice(&opt(self.base.first_log).to_le_bytes());
        body.extend_from_slice(&opt(self.base.last_log).to_le_bytes());
        body.extend_from_slice(&opt(self.base.last_event).to_le_bytes());
        build_fixed_header(SEG_HEADER_LEN, &SEG_MAGIC, &body)
    }

    /// Decodes and checks a header against the segment it should belong to.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn decode(file: &Path, bytes: &[u8], version: u32, seq: u32, nonce: u64) -> Result<SegmentHeader> {
        let h = check_fixed_header(file, bytes, SEG_HEADER_LEN, &SEG_MAGIC)?;
        let mut r = Le::new(&h[10..]);
        let bad = || Error::corrupt(file, 0, "truncated segment header");
        let _reserved = r.u16().ok_or_else(bad)?;
        let got_seq = r.u32().ok_or_else(bad)?;
        let got_version = r.u32().ok_or_else(bad)?;
        let flags = r.u32().ok_or_else(bad)?;
        let salt = r.u64().ok_or_else(bad)?;
        let base = Stats {
            rows: r.u64().ok_or_else(bad)?,
            events: r.u64().ok_or_else(bad)?,
            first_log: unopt(r.u64().ok_or_else(bad)?, flags, 1),
            last_log: unopt(r.u64().ok_or_else(bad)?, flags, 2),
            last_event: unopt(r.u64().ok_or_else(bad)?, flags, 3),
            last_is_finish: flags & 1 != 0,
        };
        if got_seq != seq || got_version != version || salt != segment_salt(nonce, seq) {
            return Err(Error::corrupt(
                file,
                0,
                format!(
                    "segment header names v{got_version} segment {got_seq}, not this file (v{version} segment {seq})"
                ),
            ));
        }
        Ok(SegmentHeader { seq, version, salt, base })
    }
}

/// The 12-byte header of a frame with `payload` at `offset` in a segment with `salt`.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn frame_header(salt: u64, offset: u64, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let len = payload.len() as u32;
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    let hc = crc(&[&salt.to_le_bytes(), &offset.to_le_bytes(), &len.to_le_bytes()]);
    h[4..8].copy_from_slice(&hc.to_le_bytes());
    let pc = crc(&[&salt.to_le_bytes(), &offset.to_le_bytes(), payload]);
    h[8..12].copy_from_slice(&pc.to_le_bytes());
    h
}

/// Checks a frame header at `offset`: returns the payload length if the header is genuine.
fn header_len(salt: u64, offset: u64, h: &[u8]) -> Option<u32> {
    let mut r = Le::new(h);
    let len = r.u32()?;
    let hc = r.u32()?;
    (len > 0 && len <= MAX_FRAME_LEN && crc(&[&salt.to_le_bytes(), &offset.to_le_bytes(), &len.to_le_bytes()]) == hc)
        .then_some(len)
}

/// True when some genuine frame header starts anywhere in `bytes` (which begin at file offset `start`).
pub(crate) fn any_valid_header(salt: u64, start: u64, bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1))
        .any(|i| header_len(salt, start + i as u64, &bytes[i..i + FRAME_HEADER_LEN]).is_some())
}

/// True when a bad region starting at `hole`, followed by `bytes` (at file offset `start`), is corruption: some
/// genuine later frame records (in its `synced_len`) that the hole's bytes were already durable when it was
/// written. Otherwise the hole is unsynced data a crash lost while keeping later unsynced frames: a torn tail.
fn durable_hole(salt: u64, start: u64, bytes: &[u8], hole: u64) -> bool {
    let mut i = 0;
    while i + FRAME_HEADER_LEN <= bytes.len() {
        let off = start + i as u64;
        if let Some(len) = header_len(salt, off, &bytes[i..i + FRAME_HEADER_LEN]) {
            let (p0, p1) = (i + FRAME_HEADER_LEN, i + FRAME_HEADER_LEN + len as usize);
            if let Some(payload) = bytes.get(p0..p1) {
                let stored = u32::from_le_bytes([bytes[i + 8], bytes[i + 9], bytes[i + 10], bytes[i + 11]]);
                if crc(&[&salt.to_le_bytes(), &off.to_le_bytes(), payload]) == stored {
                    match crate::codec::PayloadDecoder::new(payload) {
                        Ok(d) if d.synced_len() <= hole => {
                            i = p1;
                            continue;
                        }
                        _ => return true,
                    }
                }
            }
        }
        i += 1;
    }
    false
}

/// True when the active segment at `path` is the remains of a creation a crash interrupted: its header is
/// missing or invalid and no genuine frame follows it. Anything else with a bad header is corruption.
pub(crate) fn torn_creation(vfs: &dyn Vfs, path: &Path, nonce: u64, seq: u32) -> Result<bool> {
    let file = vfs.open(path, OpenMode::Read).map_err(|e| Error::io("opening segment", path, e))?;
    let len = file.len().map_err(|e| Error::io("reading length of", path, e))?;
    let mut all = vec![0u8; len as usize];
    file.read_exact_at(&mut all, 0).map_err(|e| Error::io("reading", path, e))?;
    let rest = all.get(SEG_HEADER_LEN..).unwrap_or(&[]);
    Ok(!any_valid_header(segment_salt(nonce, seq), SEG_HEADER_LEN as u64, rest))
}

/// How a walk over a segment's frames ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte up to the end belongs to a valid frame.
    Clean,
    /// A torn tail starts at this offset (only possible in an active segment).
    Torn(u64),
}

/// How far a reader moves through a mapped segment before it releases the pages behind it (see
/// [`Mapping::release`](crate::vfs::Mapping::release)). Small enough that the mapped pages resident during a
/// replay stay around a MiB whatever the segment size (peak RSS counts them), large enough that the `madvise`
/// calls cost nothing measurable (one per MiB, against milliseconds of decoding). A multiple of the page size.
pub(crate) const RELEASE_STEP: u64 = 1 << 20;

/// Walks the frames of one segment.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct SegmentReader {
    path: PathBuf,
    source: Source,
    salt: u64,
    sealed: bool,
    pos: u64,
    end: Option<End>,
    /// Offset of the active segment's last step-index entry: index entries are written only after their
    /// frame was fsynced, so a bad frame at or before it is corruption, never a torn tail.
    durable_floor: Option<u64>,
    /// Mapped sources: everything below this offset (a multiple of [`RELEASE_STEP`]) has been released.
    released: u64,
    /// The segment's format version (bytes 8..10 of its header): which event kinds its frames may hold.
    format: u16,
}

/// Offset of the last readable entry of the active segment's index at `seg_path` (`None` without one).
fn index_floor(vfs: &dyn Vfs, seg_path: &Path, version: u32, seq: u32, salt: u64) -> Option<u64> {
    let ipath = seg_path.with_file_name(crate::format::idx_name(version, seq));
    let mut idx = crate::index::IndexReader::open(vfs, &ipath, version, seq, salt, false).ok()??;
    let n = idx.len();
    (n > 0).then(|| idx.get(n - 1).ok().map(|e| e.offset)).flatten()
}

impl SegmentReader {
    /// Opens segment `seq` of version `version` (with header nonce `nonce`) at `path`. Sealed segments are
    /// mapped and any bad frame is corruption; the active one is read with `pread` and may end torn.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        path: &Path,
        version: u32,
        seq: u32,
        nonce: u64,
        sealed: bool,
    ) -> Result<(SegmentReader, SegmentHeader)> {
        Self::open_with(vfs, path, version, seq, nonce, sealed, sealed)
    }

    /// [`open`](Self::open), mapping the segment only if `map` (and sealed): a lookup that reads a few frames
    /// at known offsets passes `false`, so a file system that fetches files on demand (an object-storage
    /// cache) is asked for those byte ranges, not the whole segment.
    pub(crate) fn open_with(
        vfs: &dyn Vfs,
        path: &Path,
        version: u32,
        seq: u32,
        nonce: u64,
        sealed: bool,
        map: bool,
    ) -> Result<(SegmentReader, SegmentHeader)> {
        let mut source = if sealed && map {
            let map = vfs.map(path).map_err(|e| Error::io("mapping segment", path, e))?;
            map.advise_sequential();
            Source::Mapped(map)
        } else {
            let file = vfs.open(path, OpenMode::Read).map_err(|e| Error::io("opening segment", path, e))?;
            Source::file(file, path, SEGMENT_CHUNK)?
        };
        let (header, format) = match source.get(path, 0, SEG_HEADER_LEN)? {
            Some(h) => {
                let format = crate::format::stored_version(h).unwrap_or(crate::format::FORMAT_VERSION);
                (SegmentHeader::decode(path, h, version, seq, nonce)?, format)
            }
            None => return Err(Error::corrupt(path, 0, "segment is shorter than its header")),
        };
        let salt = header.salt;
        let durable_floor = if sealed { None } else { index_floor(vfs, path, version, seq, salt) };
        Ok((
            SegmentReader {
                path: path.to_path_buf(),
                source,
                salt,
                sealed,
                pos: SEG_HEADER_LEN as u64,
                end: None,
                durable_floor,
                released: 0,
                format,
            },
            header,
        ))
    }

    /// A reader over one frame held in memory (a writer's buffered events, see `replay::Tail`), as if it
    /// stood at `offset` of segment `path` with salt `salt`: the frame passes the usual checks.
    pub(crate) fn memory(path: &Path, salt: u64, offset: u64, frame: Vec<u8>, format: u16) -> SegmentReader {
        SegmentReader {
            format,
            path: path.to_path_buf(),
            source: Source::Memory { base: offset, bytes: frame },
            salt,
            sealed: true,
            pos: offset,
            end: None,
            durable_floor: None,
            released: 0,
        }
    }

    /// A reader over a segment whose creation a crash interrupted (see [`torn_creation`]): it has no frames.
    pub(crate) fn empty(path: &Path, version: u32, seq: u32, nonce: u64) -> (SegmentReader, SegmentHeader) {
        let salt = segment_salt(nonce, seq);
        let reader = SegmentReader {
            path: path.to_path_buf(),
            source: Source::Mapped(std::sync::Arc::new(Vec::<u8>::new())),
            salt,
            sealed: false,
            pos: 0,
            end: None,
            durable_floor: None,
            released: 0,
            format: crate::format::FORMAT_VERSION,
        };
        (reader, SegmentHeader { seq, version, salt, base: Stats::default() })
    }

    /// The segment's format version: frames of a version-1 segment may not hold version-2 event kinds.
    pub(crate) fn format(&self) -> u16 {
        self.format
    }

    /// The segment's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Continues the walk at `offset`, which must be the start of a frame (from the step index).
    pub(crate) fn seek(&mut self, offset: u64) {
        self.pos = offset;
        self.end = None;
        // Pages below a backward seek are read again: they are released again as the walk passes them.
        self.released = self.released.min(offset / RELEASE_STEP * RELEASE_STEP);
    }

    /// Goes back to the first frame.
    pub(crate) fn restart(&mut self) {
        let first = if self.source.len() == 0 { 0 } else { SEG_HEADER_LEN as u64 };
        self.seek(first);
    }

    /// Offset of the next frame to read (after the walk ended: the end of the valid data).
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// How the walk ended, once `next_frame` returned `None`.
    pub(crate) fn end(&self) -> Option<End> {
        self.end
    }

    /// True when a genuine frame header (its CRC checked, not its payload's) starts at `offset`.
    pub(crate) fn frame_header_at(&mut self, offset: u64) -> Result<bool> {
        let salt = self.salt;
        Ok(self
            .source
            .get(&self.path, offset, FRAME_HEADER_LEN)?
            .is_some_and(|h| header_len(salt, offset, h).is_some()))
    }

    /// The next frame as `(offset, payload)`; `None` at the end of valid data.
    ///
    /// On a mapped source, the pages of whole [`RELEASE_STEP`]s before the next frame are released first, so a
    /// walk keeps about one step of the mapping resident, not the whole segment.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(u64, &[u8])>> {
        if self.end.is_some() {
            return Ok(None);
        }
        self.release_consumed();
        let pos = self.pos;
        let len = self.source.len();
        if pos == len {
            self.end = Some(End::Clean);
            return Ok(None);
        }
        let header_ok = match self.source.get(&self.path, pos, FRAME_HEADER_LEN)? {
            None => None,
            Some(h) => Some(header_len(self.salt, pos, h)),
        };
        let plen = match header_ok {
            // Fewer bytes than a frame header: a torn tail (nothing can follow it).
            None => return self.torn_or_corrupt(pos, false, "incomplete frame header at end of segment"),
            Some(None) => return self.torn_or_corrupt(pos, true, "frame header checksum mismatch"),
            Some(Some(l)) => l,
        };
        let start = pos + FRAME_HEADER_LEN as u64;
        if start + u64::from(plen) > len {
            return self.torn_or_corrupt(pos, false, "frame extends past the end of the segment");
        }
        let salt = self.salt;
        let expect = {
            let h = self
                .source
                .get(&self.path, pos, FRAME_HEADER_LEN)?
                .ok_or_else(|| Error::corrupt(&self.path, pos, "frame header vanished"))?;
            u32::from_le_bytes([h[8], h[9], h[10], h[11]])
        };
        let ok = {
            let p = self
                .source
                .get(&self.path, start, plen as usize)?
                .ok_or_else(|| Error::corrupt(&self.path, pos, "frame payload vanished"))?;
            crc(&[&salt.to_le_bytes(), &pos.to_le_bytes(), p]) == expect
        };
        if !ok {
            return self.torn_or_corrupt(pos, true, "frame payload checksum mismatch");
        }
        self.pos = start + u64::from(plen);
        let p = self
            .source
            .get(&self.path, start, plen as usize)?
            .ok_or_else(|| Error::corrupt(&self.path, pos, "frame payload vanished"))?;
        Ok(Some((pos, p)))
    }

    /// Releases the mapped pages of the whole [`RELEASE_STEP`]s below the read position. The payload lent by
    /// the previous `next_frame` ends at or before the position, and its borrow of `self` has ended by the time
    /// this runs (it takes `&mut self`), so nothing the reader lent points into the released range.
    fn release_consumed(&mut self) {
        let Source::Mapped(map) = &self.source else { return };
        let done = self.pos / RELEASE_STEP * RELEASE_STEP;
        if done > self.released {
            map.release(self.released as usize, (done - self.released) as usize);
            self.released = done;
        }
    }

    /// A bad frame at `pos`: corruption in a sealed segment, or when a genuine frame follows that was written
    /// after `pos` had been synced; otherwise the start of a torn tail. `look_after` is false when nothing can follow (the frame reaches EOF).
    fn torn_or_corrupt(&mut self, pos: u64, look_after: bool, why: &str) -> Result<Option<(u64, &[u8])>> {
        if self.sealed {
            return Err(Error::corrupt(&self.path, pos, format!("{why} in a sealed segment")));
        }
        if self.durable_floor.is_some_and(|f| pos <= f) {
            return Err(Error::corrupt(
                &self.path,
                pos,
                format!("{why}, in data the step index shows was synced: corruption, not a torn tail"),
            ));
        }
        if look_after {
            let len = self.source.len();
            let rest_len = (len - pos - 1) as usize;
            if let Some(rest) = self.source.get(&self.path, pos + 1, rest_len)? {
                if durable_hole(self.salt, pos + 1, rest, pos) {
                    return Err(Error::corrupt(
                        &self.path,
                        pos,
                        format!(
                            "{why}, and valid frames written after it was synced follow: corruption, not a torn tail"
                        ),
                    ));
                }
            }
        }
        self.end = Some(End::Torn(pos));
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::vfs::Mapping;

    /// In-memory mapped bytes that record every release.
    struct Counting {
        bytes: Vec<u8>,
        released: Mutex<Vec<(usize, usize)>>,
    }

    impl AsRef<[u8]> for Counting {
        fn as_ref(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl Mapping for Counting {
        fn release(&self, offset: usize, len: usize) {
            self.released.lock().unwrap().push((offset, len));
        }
    }

    /// A sealed segment body (no valid header needed by the frame walk): `n` frames of `size` bytes each.
    fn segment(salt: u64, n: usize, size: usize) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = vec![0u8; SEG_HEADER_LEN];
        let mut offsets = Vec::new();
        for i in 0..n {
            let payload: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
            offsets.push(bytes.len() as u64);
            bytes.extend_from_slice(&frame_header(salt, bytes.len() as u64, &payload));
            bytes.extend_from_slice(&payload);
        }
        (bytes, offsets)
    }

    fn reader(map: Arc<Counting>, salt: u64) -> SegmentReader {
        SegmentReader {
            path: PathBuf::from("v0-0.seg"),
            source: Source::Mapped(map),
            salt,
            sealed: true,
            pos: SEG_HEADER_LEN as u64,
            end: None,
            durable_floor: None,
            released: 0,
            format: crate::format::FORMAT_VERSION,
        }
    }

    /// The reader releases whole steps behind it, in order, never the frame it lends, and keeps at most one
    /// step plus a frame unreleased; a backward seek re-reads the same bytes and releases them again.
    #[test]
    fn mapped_walk_releases_consumed_steps() {
        let salt = 0x5eed;
        let (bytes, offsets) = segment(salt, 100, 60_000);
        let total = bytes.len() as u64;
        assert!(total > 5 * RELEASE_STEP);
        let map = Arc::new(Counting { bytes: bytes.clone(), released: Mutex::new(Vec::new()) });
        let mut r = reader(map.clone(), salt);
        let released_end = || map.released.lock().unwrap().iter().map(|&(o, l)| (o + l) as u64).max().unwrap_or(0);
        let mut seen = Vec::new();
        while let Some((off, payload)) = r.next_frame().unwrap() {
            let start = off as usize + FRAME_HEADER_LEN;
            assert_eq!(payload, &bytes[start..start + payload.len()]);
            assert!(released_end() <= off, "frame at {off} lent after its bytes were released");
            assert_eq!(released_end(), off / RELEASE_STEP * RELEASE_STEP);
            seen.push(off);
        }
        assert_eq!(seen, offsets);
        assert_eq!(r.end(), Some(End::Clean));
        let log = map.released.lock().unwrap().clone();
        let mut expect = 0u64;
        for &(o, l) in &log {
            assert_eq!(o as u64, expect, "releases are contiguous: {log:?}");
            assert!(
                (o as u64).is_multiple_of(RELEASE_STEP) && (l as u64).is_multiple_of(RELEASE_STEP),
                "whole steps: {log:?}"
            );
            expect += l as u64;
        }
        assert_eq!(expect, offsets[offsets.len() - 1] / RELEASE_STEP * RELEASE_STEP);

        // Seek back to a frame in the second step: same bytes again, and they are released again.
        let back = offsets.iter().copied().find(|&o| o > RELEASE_STEP + 1000).unwrap();
        r.seek(back);
        map.released.lock().unwrap().clear();
        let mut again = Vec::new();
        while let Some((off, _)) = r.next_frame().unwrap() {
            again.push(off);
        }
        assert_eq!(again, offsets.iter().copied().filter(|&o| o >= back).collect::<Vec<_>>());
        assert_eq!(map.released.lock().unwrap().first(), Some(&(RELEASE_STEP as usize, RELEASE_STEP as usize)));
    }
}
