//! The catalog: which runs and versions exist, read from directory listings and version headers on demand.
//!
//! Nothing is loaded at open. A listing is one `readdir` of a run's directory, a header one small read.
//! Key tables only grow, so they are cached and reloaded when an event names a key id the cached copy does
//! not have yet.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{self, parse_run_file, RunFile};
use crate::header::VersionHeader;
use crate::ids::{validate_run_id, RunRef};
use crate::keys::read_keys;
use crate::value::Key;
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// A version's keys by id.
pub(crate) type KeyList = Arc<Vec<Key>>;

/// What one run directory holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunListing {
    /// Versions that have a header, ascending.
    pub versions: Vec<u32>,
    /// Segment sequence numbers per version, ascending.
    pub segs: BTreeMap<u32, Vec<u32>>,
    /// True when the run carries a tombstone.
    pub deleted: bool,
    /// The run's current version: the last header, or for a deleted run the version that was current when it
    /// was deleted (gc may since have removed it and kept only older ones that forks use).
    pub latest: u32,
}

/// One version of a run, resolved: its header and its segments.
#[derive(Debug, Clone)]
pub(crate) struct VersionView {
    /// Run id.
    pub id: String,
    /// Version number.
    pub version: u32,
    /// The version's header.
    pub header: Arc<VersionHeader>,
    /// Number of segment files (they are numbered `0..segs`).
    pub segs: u32,
    /// True for the run's latest version (its last segment is the active one).
    pub current: bool,
    /// True when the run is deleted (kept only for its forks).
    pub deleted: bool,
    /// The run's directory.
    pub dir: PathBuf,
}

impl VersionView {
    /// True when segment `seq` is sealed: never written again, safe to map.
    pub(crate) fn sealed(&self, seq: u32) -> bool {
        !self.current || seq + 1 < self.segs
    }
    /// Path of segment `seq`.
    pub(crate) fn seg_path(&self, seq: u32) -> PathBuf {
        self.dir.join(format::seg_name(self.version, seq))
    }
    /// Path of the index of segment `seq`.
    pub(crate) fn idx_path(&self, seq: u32) -> PathBuf {
        self.dir.join(format::idx_name(self.version, seq))
    }
    /// Path of the key table.
    pub(crate) fn keys_path(&self) -> PathBuf {
        self.dir.join(format::keys_name(self.version))
    }
    /// `ID@vK` of this version.
    pub(crate) fn run_ref(&self) -> RunRef {
        RunRef::at(self.id.clone(), self.version)
    }
}

/// Caches and directory access shared by a store's handles.
#[derive(Debug)]
pub(crate) struct Catalog {
    /// The storage backend.
    pub vfs: Arc<dyn Vfs>,
    /// `<store>/runs`.
    pub runs_dir: PathBuf,
    /// Key tables by `(run, version, nonce)`: the nonce tells a recreated run's version from the old one.
    keys: Mutex<HashMap<(String, u32, u64), KeyList>>,
    /// What this process has established about active segments (see [`Known`]).
    pub known: Known,
    /// Sealed files mapped once and kept for later reads (see [`Maps`]).
    pub maps: Maps,
}

/// Identifies one segment file across deletes and re-creations: `(run, version, header nonce, segment)`.
pub(crate) type SegKey = (String, u32, u64, u32);

/// What this process has established about a segment's prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Prefix {
    /// Bytes `0..clean` are the header and a chain of valid frames, ending at a frame boundary: a full read
    /// passes them all, so an index entry at or below `clean` never jumps past a hole.
    pub clean: u64,
    /// Bytes `0..durable` are valid (within a clean prefix) and fsynced: a fork may pin up to here without
    /// syncing the segment again.
    pub durable: u64,
}

/// A process-local cache of [`Prefix`]es of active segments, keyed by [`SegKey`].
///
/// Both facts only ever grow and stay true while this process lives: valid bytes are never cut (recovery
/// truncates only at the first invalid frame, so never below a valid prefix), fsynced bytes stay durable, and
/// a hole can only appear through a crash, which ends this process and its cache. A run deleted and created
/// again, or rewound, has another nonce or version, hence another key.
#[derive(Debug, Default)]
pub(crate) struct Known {
    map: Mutex<HashMap<SegKey, Prefix>>,
}

/// Entries kept before the cache starts over (it is only a cache: forgetting costs a sync or a scan).
const KNOWN_MAX: usize = 4096;

impl Known {
    /// The key of segment `seq` of `view`.
    pub(crate) fn key(view: &VersionView, seq: u32) -> SegKey {
        (view.id.clone(), view.version, view.header.nonce, seq)
    }

    /// What is known of segment `key` (zeros when nothing).
    pub(crate) fn get(&self, key: &SegKey) -> Prefix {
        lock(&self.map).get(key).copied().unwrap_or_default()
    }

    /// Records that `0..clean` is a valid frame chain and `0..durable` (at most `clean`) is also fsynced.
    pub(crate) fn note(&self, key: &SegKey, clean: u64, durable: u64) {
        let mut m = lock(&self.map);
        if m.len() >= KNOWN_MAX && !m.contains_key(key) {
            m.clear();
        }
        let p = m.entry(key.clone()).or_default();
        p.clean = p.clean.max(clean);
        p.durable = p.durable.max(durable.min(p.clean));
    }
}

/// Which file of a segment a [`Maps`] entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MapKind {
    /// The segment `v<K>-<S>.seg`.
    Segment,
    /// Its zone map `v<K>-<S>.zmap`.
    ZoneMap,
}

/// Mappings of sealed files kept across reads, keyed by [`SegKey`] and [`MapKind`].
///
/// Samples read a few records and blocks from many places of a sealed segment and its zone map; mapping the
/// files on every call (and dropping the mappings after) costs more in page faults than the reads themselves.
/// Sealed files never change, and a run deleted and created again, or rewound, has another key, so an entry
/// never goes stale. An entry keeps an unlinked file's disk space until it is dropped: this handle drops a
/// run's entries when it deletes the run or collects garbage, and at most [`MAPS_MAX`] entries are kept (the
/// oldest go first), which bounds what another process's deletes leave pinned.
#[derive(Default)]
pub(crate) struct Maps {
    map: Mutex<KeptMaps>,
}

/// The kept mappings by file, and the files in the order they were mapped (the oldest go first).
type KeptMaps = (HashMap<(SegKey, MapKind), Arc<Kept>>, std::collections::VecDeque<(SegKey, MapKind)>);

/// A kept mapping, and what a reader derived from it once (parsed and checked: the zone map's group records).
pub(crate) struct Kept {
    /// The file's bytes.
    pub bytes: crate::vfs::MappedBytes,
    /// Set by the first reader that needs it; the owner of the file kind decides its type.
    pub derived: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

/// Mappings a [`Maps`] keeps.
pub(crate) const MAPS_MAX: usize = 256;

impl std::fmt::Debug for Maps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Maps({} mappings)", lock(&self.map).0.len())
    }
}

impl Maps {
    /// The mapping of `path`, the sealed file `kind` of segment `key`: the kept one, else mapped now and kept.
    pub(crate) fn get(&self, vfs: &dyn Vfs, key: &SegKey, kind: MapKind, path: &Path) -> std::io::Result<Arc<Kept>> {
        let k = (key.clone(), kind);
        if let Some(m) = lock(&self.map).0.get(&k) {
            return Ok(m.clone());
        }
        let m = Arc::new(Kept { bytes: vfs.map(path)?, derived: std::sync::OnceLock::new() });
        let mut g = lock(&self.map);
        let (map, order) = &mut *g;
        if map.insert(k.clone(), m.clone()).is_none() {
            order.push_back(k);
            while order.len() > MAPS_MAX {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Ok(m)
    }

    /// Drops the mappings of run `id`'s files (before they are removed).
    pub(crate) fn forget_run(&self, id: &str) {
        let mut g = lock(&self.map);
        let (map, order) = &mut *g;
        map.retain(|(k, _), _| k.0 != id);
        order.retain(|(k, _)| k.0 != id);
    }

    /// Drops every mapping.
    pub(crate) fn clear(&self) {
        let mut g = lock(&self.map);
        g.0.clear();
        g.1.clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Catalog {
    /// A catalog over `runs_dir`.
    pub(crate) fn new(vfs: Arc<dyn Vfs>, runs_dir: PathBuf) -> Catalog {
        Catalog { vfs, runs_dir, keys: Mutex::new(HashMap::new()), known: Known::default(), maps: Maps::default() }
    }

    /// Directory of run `id`.
    pub(crate) fn run_dir(&self, id: &str) -> PathBuf {
        self.runs_dir.join(id)
    }

    /// Ids of every run directory (valid ids only), sorted.
    pub(crate) fn run_ids(&self) -> Result<Vec<String>> {
        let names = match self.vfs.read_dir(&self.runs_dir) {
            Ok(names) => names,
            // A store whose creation a crash cut short before `runs/` (a read-only open does not create it).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("listing runs in", &self.runs_dir, e)),
        };
        let mut ids: Vec<String> = names.into_iter().filter(|n| validate_run_id(n).is_ok()).collect();
        ids.sort();
        Ok(ids)
    }

    /// The listing of run `id`, or `None` if it has no directory or no `v0.head` yet.
    pub(crate) fn listing(&self, id: &str) -> Result<Option<RunListing>> {
        let dir = self.run_dir(id);
        let names = match self.vfs.read_dir(&dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("listing run directory", &dir, e)),
        };
        let mut l = RunListing::default();
        for name in &names {
            match parse_run_file(name) {
                Some(RunFile::Head(v)) => l.versions.push(v),
                Some(RunFile::Seg(v, s)) => l.segs.entry(v).or_default().push(s),
                _ if name == format::DELETED_FILE => l.deleted = true,
                _ => {}
            }
        }
        l.versions.sort_unstable();
        for s in l.segs.values_mut() {
            s.sort_unstable();
        }
        if l.versions.first() != Some(&0) {
            return Ok(None);
        }
        l.latest = *l.versions.last().unwrap_or(&0);
        if l.deleted {
            let path = dir.join(format::DELETED_FILE);
            let bytes = read_all(&*self.vfs, &path)?;
            let h = format::check_fixed_header(&path, &bytes, format::SMALL_HEADER_LEN, &format::DELETED_MAGIC)?;
            l.latest = u32::from_le_bytes([h[24], h[25], h[26], h[27]]).max(l.latest);
        }
        Ok(Some(l))
    }

    /// The header of `id@v{version}`, read from disk. Headers never change, but a run id can be deleted,
    /// collected and created again by another handle or process, so no header is trusted from memory.
    pub(crate) fn header(&self, id: &str, version: u32) -> Result<Arc<VersionHeader>> {
        let path = self.run_dir(id).join(format::head_name(version));
        let bytes = read_all(&*self.vfs, &path)?;
        let h = VersionHeader::decode(&path, &bytes)?;
        if h.run_id != id || h.version != version {
            return Err(Error::corrupt(&path, 16, format!("header names {}@v{}", h.run_id, h.version)));
        }
        Ok(Arc::new(h))
    }

    /// Resolves one version of a run from its listing.
    pub(crate) fn view_in(&self, id: &str, listing: &RunListing, version: u32) -> Result<VersionView> {
        let last = listing.latest;
        if !listing.versions.contains(&version) {
            return Err(Error::RunNotFound { run: format!("{id}@v{version}") });
        }
        let header = self.header(id, version)?;
        let segs = listing.segs.get(&version).map(Vec::as_slice).unwrap_or(&[]);
        let dir = self.run_dir(id);
        if let Some((i, _)) = segs.iter().enumerate().find(|(i, s)| **s != *i as u32) {
            let missing = dir.join(format::seg_name(version, i as u32));
            return Err(Error::corrupt(missing, 0, "segment file is missing from the chain"));
        }
        Ok(VersionView {
            id: id.to_string(),
            version,
            header,
            segs: segs.len() as u32,
            current: version == last,
            deleted: listing.deleted,
            dir,
        })
    }

    /// Resolves `run` (current version unless `run.version` is set). Deleted runs are found only with
    /// `allow_deleted` (ancestry walks).
    pub(crate) fn view(&self, run: &RunRef, allow_deleted: bool) -> Result<VersionView> {
        let not_found = || Error::RunNotFound { run: run.to_string() };
        let listing = self.listing(&run.id)?.ok_or_else(not_found)?;
        if listing.deleted && !allow_deleted {
            return Err(not_found());
        }
        let version = match run.version {
            Some(v) => v,
            None => *listing.versions.last().ok_or_else(not_found)?,
        };
        self.view_in(&run.id, &listing, version)
    }

    /// The key table of a version, with at least `need + 1` keys when `need` is given (reloading once).
    pub(crate) fn keys(&self, view: &VersionView, need: Option<u32>) -> Result<Arc<Vec<Key>>> {
        let key = (view.id.clone(), view.version, view.header.nonce);
        if let Some(k) = lock(&self.keys).get(&key) {
            if need.is_none_or(|n| (n as usize) < k.len()) {
                return Ok(k.clone());
            }
        }
        let table = read_keys(&*self.vfs, &view.keys_path(), view.version, view.header.nonce, view.current)?;
        let k = Arc::new(table.keys);
        lock(&self.keys).insert(key, k.clone());
        Ok(k)
    }

    /// Forgets cached key tables of a run (after its writer truncated or rewrote them).
    pub(crate) fn forget_keys(&self, id: &str) {
        lock(&self.keys).retain(|(i, _, _), _| i != id);
    }

    /// Forgets everything cached about a run (after it was removed).
    pub(crate) fn forget_run(&self, id: &str) {
        self.forget_keys(id);
        self.maps.forget_run(id);
    }
}

/// Reads a whole (small) file.
pub(crate) fn read_all(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>> {
    let f = vfs.open(path, OpenMode::Read).map_err(|e| Error::io("opening", path, e))?;
    let len = f.len().map_err(|e| Error::io("reading length of", path, e))?;
    let mut bytes = vec![0u8; len as usize];
    f.read_exact_at(&mut bytes, 0).map_err(|e| Error::io("reading", path, e))?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically: a temp file, fsync, rename over `path`, directory fsync.
/// With `durable == false` the fsyncs are skipped (the rename is still atomic).
pub(crate) fn write_atomic(vfs: &dyn Vfs, dir: &Path, name: &str, bytes: &[u8], durable: bool) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let f = vfs.open(&tmp, OpenMode::CreateOrOpen).map_err(|e| Error::io("creating", &tmp, e))?;
    f.set_len(0).map_err(|e| Error::io("truncating", &tmp, e))?;
    f.write_all_at(bytes, 0).map_err(|e| Error::io("writing", &tmp, e))?;
    if durable {
        f.sync_data().map_err(|e| Error::io("syncing", &tmp, e))?;
    }
    drop(f);
    vfs.rename(&tmp, &path).map_err(|e| Error::io("renaming into place", &path, e))?;
    if durable {
        vfs.sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    Ok(())
}

/// The locks of a run: writers hold them, readers only probe the running lock.
impl Catalog {
    /// Takes the exclusive writer lock of run `id` (an advisory lock on its directory), or fails with `RunBusy`.
    pub(crate) fn acquire_lock(&self, id: &str) -> Result<Box<dyn VfsFile>> {
        let path = self.run_dir(id);
        let f = self.vfs.open_dir(&path).map_err(|e| Error::io("opening run directory", &path, e))?;
        // Readers probe the lock with a shared lock for a few microseconds; retry briefly past them.
        for _ in 0..20 {
            if f.try_lock().map_err(|e| Error::io("locking", &path, e))? {
                return Ok(f);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(Error::RunBusy { run: id.to_string() })
    }

    /// Takes the lock that tells readers run `id` is running: an exclusive lock on its version's header.
    /// Readers probe it for an instant (a shared lock), so this waits for them rather than failing: only
    /// another writer makes a run busy, and it holds the directory lock first.
    pub(crate) fn running_lock(&self, view: &VersionView) -> Result<Box<dyn VfsFile>> {
        let path = view.dir.join(format::head_name(view.version));
        let f = self.vfs.open(&path, OpenMode::Read).map_err(|e| Error::io("opening", &path, e))?;
        f.lock().map_err(|e| Error::io("locking", &path, e))?;
        Ok(f)
    }
}
