//! [`Store::verify`](crate::Store::verify): read every byte of every file and check it against the format:
//! headers, key tables, every frame's CRCs and events, every index entry against the frames it names, and
//! every fork pointer against the event boundaries of the data it pins.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::catalog::{read_all, VersionView};
use crate::error::{Error, Result};
use crate::format::{self, INDEX_INTERVAL, SEG_HEADER_LEN};
use crate::header::VersionHeader;
use crate::index::{parse_index, IndexEntry};
use crate::keys::parse_keys;
use crate::report::{Problem, ProblemKind, VerifyReport};
use crate::scan::frame_events;
use crate::segment::{torn_creation, End, SegmentReader};
use crate::stats::Stats;
use crate::store::StoreInner;

struct Checker<'a> {
    inner: &'a StoreInner,
    report: VerifyReport,
}

impl Checker<'_> {
    fn problem(&mut self, file: &Path, offset: u64, kind: ProblemKind, message: impl Into<String>) {
        self.report.problems.push(Problem { file: file.to_path_buf(), offset, kind, message: message.into() });
    }

    fn error(&mut self, e: Error, fallback: &Path) {
        match e {
            Error::Corrupt { file, offset, reason } => self.problem(&file, offset, ProblemKind::Corrupt, reason),
            Error::UnsupportedFormat { file, found, supported } => self.problem(
                &file,
                8,
                ProblemKind::Corrupt,
                format!("format version {found}, this build reads {supported}"),
            ),
            other => self.problem(fallback, 0, ProblemKind::Corrupt, other.to_string()),
        }
    }

    fn read(&mut self, path: &Path) -> Option<Vec<u8>> {
        match read_all(&*self.inner.catalog.vfs, path) {
            Ok(b) => {
                self.report.files += 1;
                self.report.bytes += b.len() as u64;
                Some(b)
            }
            Err(e) => {
                self.error(e, path);
                None
            }
        }
    }

    /// Checks one segment; returns the event end offsets that are pinned by forks and were found.
    fn segment(
        &mut self,
        view: &VersionView,
        seq: u32,
        nkeys: usize,
        pins: &[u64],
        zstate: &mut Option<(crate::zonemap::OwnState, Option<u64>)>,
    ) -> Vec<u64> {
        let vfs = &*self.inner.catalog.vfs;
        let path = view.seg_path(seq);
        let sealed = view.sealed(seq);
        let mut found = Vec::new();
        let (mut reader, header) = match SegmentReader::open(vfs, &path, view.version, seq, view.header.nonce, sealed) {
            Ok(x) => x,
            Err(e) => {
                if !sealed && e.is_corruption() && torn_creation(vfs, &path, view.header.nonce, seq).unwrap_or(false) {
                    let msg = "segment creation interrupted by a crash (removed by the next writer)";
                    self.problem(&path, 0, ProblemKind::TornTail, msg);
                } else {
                    self.error(e, &path);
                }
                return found;
            }
        };
        if pins.contains(&(SEG_HEADER_LEN as u64)) {
            found.push(SEG_HEADER_LEN as u64);
        }
        let mut expected: Vec<IndexEntry> = Vec::new();
        let mut inseg = Stats::default();
        let mut failed = false;
        // Issue 12: the zone-map blocks the frames make.
        let mut zblocks: Vec<crate::zonemap::Block> = Vec::new();
        loop {
            let (off, payload) = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.error(e, &path);
                    failed = true;
                    break;
                }
            };
            let events = match frame_events(&path, off, payload) {
                Ok(ev) => ev,
                Err(e) => {
                    self.error(e, &path);
                    failed = true;
                    break;
                }
            };
            match crate::zonemap::blocks_of(off, payload) {
                Ok(b) => zblocks.extend(b),
                Err(_) => *zstate = None,
            }
            if expected.last().is_none_or(|l| off - l.offset >= INDEX_INTERVAL) {
                let first_step = events.first().map_or(0, |(e, _)| e.step());
                expected.push(IndexEntry { first_step, offset: off, before: inseg });
            }
            for (ev, end) in &events {
                if ev.max_key().is_some_and(|k| k as usize >= nkeys) {
                    self.problem(&path, off, ProblemKind::Corrupt, "an event uses a key id missing from the key table");
                }
                inseg.push(ev);
                if pins.contains(end) {
                    found.push(*end);
                }
            }
        }
        let len = reader.position();
        self.report.files += 1;
        self.report.bytes += len;
        if let Some(End::Torn(at)) = reader.end() {
            self.problem(
                &path,
                at,
                ProblemKind::TornTail,
                "incomplete write at the end of the active segment (cut by the next writer)",
            );
        }
        if failed {
            *zstate = None;
            return found;
        }
        // Issue 12: the zone map (derived data) against the frames.
        let (zbytes, zproblems) = crate::zonemap::verify_segment(vfs, view, seq, sealed, &zblocks, zstate);
        if let Some(n) = zbytes {
            self.report.files += 1;
            self.report.bytes += n;
        }
        self.report.problems.extend(zproblems);
        // The index must list exactly the frames the writer's rule indexes (an active one may lag).
        let ipath = view.idx_path(seq);
        if !vfs.exists(&ipath) {
            if sealed {
                self.problem(&ipath, 0, ProblemKind::Corrupt, "the step index of a sealed segment is missing");
            }
            return found;
        }
        let Some(bytes) = self.read(&ipath) else { return found };
        match parse_index(&ipath, &bytes, view.version, seq, header.salt, sealed) {
            // An active segment's index is derived data whose creation a crash may have cut short.
            Err(_) if !sealed && bytes.len() < format::SMALL_HEADER_LEN => {
                let msg = "index creation interrupted by a crash (rebuilt by the next writer)";
                self.problem(&ipath, 0, ProblemKind::TornTail, msg);
            }
            Ok(mut entries) => {
                if !sealed {
                    // Unsynced entries past a torn tail are part of the torn tail.
                    entries.retain(|e| e.offset < len);
                }
                let ok = if sealed { entries == expected } else { expected.starts_with(&entries) };
                if !ok {
                    let at = entries
                        .iter()
                        .zip(&expected)
                        .position(|(a, b)| a != b)
                        .unwrap_or(entries.len().min(expected.len()));
                    let off = (format::SMALL_HEADER_LEN + at * format::INDEX_ENTRY_LEN) as u64;
                    self.problem(&ipath, off, ProblemKind::Corrupt, "index entries do not match the segment's frames");
                }
            }
            Err(e) => self.error(e, &ipath),
        }
        found
    }
}

/// Verifies every file of the store.
pub(crate) fn verify(inner: &StoreInner) -> Result<VerifyReport> {
    let cat = &inner.catalog;
    let mut c = Checker { inner, report: VerifyReport::default() };
    let store_file = inner.root.join(format::STORE_FILE);
    if let Some(b) = c.read(&store_file) {
        if let Err(e) = format::check_fixed_header(&store_file, &b, format::STORE_FILE_LEN, &format::STORE_MAGIC) {
            c.error(e, &store_file);
        }
    }
    // Pass 1: headers, and the fork pointers they hold.
    let mut runs = Vec::new();
    let mut pins: HashMap<(String, u32, u32), Vec<(u64, String)>> = HashMap::new();
    for id in cat.run_ids()? {
        let listing = match cat.listing(&id) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                c.error(e, &cat.run_dir(&id));
                continue;
            }
        };
        if listing.deleted {
            let p = cat.run_dir(&id).join(format::DELETED_FILE);
            if let Some(b) = c.read(&p) {
                if let Err(e) = format::check_fixed_header(&p, &b, format::SMALL_HEADER_LEN, &format::DELETED_MAGIC) {
                    c.error(e, &p);
                }
            }
        }
        let mut ok_versions = BTreeMap::new();
        for v in &listing.versions {
            let p = cat.run_dir(&id).join(format::head_name(*v));
            let Some(b) = c.read(&p) else { continue };
            match VersionHeader::decode(&p, &b) {
                Ok(h) if h.run_id == id && h.version == *v => {
                    if let Some(base) = &h.base {
                        pins.entry((base.run_id.clone(), base.version, base.segment))
                            .or_default()
                            .push((base.offset, format!("{id}@v{v}")));
                    }
                    ok_versions.insert(*v, ());
                }
                Ok(_) => c.problem(&p, 16, ProblemKind::Corrupt, "header names another run or version"),
                Err(e) => c.error(e, &p),
            }
        }
        runs.push((id, listing, ok_versions));
    }
    // Pass 2: key tables, segments and indexes.
    let mut found_pins: HashMap<(String, u32, u32), Vec<u64>> = HashMap::new();
    for (id, listing, ok_versions) in &runs {
        for v in ok_versions.keys() {
            let view = match cat.view_in(id, listing, *v) {
                Ok(view) => view,
                Err(e) => {
                    c.error(e, &cat.run_dir(id));
                    continue;
                }
            };
            let kpath = view.keys_path();
            let mut nkeys = 0;
            if inner.catalog.vfs.exists(&kpath) {
                if let Some(b) = c.read(&kpath) {
                    match parse_keys(&kpath, &b, view.version, view.header.nonce, view.current) {
                        Ok(t) => {
                            nkeys = t.keys.len();
                            if t.torn {
                                c.problem(
                                    &kpath,
                                    t.valid_len,
                                    ProblemKind::TornTail,
                                    "incomplete key record at the end (cut by the next writer)",
                                );
                            }
                        }
                        Err(e) => c.error(e, &kpath),
                    }
                }
            }
            let mut zstate = Some(Default::default());
            for seq in 0..view.segs {
                let key = (id.clone(), *v, seq);
                let want: Vec<u64> = pins.get(&key).map(|p| p.iter().map(|(o, _)| *o).collect()).unwrap_or_default();
                let found = c.segment(&view, seq, nkeys, &want, &mut zstate);
                found_pins.insert(key, found);
            }
        }
    }
    // Every fork pointer must land on an event boundary of data that exists.
    let mut keys: Vec<_> = pins.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let found = found_pins.get(&key);
        for (off, child) in &pins[&key] {
            let ok = match found {
                Some(f) => f.contains(off),
                None => key.2 == 0 && *off == SEG_HEADER_LEN as u64,
            };
            if !ok {
                let (run, version, seq) = &key;
                let p = cat.run_dir(run).join(format::seg_name(*version, *seq));
                c.problem(
                    &p,
                    *off,
                    ProblemKind::Corrupt,
                    format!("{child} inherits up to this offset, which is not the end of an event"),
                );
            }
        }
    }
    Ok(c.report)
}
