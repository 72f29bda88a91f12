//! [`Store::verify`](crate::Store::verify): read every byte of every file and check it against the format:
//! headers, key tables, every frame's CRCs and events, every index entry against the frames it names, and
//! every fork pointer against the event boundaries of the data it pins.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::catalog::{read_all, Catalog, VersionView};
use crate::codec::frame_events;
use crate::error::{Error, Result};
use crate::format::{self, INDEX_INTERVAL, SEG_HEADER_LEN};
use crate::header::VersionHeader;
use crate::index::{parse_index, IndexEntry};
use crate::keys::parse_keys;
use crate::report::{Problem, ProblemKind, VerifyReport};
use crate::segment::{torn_creation, End, SegmentReader};
use crate::stats::Stats;

struct Checker<'a> {
    cat: &'a Catalog,
    report: VerifyReport,
    /// Indexes found damaged or missing, with what they should hold: what [`repair`](crate::Store::repair) rewrites.
    rebuild: Vec<Rebuild>,
    /// `Meta` events met so far in the current version's own data (checked against its close record).
    meta_seen: u64,
}

/// A step index to rewrite from its segment.
pub(crate) struct Rebuild {
    /// The run and version.
    pub run: String,
    /// The version number.
    pub version: u32,
    /// The segment number.
    pub seq: u32,
    /// The index file.
    pub ipath: std::path::PathBuf,
    /// The segment file.
    pub seg: std::path::PathBuf,
    /// The entries the segment's frames call for.
    pub entries: Vec<IndexEntry>,
    /// The segment's salt.
    pub salt: u64,
    /// Whether the segment is sealed.
    pub sealed: bool,
    /// For a cleanly closed active segment: the close record to write back.
    pub closed: Option<crate::index::Close>,
}

/// Why an index problem is worth a repair rather than alarm about the data.
const DERIVED: &str = "the step index is derived data: `forklog verify --repair` (or `Store::repair`) rebuilds it";

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
        match read_all(&*self.cat.vfs, path) {
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
        let vfs = &*self.cat.vfs;
        let path = view.seg_path(seq);
        let sealed = view.sealed(seq);
        let mut found = Vec::new();
        let (mut reader, header) = match SegmentReader::open(vfs, &path, view.version, seq, view.header.nonce, sealed) {
            Ok(x) => x,
            Err(e) => {
                if !sealed && e.is_corruption() && torn_creation(vfs, &path, view.header.nonce, seq).unwrap_or(false) {
                    let msg = "segment creation interrupted by a crash (removed by the next writer)";
                    self.problem(&path, 0, ProblemKind::TornTail, msg);
                    // A pointer to the start of its own data pins nothing in it.
                    if pins.contains(&(SEG_HEADER_LEN as u64)) {
                        found.push(SEG_HEADER_LEN as u64);
                    }
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
        let format = reader.format();
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
            let events = match frame_events(&path, off, payload, format) {
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
                if matches!(ev, crate::codec::RawEvent::Meta { .. }) {
                    self.meta_seen += 1;
                }
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
        // The index must list exactly the frames the writer's rule indexes (an active one may lag, unless its
        // writer closed cleanly: then a close record ends it, and it must be complete).
        let ipath = view.idx_path(seq);
        let clean_end = reader.end() == Some(End::Clean);
        let mut rebuild = Rebuild {
            run: view.id.clone(),
            version: view.version,
            seq,
            ipath: ipath.clone(),
            seg: path.clone(),
            entries: expected.clone(),
            salt: header.salt,
            sealed,
            closed: None,
        };
        if !vfs.exists(&ipath) {
            if sealed {
                let msg = format!("the step index of a sealed segment is missing; {DERIVED}");
                self.problem(&ipath, 0, ProblemKind::Corrupt, msg);
                self.rebuild.push(rebuild);
            }
            return found;
        }
        let Some(bytes) = self.read(&ipath) else { return found };
        let closed = (clean_end && format >= 2)
            .then(|| crate::index::close_record(header.salt, &bytes))
            .flatten()
            .filter(|c| c.seg_len == len);
        if let Some(c) = closed {
            rebuild.closed = Some(crate::index::Close { seg_len: c.seg_len, meta_events: Some(self.meta_seen) });
            if c.meta_events.is_some_and(|n| n != self.meta_seen) {
                let at = (bytes.len() - format::INDEX_ENTRY_LEN) as u64;
                let msg = format!(
                    "the close record counts {} Meta events, the version's data holds {}; {DERIVED}",
                    c.meta_events.unwrap_or_default(),
                    self.meta_seen
                );
                self.problem(&ipath, at, ProblemKind::Corrupt, msg);
                self.rebuild.push(rebuild);
                return found;
            }
            let body = &bytes[..bytes.len() - format::INDEX_ENTRY_LEN];
            match parse_index(&ipath, body, view.version, seq, header.salt, true) {
                Ok(entries) if entries == expected => {}
                Ok(entries) => {
                    let at = entries
                        .iter()
                        .zip(&expected)
                        .position(|(a, b)| a != b)
                        .unwrap_or(entries.len().min(expected.len()));
                    let off = (format::SMALL_HEADER_LEN + at * format::INDEX_ENTRY_LEN) as u64;
                    let msg = format!(
                        "index entries do not match the segment's frames, though its writer closed cleanly; {DERIVED}"
                    );
                    self.problem(&ipath, off, ProblemKind::Corrupt, msg);
                    self.rebuild.push(rebuild);
                }
                Err(Error::Corrupt { file, offset, reason }) => {
                    let msg = format!("{reason}, though the segment's writer closed cleanly; {DERIVED}");
                    self.problem(&file, offset, ProblemKind::Corrupt, msg);
                    self.rebuild.push(rebuild);
                }
                Err(e) => self.error(e, &ipath),
            }
            return found;
        }
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
                    let msg = format!("index entries do not match the segment's frames; {DERIVED}");
                    self.problem(&ipath, off, ProblemKind::Corrupt, msg);
                    self.rebuild.push(rebuild);
                }
            }
            Err(Error::Corrupt { file, offset, reason }) if sealed => {
                self.problem(&file, offset, ProblemKind::Corrupt, format!("{reason}; {DERIVED}"));
                self.rebuild.push(rebuild);
            }
            Err(e) => self.error(e, &ipath),
        }
        found
    }
}

/// Verifies every file of the store.
pub(crate) fn verify(cat: &Catalog, root: &Path) -> Result<VerifyReport> {
    Ok(check(cat, root)?.0)
}

/// Verifies every file of the store; also returns the indexes a repair would rewrite.
pub(crate) fn check(cat: &Catalog, root: &Path) -> Result<(VerifyReport, Vec<Rebuild>)> {
    let mut c = Checker { cat, report: VerifyReport::default(), rebuild: Vec::new(), meta_seen: 0 };
    let store_file = root.join(format::STORE_FILE);
    if let Some(b) = c.read(&store_file) {
        if let Err(e) = format::check_fixed_header(&store_file, &b, format::STORE_FILE_LEN, &format::STORE_MAGIC) {
            c.error(e, &store_file);
        }
    }
    // Pass 1: headers, and the fork pointers they hold.
    let mut runs = Vec::new();
    let mut pins: HashMap<(String, u32, u32), Vec<(u64, String)>> = HashMap::new();
    // (child version, pinned segment, offset)
    type Pointer = ((String, u32), (String, u32, u32), u64);
    let mut pointers: Vec<Pointer> = Vec::new();
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
                        pointers.push((
                            (id.clone(), *v),
                            (base.run_id.clone(), base.version, base.segment),
                            base.offset,
                        ));
                    }
                    ok_versions.insert(*v, ());
                }
                Ok(_) => c.problem(&p, 16, ProblemKind::Corrupt, "header names another run or version"),
                Err(e) => c.error(e, &p),
            }
        }
        runs.push((id, listing, ok_versions));
    }
    // Only pointers of versions something can still read are checked: a live run's, and those a live run
    // reaches through base pointers. A deleted run nothing reaches is garbage: `gc` may have removed what it
    // points at before it (a crash in the middle of a `gc`) and removes the rest next time.
    let mut reachable: std::collections::HashSet<(String, u32)> = std::collections::HashSet::new();
    for (id, listing, ok_versions) in &runs {
        if !listing.deleted {
            reachable.extend(ok_versions.keys().map(|v| (id.clone(), *v)));
        }
    }
    loop {
        let before = reachable.len();
        for (child, (run, version, _), _) in &pointers {
            if reachable.contains(child) {
                reachable.insert((run.clone(), *version));
            }
        }
        if reachable.len() == before {
            break;
        }
    }
    for (child, seg, offset) in pointers {
        if reachable.contains(&child) {
            pins.entry(seg).or_default().push((offset, format!("{}@v{}", child.0, child.1)));
        }
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
            if cat.vfs.exists(&kpath) {
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
            c.meta_seen = 0;
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
    Ok((c.report, c.rebuild))
}
