//! Recovery when a writer opens a run: cut a torn tail off the active segment and the key table (reported,
//! never silent), refuse to cut below bytes a fork points at (that is corruption), and bring the step index
//! back in line with the segment.
//!
//! Only the active segment is scanned (CRC of every frame, decoding only after the last index entry): the
//! cost is bounded by the segment size, not the history length. Sealed segments were fsynced when sealed;
//! readers and `verify` check them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::active::ActiveSeg;
use crate::catalog::{write_atomic, Catalog, Known, VersionView};
use crate::codec::frame_events;
use crate::error::{Error, Result};
use crate::format::{self, INDEX_INTERVAL, SEG_HEADER_LEN, SMALL_HEADER_LEN};
use crate::index::{encode_index_header, IndexEntry, IndexReader};
use crate::keys::read_keys;
use crate::report::Cut;
use crate::segment::{any_valid_header, End, SegmentHeader, SegmentReader};
use crate::stats::Stats;
use crate::value::Key;
use crate::vfs::{OpenMode, VfsFile};

/// The active segment after recovery.
pub(crate) struct Recovered {
    pub seg: Option<ActiveSeg>,
    /// `Meta` events in the version's own data, when known (no data, or the last close record still holds).
    pub own_meta: Option<u64>,
    pub own: Stats,
    pub next_seq: u32,
}

/// Fails if some version's base pointer points into `view`'s segment `seq` beyond `valid`.
fn check_pins(cat: &Catalog, view: &VersionView, seq: u32, valid: u64) -> Result<()> {
    for id in cat.run_ids()? {
        let Some(listing) = cat.listing(&id)? else { continue };
        for v in &listing.versions {
            let h = cat.header(&id, *v)?;
            if let Some(b) = &h.base {
                // A pointer at the start of the segment's own data (past its header) pins none of its bytes.
                let pinned = b.offset > valid && b.offset > SEG_HEADER_LEN as u64;
                if b.run_id == view.id && b.version == view.version && b.segment == seq && pinned {
                    return Err(Error::corrupt(
                        view.seg_path(seq),
                        valid,
                        format!("invalid bytes at the end of the segment, but {id}@v{v} inherits up to offset {}: refusing to cut data a fork uses", b.offset),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Recovers the active (last) segment of `view`.
/// Every cut is added to `cuts`.
pub(crate) fn recover_active(cat: &Catalog, view: &VersionView, cuts: &mut Vec<Cut>) -> Result<Recovered> {
    let vfs = &*cat.vfs;
    if view.segs == 0 {
        return Ok(Recovered { seg: None, own_meta: Some(0), own: Stats::default(), next_seq: 0 });
    }
    let seq = view.segs - 1;
    let path = view.seg_path(seq);
    let file: Arc<dyn VfsFile> =
        Arc::from(vfs.open(&path, OpenMode::ReadWrite).map_err(|e| Error::io("opening segment", &path, e))?);
    let len = file.len().map_err(|e| Error::io("reading length of", &path, e))?;
    let mut head = vec![0u8; (len as usize).min(SEG_HEADER_LEN)];
    file.read_exact_at(&mut head, 0).map_err(|e| Error::io("reading", &path, e))?;
    let header = match SegmentHeader::decode(&path, &head, view.version, seq, view.header.nonce) {
        Ok(h) => h,
        Err(err) => {
            // A segment whose creation was cut short holds no genuine frame: drop it whole.
            let mut all = vec![0u8; len as usize];
            file.read_exact_at(&mut all, 0).map_err(|e| Error::io("reading", &path, e))?;
            let salt = format::segment_salt(view.header.nonce, seq);
            let rest = all.get(SEG_HEADER_LEN..).unwrap_or(&[]);
            if any_valid_header(salt, SEG_HEADER_LEN as u64, rest) {
                return Err(err);
            }
            check_pins(cat, view, seq, 0)?;
            drop(file);
            vfs.remove_file(&path).map_err(|e| Error::io("removing torn segment", &path, e))?;
            let idx = view.idx_path(seq);
            let idx_len = vfs.open(&idx, OpenMode::Read).and_then(|f| f.len()).ok();
            let _ = vfs.remove_file(&idx);
            let _ = vfs.remove_file(&crate::zonemap::zone_path(view, seq));
            vfs.sync_dir(&view.dir).map_err(|e| Error::io("syncing directory", &view.dir, e))?;
            cuts.push(Cut { file: path, bytes_cut: len, valid_len: 0 });
            if let Some(n) = idx_len {
                cuts.push(Cut { file: idx, bytes_cut: n, valid_len: 0 });
            }
            if seq == 0 {
                return Ok(Recovered { seg: None, own_meta: Some(0), own: Stats::default(), next_seq: 0 });
            }
            // The segment before it was sealed when this one was created (synced, maybe mapped by readers
            // as sealed): it is never cut or appended to again. Damage in it is corruption; the writer
            // starts segment `seq` afresh.
            let own = sealed_stats(cat, view, seq - 1)?;
            return Ok(Recovered { seg: None, own_meta: None, own, next_seq: seq });
        }
    };
    recover_segment(cat, view, seq, file, header, cuts)
}

/// Statistics of the events up to the end of sealed segment `seq` (every frame checked: a bad one is corruption).
fn sealed_stats(cat: &Catalog, view: &VersionView, seq: u32) -> Result<Stats> {
    let path = view.seg_path(seq);
    let (mut reader, header) = SegmentReader::open(&*cat.vfs, &path, view.version, seq, view.header.nonce, true)?;
    let mut inseg = Stats::default();
    let format = reader.format();
    while let Some((off, payload)) = reader.next_frame()? {
        for (ev, _) in frame_events(&path, off, payload, format)? {
            inseg.push(&ev);
        }
    }
    Ok(header.base.then(&inseg))
}

fn recover_segment(
    cat: &Catalog,
    view: &VersionView,
    seq: u32,
    file: Arc<dyn VfsFile>,
    header: SegmentHeader,
    cuts: &mut Vec<Cut>,
) -> Result<Recovered> {
    let vfs = &*cat.vfs;
    let path = view.seg_path(seq);
    let len = file.len().map_err(|e| Error::io("reading length of", &path, e))?;
    // 1. CRC-check every frame: find the valid end, and fail on corruption followed by valid frames.
    let (mut reader, _) = SegmentReader::open(vfs, &path, view.version, seq, view.header.nonce, false)?;
    let mut offsets = Vec::new();
    while let Some((off, _)) = reader.next_frame()? {
        offsets.push(off);
    }
    let valid = reader.position();
    if let Some(End::Torn(at)) = reader.end() {
        check_pins(cat, view, seq, at)?;
        file.set_len(at).map_err(|e| Error::io("truncating torn tail of", &path, e))?;
        cuts.push(Cut { file: path.clone(), bytes_cut: len - at, valid_len: at });
    }
    // What survived is made durable, so the frames appended next can say so (their `synced_len`).
    file.sync_data().map_err(|e| Error::io("syncing", &path, e))?;
    cat.known.note(&Known::key(view, seq), valid, valid);
    // 2. Keep the index entries that match frames; decode only the frames after the last one. A close record
    // whose segment length is still the segment's says how many Meta events the version holds.
    let ipath = view.idx_path(seq);
    let closed = crate::index::read_close_record(vfs, &ipath, header.salt).is_some();
    let own_meta = crate::index::read_close_record(vfs, &ipath, header.salt)
        .filter(|c| c.seg_len == valid && c.seg_len == len)
        .and_then(|c| c.meta_events);
    let mut kept: Vec<IndexEntry> = Vec::new();
    let mut rewrite = false;
    let old_idx_len = vfs.open(&ipath, OpenMode::Read).and_then(|f| f.len()).ok();
    match IndexReader::open(vfs, &ipath, view.version, seq, header.salt, false) {
        Ok(Some(mut idx)) => {
            for i in 0..idx.len() {
                match idx.get(i) {
                    Ok(e) if e.offset < valid && offsets.binary_search(&e.offset).is_ok() => kept.push(e),
                    Ok(e) if e.offset >= valid => {
                        rewrite = true;
                        break;
                    }
                    _ => {
                        kept.clear();
                        rewrite = true;
                        break;
                    }
                }
            }
        }
        Ok(None) => rewrite = true,
        Err(_) => rewrite = true,
    }
    let (mut inseg, start) = match kept.last() {
        Some(e) => (e.before, e.offset),
        None => (Stats::default(), SEG_HEADER_LEN as u64),
    };
    let mut last_indexed = kept.last().map(|e| e.offset);
    let mut fresh = Vec::new();
    let (mut reader, _) = SegmentReader::open(vfs, &path, view.version, seq, view.header.nonce, false)?;
    let seg_format = reader.format();
    reader.seek(start);
    let format = reader.format();
    while let Some((off, payload)) = reader.next_frame()? {
        if off >= valid {
            break;
        }
        let events = frame_events(&path, off, payload, format)?;
        if kept.last().is_none_or(|e| off > e.offset) && last_indexed.is_none_or(|l| off - l >= INDEX_INTERVAL) {
            let first_step = events.first().map_or(0, |(e, _)| e.step());
            fresh.push(IndexEntry { first_step, offset: off, before: inseg });
            last_indexed = Some(off);
        }
        if kept.last().is_some_and(|e| off == e.offset) && last_indexed.is_none() {
            last_indexed = Some(off);
        }
        for (ev, _) in &events {
            inseg.push(ev);
        }
    }
    // 3. Write the index back: append the missing entries, or rewrite it if it disagreed.
    let ih = encode_index_header(view.version, seq, header.salt);
    let entries_len = |n: usize| (SMALL_HEADER_LEN + n * format::INDEX_ENTRY_LEN) as u64;
    let idx = if rewrite {
        let mut bytes = ih.clone();
        for e in kept.iter().chain(&fresh) {
            bytes.extend_from_slice(&e.encode(header.salt));
        }
        write_atomic(vfs, &view.dir, &format::idx_name(view.version, seq), &bytes, true)?;
        vfs.open(&ipath, OpenMode::ReadWrite).map_err(|e| Error::io("opening index", &ipath, e))?
    } else {
        let f = vfs.open(&ipath, OpenMode::ReadWrite).map_err(|e| Error::io("opening index", &ipath, e))?;
        let at = entries_len(kept.len());
        f.set_len(at).map_err(|e| Error::io("truncating index", &ipath, e))?;
        let mut bytes = Vec::new();
        for e in &fresh {
            bytes.extend_from_slice(&e.encode(header.salt));
        }
        f.write_all_at(&bytes, at).map_err(|e| Error::io("writing index", &ipath, e))?;
        f
    };
    let idx_len = entries_len(kept.len() + fresh.len());
    // Entries past the kept ones (of frames that were cut, or torn) are removed: report them. A close record
    // (a clean close's note, replaced by the next close) is not data.
    let valid_idx = entries_len(kept.len());
    let close_len = if closed { format::INDEX_ENTRY_LEN as u64 } else { 0 };
    if let Some(old) = old_idx_len.map(|n| n.saturating_sub(close_len)).filter(|n| *n > valid_idx) {
        cuts.push(Cut { file: ipath.clone(), bytes_cut: old - valid_idx, valid_len: valid_idx });
    }
    let own = header.base.then(&inseg);
    Ok(Recovered {
        seg: Some(ActiveSeg {
            seq,
            file,
            len: valid,
            salt: header.salt,
            idx,
            idx_len,
            last_indexed,
            synced: valid,
            inseg,
            pending_idx: Vec::new(),
            pending_offs: Vec::new(),
            format: seg_format,
            // Issue 12: the zone map, completed for the frames it lacks (derived data: on failure, none).
            zone: crate::zonemap::ZoneLog::resume(cat, view, seq, valid).ok(),
        }),
        own_meta,
        own,
        next_seq: seq + 1,
    })
}

/// A key table opened for appending: ids by key, the file (if it exists) and its valid length.
pub(crate) type RecoveredKeys = (HashMap<Key, u32>, Option<Box<dyn VfsFile>>, u64);

/// Loads the key table for writing, cutting a torn tail.
pub(crate) fn recover_keys(cat: &Catalog, view: &VersionView, cuts: &mut Vec<Cut>) -> Result<RecoveredKeys> {
    let vfs = &*cat.vfs;
    let path = view.keys_path();
    let table = read_keys(vfs, &path, view.version, view.header.nonce, true)?;
    if !vfs.exists(&path) {
        return Ok((HashMap::new(), None, 0));
    }
    if table.torn && table.valid_len < crate::format::SMALL_HEADER_LEN as u64 {
        // Its creation was cut short: remove it; the writer creates it again with its first key.
        let len = vfs.open(&path, OpenMode::Read).and_then(|f| f.len()).unwrap_or(0);
        cuts.push(Cut { file: path.clone(), bytes_cut: len, valid_len: 0 });
        vfs.remove_file(&path).map_err(|e| Error::io("removing torn key table", &path, e))?;
        vfs.sync_dir(&view.dir).map_err(|e| Error::io("syncing directory", &view.dir, e))?;
        cat.forget_keys(&view.id);
        return Ok((HashMap::new(), None, 0));
    }
    let f = vfs.open(&path, OpenMode::ReadWrite).map_err(|e| Error::io("opening key table", &path, e))?;
    if table.torn {
        let len = f.len().map_err(|e| Error::io("reading length of", &path, e))?;
        cuts.push(Cut {
            file: path.clone(),
            bytes_cut: len.saturating_sub(table.valid_len),
            valid_len: table.valid_len,
        });
        f.set_len(table.valid_len).map_err(|e| Error::io("truncating key table", &path, e))?;
        f.sync_data().map_err(|e| Error::io("syncing key table", &path, e))?;
        cat.forget_keys(&view.id);
    }
    let map = table.keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u32)).collect();
    Ok((map, Some(f), table.valid_len))
}

/// Recovers the current version of a run before a rewind archives it, and makes its last segment and
/// index durable: from now on it is sealed.
/// Every cut is added to `cuts`.
pub(crate) fn seal_for_rewind(cat: &Catalog, view: &VersionView, cuts: &mut Vec<Cut>) -> Result<()> {
    recover_keys(cat, view, cuts)?;
    let rec = recover_active(cat, view, cuts)?;
    if let Some(seg) = rec.seg {
        let path = view.seg_path(seg.seq);
        seg.file.sync_data().map_err(|e| Error::io("syncing", &path, e))?;
        if seg.format >= 2 {
            // Everything is durable and complete: the archived version keeps a close record (recovery dropped
            // the old one), with its count of Meta events when known.
            let close = crate::index::Close { seg_len: seg.len, meta_events: rec.own_meta };
            let bytes = crate::index::encode_close_record(seg.salt, close);
            seg.idx.write_all_at(&bytes, seg.idx_len).map_err(|e| Error::io("writing index of", &path, e))?;
        }
        seg.idx.sync_data().map_err(|e| Error::io("syncing index of", &path, e))?;
        let mut seg = seg;
        seg.write_pending_zone(true).map_err(|e| Error::io("writing zone map of", &path, e))?;
    }
    Ok(())
}

/// Key names by id from the id map.
pub(crate) fn table_order(keys: &HashMap<Key, u32>) -> Vec<Key> {
    let mut list: Vec<(u32, Key)> = keys.iter().map(|(k, id)| (*id, k.clone())).collect();
    list.sort_unstable_by_key(|(id, _)| *id);
    list.into_iter().map(|(_, k)| k).collect()
}
