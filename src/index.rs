//! The sparse step index of a segment (`vK-SEQ.idx`): one entry per frame that starts at least
//! [`INDEX_INTERVAL`](crate::format::INDEX_INTERVAL) bytes after the previous indexed frame.
//!
//! Each entry names a frame's offset and first step plus the statistics of the segment's events before it,
//! so seeks and fork-point lookups binary-search the index and decode at most a few KiB of frames. The
//! index is derived data: a writer appends to it without fsync and rebuilds it on recovery; it is fsynced
//! when the segment is sealed.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{build_fixed_header, check_fixed_header, crc, Le, IDX_MAGIC, INDEX_ENTRY_LEN, SMALL_HEADER_LEN};
use crate::source::Source;
use crate::stats::{opt, presence, unopt, Stats};
use crate::vfs::{OpenMode, Vfs};

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct IndexEntry {
    /// Step of the first event of the frame.
    pub first_step: u64,
    /// Offset of the frame in the segment.
    pub offset: u64,
    /// Statistics of the segment's events before the frame (not counting earlier segments).
    pub before: Stats,
}

impl IndexEntry {
    /// Encodes the entry (64 bytes), its CRC seeded with the segment salt.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn encode(&self, salt: u64) -> [u8; INDEX_ENTRY_LEN] {
        let mut e = [0u8; INDEX_ENTRY_LEN];
        let fields = [
            self.first_step,
            self.offset,
            self.before.rows,
            self.before.events,
            opt(self.before.first_log),
            opt(self.before.last_log),
            opt(self.before.last_event),
        ];
        for (i, f) in fields.iter().enumerate() {
            e[i * 8..i * 8 + 8].copy_from_slice(&f.to_le_bytes());
        }
        e[56..60].copy_from_slice(&(u32::from(self.before.last_is_finish) | presence(&self.before)).to_le_bytes());
        let c = crc(&[&salt.to_le_bytes(), &e[..60]]);
        e[60..64].copy_from_slice(&c.to_le_bytes());
        e
    }

    /// Decodes an entry; `None` if its CRC does not match.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn decode(salt: u64, e: &[u8]) -> Option<IndexEntry> {
        let body = e.get(..60)?;
        let mut r = Le::new(e);
        let mut f = [0u64; 7];
        for x in &mut f {
            *x = r.u64()?;
        }
        let flags = r.u32()?;
        let stored = r.u32()?;
        if crc(&[&salt.to_le_bytes(), body]) != stored {
            return None;
        }
        Some(IndexEntry {
            first_step: f[0],
            offset: f[1],
            before: Stats {
                rows: f[2],
                events: f[3],
                first_log: unopt(f[4], flags, 1),
                last_log: unopt(f[5], flags, 2),
                last_event: unopt(f[6], flags, 3),
                last_is_finish: flags & 1 != 0,
            },
        })
    }
}

/// Seed that sets a close record's CRC apart from an entry's: neither ever validates as the other.
const CLOSE_SEED: &[u8; 8] = b"FLKCLOSE";

/// What a close record says: the segment's length at close, and how many `Meta` events the version's own data
/// holds (all its segments), when the writer knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct Close {
    /// The segment's length when its writer closed.
    pub seg_len: u64,
    /// `Meta` events in the version's own data (`None`: unknown).
    pub meta_events: Option<u64>,
}

/// Encodes a **close record** (64 bytes, format version 2): written after the last entry of an active segment's
/// index when its writer closed cleanly (everything synced), it says the index is complete and durable for a
/// segment of `seg_len` bytes. Bytes 0..8 `seg_len`, 8..16 `u64::MAX` (no entry has that offset), 16..24 the
/// number of `Meta` events in the version's own data (`u64::MAX`: unknown), 24..56 zero, 56..60 `0x80000000`,
/// 60..64 CRC(salt ‖ `FLKCLOSE` ‖ bytes 0..60).
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn encode_close_record(salt: u64, close: Close) -> [u8; INDEX_ENTRY_LEN] {
    let mut e = [0u8; INDEX_ENTRY_LEN];
    e[0..8].copy_from_slice(&close.seg_len.to_le_bytes());
    e[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    e[16..24].copy_from_slice(&close.meta_events.unwrap_or(u64::MAX).to_le_bytes());
    e[56..60].copy_from_slice(&(1u32 << 31).to_le_bytes());
    let c = crc(&[&salt.to_le_bytes(), CLOSE_SEED, &e[..60]]);
    e[60..64].copy_from_slice(&c.to_le_bytes());
    e
}

/// The valid close record at the end of index file `bytes`, if there is one.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn close_record(salt: u64, bytes: &[u8]) -> Option<Close> {
    let body = bytes.len().checked_sub(SMALL_HEADER_LEN)?;
    if body == 0 || !body.is_multiple_of(INDEX_ENTRY_LEN) {
        return None;
    }
    decode_close(salt, &bytes[bytes.len() - INDEX_ENTRY_LEN..])
}

/// Decodes a close record (`None` unless it is one, CRC included).
fn decode_close(salt: u64, e: &[u8]) -> Option<Close> {
    let seg_len = u64::from_le_bytes(e.get(0..8)?.try_into().ok()?);
    let meta = u64::from_le_bytes(e.get(16..24)?.try_into().ok()?);
    let close = Close { seg_len, meta_events: (meta != u64::MAX).then_some(meta) };
    (e == encode_close_record(salt, close)).then_some(close)
}

/// The close record at the end of the index file at `path` (reading only its last 64 bytes), if valid.
pub(crate) fn read_close_record(vfs: &dyn Vfs, path: &Path, salt: u64) -> Option<Close> {
    let f = vfs.open(path, OpenMode::Read).ok()?;
    let len = f.len().ok()?;
    let body = len.checked_sub(SMALL_HEADER_LEN as u64)?;
    if body == 0 || !body.is_multiple_of(INDEX_ENTRY_LEN as u64) {
        return None;
    }
    let mut e = [0u8; INDEX_ENTRY_LEN];
    f.read_exact_at(&mut e, len - INDEX_ENTRY_LEN as u64).ok()?;
    decode_close(salt, &e)
}

/// Encodes an index file header (32 bytes).
pub(crate) fn encode_index_header(version: u32, seq: u32, salt: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(18);
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(&salt.to_le_bytes());
    build_fixed_header(SMALL_HEADER_LEN, &IDX_MAGIC, &body)
}

/// Random access to an index file's entries (mapped when sealed, `pread` otherwise), for binary search.
pub(crate) struct IndexReader {
    path: PathBuf,
    source: Source,
    salt: u64,
    count: usize,
    sealed: bool,
}

impl IndexReader {
    /// Opens the index of segment `seq`; `Ok(None)` if the file does not exist. An active segment's index
    /// may end in a torn entry, which is not counted.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        path: &Path,
        version: u32,
        seq: u32,
        salt: u64,
        sealed: bool,
    ) -> Result<Option<IndexReader>> {
        let mut source = if sealed {
            match vfs.map(path) {
                Ok(m) => Source::Mapped(m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("mapping index", path, e)),
            }
        } else {
            match vfs.open(path, OpenMode::Read) {
                Ok(f) => Source::file(f, path, 4096)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("opening index", path, e)),
            }
        };
        let header = source.get(path, 0, SMALL_HEADER_LEN)?;
        let checked = match header {
            Some(header) => check_fixed_header(path, header, SMALL_HEADER_LEN, &IDX_MAGIC).and_then(|h| {
                if h[10..28] != encode_index_header(version, seq, salt)[10..28] {
                    return Err(Error::corrupt(path, 0, "index header names another segment"));
                }
                Ok(())
            }),
            None => Err(Error::corrupt(path, 0, "index is shorter than its header")),
        };
        match checked {
            Ok(()) => {}
            // An active segment's index is derived data a crash may have torn: go without it.
            Err(_) if !sealed => return Ok(None),
            Err(e) => return Err(e),
        }
        let body = source.len() - SMALL_HEADER_LEN as u64;
        if sealed && !body.is_multiple_of(INDEX_ENTRY_LEN as u64) {
            return Err(Error::corrupt(path, source.len(), "partial entry at the end of a sealed index"));
        }
        let mut count = (body / INDEX_ENTRY_LEN as u64) as usize;
        // A close record after the last entry is not an entry.
        if count > 0 {
            let at = (SMALL_HEADER_LEN + (count - 1) * INDEX_ENTRY_LEN) as u64;
            if source.get(path, at, INDEX_ENTRY_LEN)?.is_some_and(|e| decode_close(salt, e).is_some()) {
                count -= 1;
            }
        }
        let mut r = IndexReader { path: path.to_path_buf(), source, salt, count, sealed };
        if !sealed && r.count > 0 && r.get(r.count - 1).is_err() {
            r.count -= 1;
        }
        Ok(Some(r))
    }

    /// The first step of the segment, from entry 0 (`None` if the index is empty, or if entry 0 of an active
    /// segment's index is torn: the caller reads the first frame instead).
    pub(crate) fn first_step(&mut self) -> Result<Option<u64>> {
        if self.count == 0 {
            return Ok(None);
        }
        match self.get(0) {
            Ok(e) => Ok(Some(e.first_step)),
            Err(_) if !self.sealed => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Forgets the entries from `len` on.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.count = self.count.min(len);
    }

    /// Entry `i`, checked.
    pub(crate) fn get(&mut self, i: usize) -> Result<IndexEntry> {
        let at = (SMALL_HEADER_LEN + i * INDEX_ENTRY_LEN) as u64;
        let bytes = self
            .source
            .get(&self.path, at, INDEX_ENTRY_LEN)?
            .ok_or_else(|| Error::corrupt(&self.path, at, "index entry past the end"))?;
        IndexEntry::decode(self.salt, bytes)
            .ok_or_else(|| Error::corrupt(&self.path, at, "index entry checksum mismatch"))
    }

    /// The last entry for which `pred` holds, where `pred` is true for a prefix of the entries.
    ///
    /// In an active segment's index, entries written after the last fsync may be garbage after a crash; an
    /// entry that fails its CRC there is treated as not satisfying `pred`. The answer may then be an earlier
    /// entry, which only means scanning a few more frames: any CRC-valid entry is genuine.
    pub(crate) fn last_where(&mut self, mut pred: impl FnMut(&IndexEntry) -> bool) -> Result<Option<IndexEntry>> {
        let (mut lo, mut hi) = (0usize, self.count);
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = match self.get(mid) {
                Ok(e) => e,
                Err(_) if !self.sealed => {
                    hi = mid;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if pred(&e) {
                best = Some(e);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(best)
    }
}

/// Parses a whole index file (its header, then every entry), as `verify` and the fuzz targets read it: entries
/// must increase; in an active segment's index the entries after the first bad one are ignored.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn parse_index(
    path: &Path,
    bytes: &[u8],
    version: u32,
    seq: u32,
    salt: u64,
    sealed: bool,
) -> Result<Vec<IndexEntry>> {
    let h = check_fixed_header(path, bytes, SMALL_HEADER_LEN, &IDX_MAGIC)?;
    if h[10..28] != encode_index_header(version, seq, salt)[10..28] {
        return Err(Error::corrupt(path, 0, "index header names another segment"));
    }
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut body = &bytes[SMALL_HEADER_LEN..];
    if close_record(salt, bytes).is_some() {
        // A close record after the last entry is not an entry.
        body = &body[..body.len() - INDEX_ENTRY_LEN];
    }
    let full = body.len() / INDEX_ENTRY_LEN;
    for i in 0..full {
        let at = (SMALL_HEADER_LEN + i * INDEX_ENTRY_LEN) as u64;
        let e = IndexEntry::decode(salt, &body[i * INDEX_ENTRY_LEN..(i + 1) * INDEX_ENTRY_LEN]);
        match e {
            Some(e) if entries.last().is_none_or(|p| p.offset < e.offset && p.first_step <= e.first_step) => {
                entries.push(e)
            }
            Some(_) => return Err(Error::corrupt(path, at, "index entries out of order")),
            // Unsynced entries of an active segment's index may be garbage after a crash: its valid prefix counts.
            None if !sealed => break,
            None => return Err(Error::corrupt(path, at, "index entry checksum mismatch")),
        }
    }
    if sealed && !body.len().is_multiple_of(INDEX_ENTRY_LEN) {
        let at = (SMALL_HEADER_LEN + full * INDEX_ENTRY_LEN) as u64;
        return Err(Error::corrupt(path, at, "partial entry at the end of a sealed index"));
    }
    Ok(entries)
}
