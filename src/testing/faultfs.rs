//! [`FaultFs`]: an in-memory [`Vfs`] that simulates crashes and injects I/O faults.
//!
//! Modelled on SQLite's crash VFS (`test6.c`) and redb's crash test. For every file it keeps the *current*
//! bytes (what reads see) and the *durable* bytes (as of the last [`sync_data`](VfsFile::sync_data)),
//! plus the writes made since that sync, in order. For every directory it keeps the current entries and
//! the *durable* entries (as of the last [`sync_dir`](Vfs::sync_dir)): a creation, rename or removal that
//! was never dir-synced may be undone by a crash.
//!
//! [`FaultFs::crash`] simulates a power loss (or a process kill) according to a [`CrashMode`]: what happens
//! to unsynced bytes ([`Unsynced`]: lost, kept, torn at a byte, zero-filled, garbage, or a mix per write)
//! and to entries that were never dir-synced ([`Entries`]). Afterwards the file system holds only what the
//! crash left; every handle opened before it is dead (its calls fail, its locks are gone), like a process
//! that died.
//!
//! Faults injected while running: failing fsyncs ([`FaultFs::fail_syncs_after`]), failing writes
//! ([`FaultFs::fail_writes_after`]), a full disk ([`FaultFs::enospc_after_bytes`]) and a frozen device
//! ([`FaultFs::freeze_after_writes`]).
//!
//! Every mutation is recorded in a journal. [`FaultFs::replay`] rebuilds the file system as of any prefix
//! of it, with the next write cut at any byte: that is how a test crashes "at every byte offset of every
//! write" without re-running the workload.
//!
//! ```
//! use std::sync::Arc;
//! use forklog::testing::faultfs::{CrashMode, FaultFs};
//! use forklog::{metrics, Options, Store, SyncPolicy};
//!
//! # fn main() -> forklog::Result<()> {
//! let fs = FaultFs::new();
//! let opts = || Options::default().vfs(fs.clone()).sync(SyncPolicy::Always);
//! let store = Store::open_with(FaultFs::store_path(), opts())?;
//! let mut w = store.create_run("r")?;
//! w.log(metrics! { "loss" => 0.5 })?; // acknowledged: durable
//! fs.crash(CrashMode::POWER_LOSS);
//! drop(w);
//! drop(store);
//! let store = Store::open_with(FaultFs::store_path(), opts())?;
//! assert_eq!(store.history("r")?.count(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! Paths are plain absolute paths inside the fake file system; [`FaultFs::new`] creates [`ROOT`] durably,
//! and [`FaultFs::store_path`] is a convenient place for a store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::vfs::{MappedBytes, OpenMode, Vfs, VfsFile};

/// The directory [`FaultFs::new`] creates (durably) for tests to put stores in.
pub const ROOT: &str = "/fault";

/// `EIO`.
const EIO: i32 = 5;
/// `EBADF`.
const EBADF: i32 = 9;
/// `ENOSPC`.
const ENOSPC: i32 = 28;

/// What a crash does to bytes written since a file's last `sync_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unsynced {
    /// Every unsynced write is lost: each file reverts to its durable contents and length (power loss with
    /// a cold cache; the strictest case for "acknowledged means durable").
    Lost,
    /// Every unsynced write survives (a process kill: the OS still had the pages).
    Kept,
    /// The unsynced writes of each file survive in order up to a random one, which is cut at a random byte
    /// (torn); later ones are lost.
    Torn,
    /// Every unsynced write reaches the file's length but its bytes read as zeros (the size was journaled,
    /// the data blocks were not).
    Zeroed,
    /// Like [`Unsynced::Zeroed`] with random bytes instead of zeros.
    Garbage,
    /// SQLite's model: each unsynced write independently survives, is lost, is torn at a random byte or is
    /// replaced by garbage; truncations survive or not. Writes may thus survive out of order, leaving holes.
    Mixed,
}

impl Unsynced {
    /// Every variant.
    pub const ALL: [Unsynced; 6] =
        [Unsynced::Lost, Unsynced::Kept, Unsynced::Torn, Unsynced::Zeroed, Unsynced::Garbage, Unsynced::Mixed];
}

/// What a crash does to directory entries changed since the directory's last `sync_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entries {
    /// Every directory reverts to its durable entries: unsynced creations vanish, unsynced renames and
    /// removals are undone.
    Lost,
    /// Every entry change survives.
    Kept,
    /// Each directory independently (seeded) reverts or keeps its changes, all of them together.
    Mixed,
}

impl Entries {
    /// Every variant.
    pub const ALL: [Entries; 3] = [Entries::Lost, Entries::Kept, Entries::Mixed];
}

/// How [`FaultFs::crash`] treats what was not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrashMode {
    /// The fate of unsynced file bytes.
    pub data: Unsynced,
    /// The fate of directory entries that were not dir-synced.
    pub entries: Entries,
    /// Seeds every random choice, so a crash is reproducible.
    pub seed: u64,
}

impl CrashMode {
    /// Power loss: every unsynced byte and every unsynced directory entry is lost.
    pub const POWER_LOSS: CrashMode = CrashMode { data: Unsynced::Lost, entries: Entries::Lost, seed: 0 };
    /// Process kill: everything the process handed to the OS survives.
    pub const PROCESS_KILL: CrashMode = CrashMode { data: Unsynced::Kept, entries: Entries::Kept, seed: 0 };

    /// A crash mode.
    pub const fn new(data: Unsynced, entries: Entries, seed: u64) -> CrashMode {
        CrashMode { data, entries, seed }
    }

    /// Every combination of [`Unsynced`] and [`Entries`], all with `seed`.
    pub fn all(seed: u64) -> Vec<CrashMode> {
        Unsynced::ALL.iter().flat_map(|&d| Entries::ALL.iter().map(move |&e| CrashMode::new(d, e, seed))).collect()
    }
}

/// Counts of the calls a [`FaultFs`] served (since it was created; not reset by crashes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful `write_all_at` calls.
    pub writes: u64,
    /// Bytes those writes stored.
    pub bytes_written: u64,
    /// Successful `sync_data` calls.
    pub syncs: u64,
    /// Successful `sync_dir` calls.
    pub dir_syncs: u64,
    /// Calls that failed because of an injected fault.
    pub faults: u64,
    /// Simulated crashes.
    pub crashes: u64,
}

/// The kind of a journal entry (see [`OpInfo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A file was created.
    CreateFile,
    /// A directory was created.
    CreateDir,
    /// Bytes were written to a file.
    Write,
    /// A file was truncated or extended.
    SetLen,
    /// A file's data was made durable.
    SyncData,
    /// A directory's entries were made durable.
    SyncDir,
    /// An entry was renamed (possibly replacing another).
    Rename,
    /// An entry (file, or directory with its contents) was removed.
    Remove,
}

/// A description of one journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpInfo {
    /// Position in the journal.
    pub index: usize,
    /// What the operation was.
    pub kind: OpKind,
    /// The path it was made through (the destination for a rename).
    pub path: PathBuf,
    /// File offset of a write, new length of a set-len, else 0.
    pub offset: u64,
    /// Number of bytes of a write, else 0.
    pub len: usize,
}

/// A copy of a whole [`FaultFs`] state (current and durable), to restore or to start new file systems from.
#[derive(Debug, Clone)]
pub struct Snapshot(Image);

/// A SplitMix64 generator: small, seedable, good enough to pick crash outcomes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// SplitMix64: the crate's `mix64` of the state, then the state advances.
    fn next(&mut self) -> u64 {
        let z = self.0;
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        crate::format::mix64(z)
    }
    /// Uniform in `0..=n`.
    fn upto(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            self.next()
        } else {
            self.next() % (n + 1)
        }
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

type Ino = u64;

/// The inode of the root directory `/`.
const ROOT_INO: Ino = 0;

/// A change to a file since its last sync.
#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Arc<[u8]> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileNode {
    /// What reads see.
    data: Vec<u8>,
    /// As of the last `sync_data`.
    durable: Vec<u8>,
    /// Changes since then, in order: applying them to `durable` gives `data`.
    pending: Vec<Pending>,
}

#[derive(Debug, Clone, Default)]
struct DirNode {
    entries: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

#[derive(Debug, Clone)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// A journal entry: inode-based so it replays exactly.
#[derive(Debug, Clone)]
enum Op {
    Create { path: PathBuf, dir: Ino, name: String, ino: Ino, is_dir: bool },
    Write { path: PathBuf, ino: Ino, offset: u64, data: Arc<[u8]> },
    SetLen { path: PathBuf, ino: Ino, len: u64 },
    SyncData { path: PathBuf, ino: Ino },
    SyncDir { path: PathBuf, ino: Ino },
    Rename { path: PathBuf, from_dir: Ino, from: String, to_dir: Ino, to: String },
    Remove { path: PathBuf, dir: Ino, name: String },
}

impl Op {
    fn info(&self, index: usize) -> OpInfo {
        let (kind, path, offset, len) = match self {
            Op::Create { path, is_dir, .. } => {
                (if *is_dir { OpKind::CreateDir } else { OpKind::CreateFile }, path, 0, 0)
            }
            Op::Write { path, offset, data, .. } => (OpKind::Write, path, *offset, data.len()),
            Op::SetLen { path, len, .. } => (OpKind::SetLen, path, *len, 0),
            Op::SyncData { path, .. } => (OpKind::SyncData, path, 0, 0),
            Op::SyncDir { path, .. } => (OpKind::SyncDir, path, 0, 0),
            Op::Rename { path, .. } => (OpKind::Rename, path, 0, 0),
            Op::Remove { path, .. } => (OpKind::Remove, path, 0, 0),
        };
        OpInfo { index, kind, path: path.clone(), offset, len }
    }
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

/// The contents of a file system: inodes, current and durable.
#[derive(Debug, Clone)]
struct Image {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
}

fn err(kind: io::ErrorKind, what: &str, path: &Path) -> io::Error {
    io::Error::new(kind, format!("{what}: {}", path.display()))
}

/// A raw OS error, as the real system call would return it (so `raw_os_error()` works; the engine adds
/// the path to its own error).
fn os_err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Image {
    fn new() -> Image {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT_INO, Node::Dir(DirNode::default()));
        Image { nodes, next_ino: ROOT_INO + 1 }
    }

    fn file(&self, ino: Ino) -> Option<&FileNode> {
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Option<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    fn dir(&self, ino: Ino) -> Option<&DirNode> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Option<&mut DirNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    /// The names along `path` (`.` skipped, `..` popped), or an error for a path this VFS cannot name.
    fn components(path: &Path) -> io::Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => match n.to_str() {
                    Some(s) => out.push(s.to_string()),
                    None => return Err(err(io::ErrorKind::InvalidInput, "path is not UTF-8", path)),
                },
                Component::Prefix(_) => return Err(err(io::ErrorKind::InvalidInput, "unsupported path", path)),
            }
        }
        Ok(out)
    }

    /// The inode at `path`.
    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT_INO;
        for name in Image::components(path)? {
            let dir = self.dir(ino).ok_or_else(|| err(io::ErrorKind::NotADirectory, "not a directory", path))?;
            ino = *dir.entries.get(&name).ok_or_else(|| err(io::ErrorKind::NotFound, "no such file", path))?;
        }
        Ok(ino)
    }

    /// The parent directory's inode and the last name of `path`.
    fn parent(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut names = Image::components(path)?;
        let name = names.pop().ok_or_else(|| err(io::ErrorKind::InvalidInput, "path names the root", path))?;
        let mut ino = ROOT_INO;
        for n in names {
            let dir = self.dir(ino).ok_or_else(|| err(io::ErrorKind::NotADirectory, "not a directory", path))?;
            ino = *dir.entries.get(&n).ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory", path))?;
        }
        if self.dir(ino).is_none() {
            return Err(err(io::ErrorKind::NotADirectory, "parent is not a directory", path));
        }
        Ok((ino, name))
    }

    /// Applies a journal entry. Entries are validated before they are journaled, so this only fails on a
    /// journal that does not belong to this image.
    fn apply(&mut self, op: &Op) -> io::Result<()> {
        let broken = |p: &Path| err(io::ErrorKind::Other, "journal does not match the file system", p);
        match op {
            Op::Create { path, dir, name, ino, is_dir } => {
                let node = if *is_dir { Node::Dir(DirNode::default()) } else { Node::File(FileNode::default()) };
                self.nodes.insert(*ino, node);
                self.next_ino = self.next_ino.max(ino + 1);
                self.dir_mut(*dir).ok_or_else(|| broken(path))?.entries.insert(name.clone(), *ino);
            }
            Op::Write { path, ino, offset, data } => {
                let f = self.file_mut(*ino).ok_or_else(|| broken(path))?;
                write_into(&mut f.data, *offset, data);
                f.pending.push(Pending::Write { offset: *offset, data: data.clone() });
            }
            Op::SetLen { path, ino, len } => {
                let f = self.file_mut(*ino).ok_or_else(|| broken(path))?;
                f.data.resize(*len as usize, 0);
                f.pending.push(Pending::SetLen(*len));
            }
            Op::SyncData { path, ino } => {
                let f = self.file_mut(*ino).ok_or_else(|| broken(path))?;
                f.durable = f.data.clone();
                f.pending.clear();
            }
            Op::SyncDir { path, ino } => {
                let d = self.dir_mut(*ino).ok_or_else(|| broken(path))?;
                d.durable = d.entries.clone();
            }
            Op::Rename { path, from_dir, from, to_dir, to } => {
                let ino = self.dir_mut(*from_dir).and_then(|d| d.entries.remove(from)).ok_or_else(|| broken(path))?;
                self.dir_mut(*to_dir).ok_or_else(|| broken(path))?.entries.insert(to.clone(), ino);
            }
            Op::Remove { path, dir, name } => {
                self.dir_mut(*dir).and_then(|d| d.entries.remove(name)).ok_or_else(|| broken(path))?;
            }
        }
        Ok(())
    }

    /// Files reachable through current entries: `(path, inode)`, sorted by path.
    fn walk(&self) -> Vec<(PathBuf, Ino)> {
        let mut out = Vec::new();
        let mut stack = vec![(PathBuf::from("/"), ROOT_INO)];
        while let Some((path, ino)) = stack.pop() {
            match self.nodes.get(&ino) {
                Some(Node::File(_)) => out.push((path, ino)),
                Some(Node::Dir(d)) => {
                    for (name, child) in &d.entries {
                        stack.push((path.join(name), *child));
                    }
                }
                None => {}
            }
        }
        out.sort();
        out
    }

    /// Bytes held by reachable files.
    fn used(&self) -> u64 {
        self.walk().iter().filter_map(|(_, ino)| self.file(*ino)).map(|f| f.data.len() as u64).sum()
    }

    /// What a crash leaves: only what `mode` lets survive, all of it durable.
    fn crashed(&self, mode: CrashMode) -> Image {
        let mut rng = Rng::new(mode.seed ^ 0x0C4A_5EED);
        let mut out = BTreeMap::new();
        let mut queue = vec![ROOT_INO];
        while let Some(ino) = queue.pop() {
            if out.contains_key(&ino) {
                continue;
            }
            let node = match self.nodes.get(&ino) {
                Some(Node::Dir(d)) => {
                    let keep = match mode.entries {
                        Entries::Lost => false,
                        Entries::Kept => true,
                        Entries::Mixed => rng.next() & 1 == 1,
                    };
                    let entries = if keep { d.entries.clone() } else { d.durable.clone() };
                    queue.extend(entries.values().rev());
                    Node::Dir(DirNode { durable: entries.clone(), entries })
                }
                Some(Node::File(f)) => {
                    let mut frng = Rng::new(mode.seed ^ ino.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let data = crash_file(f, mode.data, &mut frng);
                    Node::File(FileNode { durable: data.clone(), data, pending: Vec::new() })
                }
                None => continue,
            };
            out.insert(ino, node);
        }
        Image { nodes: out, next_ino: self.next_ino }
    }
}

/// The bytes of file `f` after a crash.
fn crash_file(f: &FileNode, mode: Unsynced, rng: &mut Rng) -> Vec<u8> {
    let mut data = f.durable.clone();
    match mode {
        Unsynced::Lost => {}
        Unsynced::Kept => data = f.data.clone(),
        Unsynced::Torn => {
            let upto = rng.upto(f.pending.len() as u64) as usize;
            for (i, p) in f.pending.iter().enumerate().take(upto + 1) {
                let cut = i == upto;
                match p {
                    Pending::Write { offset, data: bytes } => {
                        let n = if cut { rng.upto(bytes.len() as u64) as usize } else { bytes.len() };
                        write_into(&mut data, *offset, &bytes[..n]);
                    }
                    Pending::SetLen(len) if !cut || rng.next() & 1 == 1 => data.resize(*len as usize, 0),
                    Pending::SetLen(_) => {}
                }
            }
        }
        Unsynced::Zeroed | Unsynced::Garbage => {
            for p in &f.pending {
                match p {
                    Pending::Write { offset, data: bytes } => {
                        let mut fill = vec![0u8; bytes.len()];
                        if mode == Unsynced::Garbage {
                            rng.fill(&mut fill);
                        }
                        write_into(&mut data, *offset, &fill);
                    }
                    Pending::SetLen(len) => data.resize(*len as usize, 0),
                }
            }
        }
        Unsynced::Mixed => {
            for p in &f.pending {
                match p {
                    Pending::Write { offset, data: bytes } => match rng.next() % 4 {
                        0 => write_into(&mut data, *offset, bytes),
                        1 => {}
                        2 => {
                            let n = rng.upto(bytes.len() as u64) as usize;
                            write_into(&mut data, *offset, &bytes[..n]);
                        }
                        _ => {
                            let mut fill = vec![0u8; bytes.len()];
                            rng.fill(&mut fill);
                            write_into(&mut data, *offset, &fill);
                        }
                    },
                    Pending::SetLen(len) => {
                        if rng.next() & 1 == 1 {
                            data.resize(*len as usize, 0);
                        }
                    }
                }
            }
        }
    }
    data
}

/// Injected faults.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Syncs (data or directory) that may still succeed; once 0, every sync fails with `EIO`.
    syncs_left: Option<u64>,
    /// Writes that may still succeed; once 0, every write fails with `EIO`.
    writes_left: Option<u64>,
    /// Capacity in bytes: a write or extension past it fails with `ENOSPC`.
    capacity: Option<u64>,
    /// Writes before the device freezes; once 0, every mutation fails with `EIO` and changes nothing.
    freeze_left: Option<u64>,
    /// Writes before one panics: once 0, the next write stores its bytes and then panics (once).
    panic_left: Option<u64>,
}

/// Per-inode advisory locks.
#[derive(Debug, Default)]
struct Locks {
    exclusive: Option<u64>,
    shared: BTreeSet<u64>,
}

#[derive(Debug)]
struct State {
    image: Image,
    /// The image the journal starts from.
    base: Image,
    journal: Vec<Op>,
    /// Bumped by every crash and restore: handles from an older generation are dead.
    generation: u64,
    next_handle: u64,
    locks: HashMap<Ino, Locks>,
    faults: Faults,
    counters: Counters,
    /// Every [`Vfs::will_read`] hint, in order.
    read_hints: Vec<Vec<PathBuf>>,
}

impl State {
    fn new(image: Image) -> State {
        State {
            base: image.clone(),
            image,
            journal: Vec::new(),
            generation: 0,
            next_handle: 0,
            locks: HashMap::new(),
            faults: Faults::default(),
            counters: Counters::default(),
            read_hints: Vec::new(),
        }
    }

    /// Validated mutation: applies and journals it.
    fn record(&mut self, op: Op) -> io::Result<()> {
        self.image.apply(&op)?;
        self.journal.push(op);
        Ok(())
    }

    /// Fails every mutation once the device is frozen.
    fn check_frozen(&mut self) -> io::Result<()> {
        if self.faults.freeze_left == Some(0) {
            self.counters.faults += 1;
            return Err(os_err(EIO));
        }
        Ok(())
    }

    /// Counts a sync against the injected sync failures.
    fn check_sync(&mut self) -> io::Result<()> {
        self.check_frozen()?;
        match self.faults.syncs_left {
            Some(0) => {
                self.counters.faults += 1;
                Err(os_err(EIO))
            }
            Some(n) => {
                self.faults.syncs_left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Restarts the journal from the current image (after an edit that is not an operation).
    fn rebase(&mut self) {
        self.base = self.image.clone();
        self.journal.clear();
    }

    /// A new image replaces everything: old handles die, locks go.
    fn reset(&mut self, image: Image) {
        self.image = image;
        self.rebase();
        self.generation += 1;
        self.locks.clear();
    }

    fn create(&mut self, path: &Path, is_dir: bool) -> io::Result<Ino> {
        self.check_frozen()?;
        let (dir, name) = self.image.parent(path)?;
        let ino = self.image.next_ino;
        self.record(Op::Create { path: path.to_path_buf(), dir, name, ino, is_dir })?;
        Ok(ino)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-memory [`Vfs`] that simulates crashes and injects faults (see the [module docs](self)).
///
/// Cheap to share: clone the `Arc` into as many [`Options`](crate::Options) as needed; every store opened on
/// it sees the same files.
pub struct FaultFs {
    shared: Arc<Shared>,
}

impl fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("FaultFs")
            .field("nodes", &s.image.nodes.len())
            .field("journal", &s.journal.len())
            .field("generation", &s.generation)
            .field("counters", &s.counters)
            .finish()
    }
}

impl FaultFs {
    fn from_image(image: Image) -> Arc<FaultFs> {
        Arc::new(FaultFs { shared: Arc::new(Shared { state: Mutex::new(State::new(image)) }) })
    }

    /// An empty file system holding only the directory [`ROOT`], durably.
    pub fn new() -> Arc<FaultFs> {
        let mut image = Image::new();
        let ino = image.next_ino;
        let op = Op::Create { path: ROOT.into(), dir: ROOT_INO, name: "fault".into(), ino, is_dir: true };
        let synced = Op::SyncDir { path: "/".into(), ino: ROOT_INO };
        // Both apply to a fresh image by construction.
        let _ = image.apply(&op).and_then(|_| image.apply(&synced));
        FaultFs::from_image(image)
    }

    /// The paths of every [`Vfs::will_read`] hint so far, in order (a hint changes nothing else).
    pub fn read_hints(&self) -> Vec<Vec<PathBuf>> {
        self.shared.lock().read_hints.clone()
    }

    /// `/fault/store`: a directory (created by `Store::open`) for a test's store.
    pub fn store_path() -> PathBuf {
        Path::new(ROOT).join("store")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    // ---- crashes ----

    /// Simulates a crash: every file and directory keeps only what `mode` lets survive of its unsynced
    /// changes, and that becomes durable. Every handle opened before the crash is dead from now on (its
    /// calls fail with `EIO`, its locks are released), injected faults are cleared, and the journal
    /// restarts from the crashed state. Drop the old `Store`s and writers after this call: their last
    /// flushes then fail harmlessly, like those of a dead process.
    pub fn crash(&self, mode: CrashMode) {
        let mut s = self.state();
        let image = s.image.crashed(mode);
        s.reset(image);
        s.faults = Faults::default();
        s.counters.crashes += 1;
    }

    /// Copies the whole state (current and durable contents, pending writes, entries).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.state().image.clone())
    }

    /// Replaces the whole state with `snap`; like a crash, this kills every open handle and restarts the
    /// journal.
    pub fn restore(&self, snap: &Snapshot) {
        self.state().reset(snap.0.clone());
    }

    /// A new, independent file system in the state of `snap`.
    pub fn from_snapshot(snap: &Snapshot) -> Arc<FaultFs> {
        FaultFs::from_image(snap.0.clone())
    }

    // ---- fault injection ----

    /// Lets the next `n` syncs (`sync_data` and `sync_dir` alike) succeed; every later one fails with
    /// `EIO` and makes nothing durable, until [`clear_faults`](Self::clear_faults) or a crash.
    pub fn fail_syncs_after(&self, n: u64) {
        self.state().faults.syncs_left = Some(n);
    }

    /// Lets the next `n` writes succeed; every later `write_all_at` fails with `EIO` and writes nothing,
    /// until [`clear_faults`](Self::clear_faults) or a crash.
    pub fn fail_writes_after(&self, n: u64) {
        self.state().faults.writes_left = Some(n);
    }

    /// Makes the disk hold `capacity` bytes (summed over the lengths of all files): a write or extension
    /// past it stores the bytes that fit (a short write) and fails with `ENOSPC`
    /// ([`io::ErrorKind::StorageFull`], raw OS error 28). Removing files frees space.
    pub fn enospc_after_bytes(&self, capacity: u64) {
        self.state().faults.capacity = Some(capacity);
    }

    /// Lets the next `n` writes succeed, then freezes the device: every later mutation (write, set-len,
    /// sync, create, rename, remove) fails with `EIO` and changes nothing, as if the machine had died at
    /// that instant while the process kept running. Follow with [`crash`](Self::crash).
    pub fn freeze_after_writes(&self, n: u64) {
        self.state().faults.freeze_left = Some(n);
    }

    /// Lets the next `n` writes succeed; the one after stores its bytes and then panics (once): a bug or an
    /// abort in the middle of a writer's call, between its `pwrite` and its bookkeeping.
    pub fn panic_after_writes(&self, n: u64) {
        self.state().faults.panic_left = Some(n);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state().faults = Faults::default();
    }

    // ---- inspection ----

    /// Call counts so far.
    pub fn counters(&self) -> Counters {
        self.state().counters
    }

    /// Bytes held by all files.
    pub fn used_bytes(&self) -> u64 {
        self.state().image.used()
    }

    /// Every file, sorted by path.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state().image.walk().into_iter().map(|(p, _)| p).collect()
    }

    /// Every file under directory `dir`, sorted by path.
    pub fn files_under(&self, dir: impl AsRef<Path>) -> Vec<PathBuf> {
        let dir = dir.as_ref();
        self.files().into_iter().filter(|p| p.starts_with(dir)).collect()
    }

    /// The current bytes of a file (what reads see).
    pub fn contents(&self, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        let path = path.as_ref();
        let s = self.state();
        let ino = s.image.lookup(path)?;
        s.image.file(ino).map(|f| f.data.clone()).ok_or_else(|| err(io::ErrorKind::IsADirectory, "a directory", path))
    }

    /// The durable bytes of a file (as of its last `sync_data`).
    pub fn durable_contents(&self, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        let path = path.as_ref();
        let s = self.state();
        let ino = s.image.lookup(path)?;
        s.image
            .file(ino)
            .map(|f| f.durable.clone())
            .ok_or_else(|| err(io::ErrorKind::IsADirectory, "a directory", path))
    }

    /// True when the file has changes not yet made durable by `sync_data`.
    pub fn has_unsynced(&self, path: impl AsRef<Path>) -> io::Result<bool> {
        let path = path.as_ref();
        let s = self.state();
        let ino = s.image.lookup(path)?;
        s.image
            .file(ino)
            .map(|f| !f.pending.is_empty())
            .ok_or_else(|| err(io::ErrorKind::IsADirectory, "a directory", path))
    }

    /// Replaces an existing file's contents, current and durable alike (disk corruption or a tool editing
    /// the file behind the engine's back). Restarts the journal.
    pub fn set_contents(&self, path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
        let path = path.as_ref();
        let mut s = self.state();
        let ino = s.image.lookup(path)?;
        let f = s.image.file_mut(ino).ok_or_else(|| err(io::ErrorKind::IsADirectory, "a directory", path))?;
        f.data = bytes.to_vec();
        f.durable = bytes.to_vec();
        f.pending.clear();
        s.rebase();
        Ok(())
    }

    /// XORs the byte at `offset` of a file with `xor` (in the current and durable contents, and in any
    /// pending write covering it): a bit flip on the medium. Restarts the journal.
    pub fn corrupt(&self, path: impl AsRef<Path>, offset: u64, xor: u8) -> io::Result<()> {
        let path = path.as_ref();
        let mut s = self.state();
        let ino = s.image.lookup(path)?;
        let f = s.image.file_mut(ino).ok_or_else(|| err(io::ErrorKind::IsADirectory, "a directory", path))?;
        let at = offset as usize;
        if at >= f.data.len() {
            return Err(err(io::ErrorKind::InvalidInput, "offset past the end of", path));
        }
        f.data[at] ^= xor;
        if let Some(b) = f.durable.get_mut(at) {
            *b ^= xor;
        }
        for p in &mut f.pending {
            if let Pending::Write { offset: o, data } = p {
                if (*o..*o + data.len() as u64).contains(&offset) {
                    let mut v = data.to_vec();
                    v[(offset - *o) as usize] ^= xor;
                    *data = v.into();
                }
            }
        }
        s.rebase();
        Ok(())
    }

    // ---- journal ----

    /// The journal: every mutation since this file system was created, or since the last crash, restore or
    /// direct edit.
    pub fn journal(&self) -> Vec<OpInfo> {
        self.state().journal.iter().enumerate().map(|(i, op)| op.info(i)).collect()
    }

    /// Number of journal entries so far (a cheap position marker).
    pub fn journal_len(&self) -> usize {
        self.state().journal.len()
    }

    /// A cursor that rebuilds this file system's state as of any prefix of its journal.
    pub fn replay(&self) -> Replay {
        let s = self.state();
        Replay { journal: s.journal.clone(), image: s.base.clone(), pos: 0 }
    }

    /// A new file system in the state right after the first `ops` journal entries; with `cut = Some(n)` and
    /// entry `ops` a write, plus the first `n` bytes of that write. Convenience over [`replay`](Self::replay).
    pub fn state_at(&self, ops: usize, cut: Option<usize>) -> io::Result<Arc<FaultFs>> {
        let mut r = self.replay();
        while r.position() < ops {
            if !r.advance()? {
                break;
            }
        }
        match cut {
            Some(n) => r.fs_with_partial(n),
            None => Ok(r.fs()),
        }
    }
}

/// Rebuilds the states a [`FaultFs`] went through: start at the beginning of its journal, [`advance`]
/// one entry at a time, and materialize a new file system at any point, optionally with the next write cut
/// short. The materialized state is exactly what the original held then, current and durable alike; crash
/// it to also drop what was unsynced.
///
/// [`advance`]: Replay::advance
#[derive(Debug, Clone)]
pub struct Replay {
    journal: Vec<Op>,
    image: Image,
    pos: usize,
}

impl Replay {
    /// Number of journal entries.
    pub fn len(&self) -> usize {
        self.journal.len()
    }

    /// True when the journal is empty.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty()
    }

    /// How many entries have been applied.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next entry to apply, if any.
    pub fn next_op(&self) -> Option<OpInfo> {
        self.journal.get(self.pos).map(|op| op.info(self.pos))
    }

    /// Applies the next entry; `false` at the end of the journal.
    pub fn advance(&mut self) -> io::Result<bool> {
        let Some(op) = self.journal.get(self.pos) else { return Ok(false) };
        self.image.apply(op)?;
        self.pos += 1;
        Ok(true)
    }

    /// A new file system in the current state.
    pub fn fs(&self) -> Arc<FaultFs> {
        FaultFs::from_image(self.image.clone())
    }

    /// A new file system in the current state plus the first `bytes` bytes of the next entry, which must
    /// be a write (`InvalidInput` otherwise). `bytes` is capped at the write's length.
    pub fn fs_with_partial(&self, bytes: usize) -> io::Result<Arc<FaultFs>> {
        let Some(Op::Write { path, ino, offset, data }) = self.journal.get(self.pos) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the next journal entry is not a write"));
        };
        let mut image = self.image.clone();
        let n = bytes.min(data.len());
        image.apply(&Op::Write { path: path.clone(), ino: *ino, offset: *offset, data: data[..n].into() })?;
        Ok(FaultFs::from_image(image))
    }
}

/// An open file of a [`FaultFs`].
#[derive(Debug)]
struct FaultFile {
    shared: Arc<Shared>,
    path: PathBuf,
    ino: Ino,
    handle: u64,
    generation: u64,
    writable: bool,
    /// A directory handle (from `open_dir`): lockable and syncable only.
    dir: bool,
}

impl FaultFile {
    /// The state, if this handle is still alive (not from before a crash).
    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = self.shared.lock();
        if s.generation != self.generation {
            return Err(os_err(EIO));
        }
        Ok(s)
    }

    fn writable(&self) -> io::Result<()> {
        if self.writable && !self.dir {
            Ok(())
        } else {
            Err(os_err(EBADF))
        }
    }
}

impl VfsFile for FaultFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.live()?;
        if self.dir {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", &self.path));
        }
        let f = s.image.file(self.ino).ok_or_else(|| err(io::ErrorKind::NotFound, "file vanished", &self.path))?;
        let end = offset.checked_add(buf.len() as u64).filter(|e| *e <= f.data.len() as u64);
        match end {
            Some(end) => {
                buf.copy_from_slice(&f.data[offset as usize..end as usize]);
                Ok(())
            }
            None => Err(err(io::ErrorKind::UnexpectedEof, "read past the end of", &self.path)),
        }
    }

    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.writable()?;
        let mut s = self.live()?;
        s.check_frozen()?;
        match s.faults.writes_left {
            Some(0) => {
                s.counters.faults += 1;
                return Err(os_err(EIO));
            }
            Some(n) => s.faults.writes_left = Some(n - 1),
            None => {}
        }
        let cur_len = s.image.file(self.ino).map_or(0, |f| f.data.len() as u64);
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| err(io::ErrorKind::InvalidInput, "write offset overflows", &self.path))?;
        let growth = end.saturating_sub(cur_len);
        let mut n = data.len();
        let mut full = false;
        if let Some(cap) = s.faults.capacity {
            let room = cap.saturating_sub(s.image.used());
            if growth > room {
                // Bytes up to the current end fit; of the growth only `room` bytes do.
                let fits = cur_len.saturating_sub(offset) + room;
                n = (fits.min(data.len() as u64)) as usize;
                full = true;
            }
        }
        if n > 0 {
            s.record(Op::Write { path: self.path.clone(), ino: self.ino, offset, data: data[..n].into() })?;
            s.counters.bytes_written += n as u64;
        }
        if full {
            s.counters.faults += 1;
            return Err(os_err(ENOSPC));
        }
        s.counters.writes += 1;
        if let Some(k) = s.faults.freeze_left {
            s.faults.freeze_left = Some(k.saturating_sub(1));
        }
        match s.faults.panic_left {
            Some(0) => {
                s.faults.panic_left = None;
                drop(s);
                panic!("FaultFs: injected panic after writing {}", self.path.display());
            }
            Some(n) => s.faults.panic_left = Some(n - 1),
            None => {}
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let s = self.live()?;
        if self.dir {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", &self.path));
        }
        let f = s.image.file(self.ino).ok_or_else(|| err(io::ErrorKind::NotFound, "file vanished", &self.path))?;
        Ok(f.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        let mut s = self.live()?;
        s.check_frozen()?;
        let cur = s.image.file(self.ino).map_or(0, |f| f.data.len() as u64);
        if let Some(cap) = s.faults.capacity {
            if len > cur && len - cur > cap.saturating_sub(s.image.used()) {
                s.counters.faults += 1;
                return Err(os_err(ENOSPC));
            }
        }
        s.record(Op::SetLen { path: self.path.clone(), ino: self.ino, len })
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.live()?;
        if self.dir {
            // The directory may have been renamed since it was opened: it is synced by inode.
            if s.image.dir(self.ino).is_none() {
                return Err(err(io::ErrorKind::NotFound, "directory vanished", &self.path));
            }
            s.check_sync()?;
            s.record(Op::SyncDir { path: self.path.clone(), ino: self.ino })?;
            s.counters.dir_syncs += 1;
            return Ok(());
        }
        s.check_sync()?;
        s.record(Op::SyncData { path: self.path.clone(), ino: self.ino })?;
        s.counters.syncs += 1;
        Ok(())
    }

    fn try_lock(&self) -> io::Result<bool> {
        let mut s = self.live()?;
        let l = s.locks.entry(self.ino).or_default();
        let others_shared = l.shared.iter().any(|h| *h != self.handle);
        if l.exclusive.is_some_and(|h| h != self.handle) || others_shared {
            return Ok(false);
        }
        l.shared.remove(&self.handle);
        l.exclusive = Some(self.handle);
        Ok(true)
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        let mut s = self.live()?;
        let l = s.locks.entry(self.ino).or_default();
        if l.exclusive.is_some_and(|h| h != self.handle) {
            return Ok(false);
        }
        l.exclusive = None;
        l.shared.insert(self.handle);
        Ok(true)
    }

    fn unlock(&self) -> io::Result<()> {
        let mut s = self.live()?;
        release(&mut s, self.ino, self.handle);
        Ok(())
    }
}

fn release(s: &mut State, ino: Ino, handle: u64) {
    if let Some(l) = s.locks.get_mut(&ino) {
        if l.exclusive == Some(handle) {
            l.exclusive = None;
        }
        l.shared.remove(&handle);
        if l.exclusive.is_none() && l.shared.is_empty() {
            s.locks.remove(&ino);
        }
    }
}

impl Drop for FaultFile {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        if s.generation == self.generation {
            release(&mut s, self.ino, self.handle);
        }
    }
}

impl Vfs for FaultFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.state();
        let found = match s.image.lookup(path) {
            Ok(ino) => Some(ino),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let ino = match (found, mode) {
            (Some(_), OpenMode::CreateNew) => return Err(err(io::ErrorKind::AlreadyExists, "file exists", path)),
            (Some(ino), _) => ino,
            (None, OpenMode::Read | OpenMode::ReadWrite) => {
                return Err(err(io::ErrorKind::NotFound, "no such file", path))
            }
            (None, OpenMode::CreateNew | OpenMode::CreateOrOpen) => s.create(path, false)?,
        };
        if s.image.file(ino).is_none() {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        let handle = s.next_handle;
        s.next_handle += 1;
        Ok(Box::new(FaultFile {
            shared: self.shared.clone(),
            path: path.to_path_buf(),
            ino,
            handle,
            generation: s.generation,
            writable: mode != OpenMode::Read,
            dir: false,
        }))
    }

    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.state();
        let ino = s.image.lookup(path)?;
        if s.image.dir(ino).is_none() {
            return Err(err(io::ErrorKind::NotADirectory, "not a directory", path));
        }
        let handle = s.next_handle;
        s.next_handle += 1;
        Ok(Box::new(FaultFile {
            shared: self.shared.clone(),
            path: path.to_path_buf(),
            ino,
            handle,
            generation: s.generation,
            writable: false,
            dir: true,
        }))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.image.lookup(path).is_ok() {
            return Err(err(io::ErrorKind::AlreadyExists, "exists", path));
        }
        s.create(path, true).map(|_| ())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let mut at = PathBuf::from("/");
        for name in Image::components(path)? {
            at.push(name);
            match s.image.lookup(&at) {
                Ok(ino) if s.image.dir(ino).is_some() => {}
                Ok(_) => return Err(err(io::ErrorKind::NotADirectory, "a file is in the way", &at)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    s.create(&at, true)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let s = self.state();
        let ino = s.image.lookup(path)?;
        let d = s.image.dir(ino).ok_or_else(|| err(io::ErrorKind::NotADirectory, "not a directory", path))?;
        Ok(d.entries.keys().cloned().collect())
    }

    fn exists(&self, path: &Path) -> bool {
        self.state().image.lookup(path).is_ok()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check_frozen()?;
        let ino = s.image.lookup(from)?;
        let (from_dir, from_name) = s.image.parent(from)?;
        let (to_dir, to_name) = s.image.parent(to)?;
        if let Ok(target) = s.image.lookup(to) {
            if target == ino {
                return Ok(());
            }
            match (s.image.dir(ino).is_some(), s.image.dir(target)) {
                (false, Some(_)) => return Err(err(io::ErrorKind::IsADirectory, "target is a directory", to)),
                (true, None) => return Err(err(io::ErrorKind::NotADirectory, "target is not a directory", to)),
                (true, Some(d)) if !d.entries.is_empty() => {
                    return Err(err(io::ErrorKind::DirectoryNotEmpty, "target directory is not empty", to))
                }
                _ => {}
            }
        }
        s.record(Op::Rename { path: to.to_path_buf(), from_dir, from: from_name, to_dir, to: to_name })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check_frozen()?;
        let ino = s.image.lookup(path)?;
        if s.image.dir(ino).is_some() {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        let (dir, name) = s.image.parent(path)?;
        s.record(Op::Remove { path: path.to_path_buf(), dir, name })
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check_frozen()?;
        let ino = s.image.lookup(path)?;
        if s.image.dir(ino).is_none() {
            return Err(err(io::ErrorKind::NotADirectory, "not a directory", path));
        }
        let (dir, name) = s.image.parent(path)?;
        s.record(Op::Remove { path: path.to_path_buf(), dir, name })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let ino = s.image.lookup(path)?;
        if s.image.dir(ino).is_none() {
            return Err(err(io::ErrorKind::NotADirectory, "not a directory", path));
        }
        s.check_sync()?;
        s.record(Op::SyncDir { path: path.to_path_buf(), ino })?;
        s.counters.dir_syncs += 1;
        Ok(())
    }

    fn map(&self, path: &Path) -> io::Result<MappedBytes> {
        let s = self.state();
        let ino = s.image.lookup(path)?;
        let f = s.image.file(ino).ok_or_else(|| err(io::ErrorKind::IsADirectory, "is a directory", path))?;
        Ok(Arc::new(f.data.clone()))
    }

    fn will_read(&self, paths: &[PathBuf]) {
        self.state().read_hints.push(paths.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn write_file(fs: &FaultFs, path: &str, bytes: &[u8], sync: bool) {
        let f = fs.open(&p(path), OpenMode::CreateOrOpen).expect("open");
        let len = f.len().expect("len");
        f.write_all_at(bytes, len).expect("write");
        if sync {
            f.sync_data().expect("sync");
        }
    }

    #[test]
    fn read_write_and_entries() {
        let fs = FaultFs::new();
        fs.create_dir_all(&p("/fault/a/b")).expect("mkdir");
        write_file(&fs, "/fault/a/b/x", b"hello", false);
        assert_eq!(fs.contents("/fault/a/b/x").expect("read"), b"hello");
        let f = fs.open(&p("/fault/a/b/x"), OpenMode::Read).expect("open");
        let mut buf = [0u8; 3];
        f.read_exact_at(&mut buf, 2).expect("read");
        assert_eq!(&buf, b"llo");
        assert_eq!(f.read_exact_at(&mut buf, 3).map_err(|e| e.kind()), Err(io::ErrorKind::UnexpectedEof));
        assert!(f.write_all_at(b"x", 0).is_err(), "read-only handle");
        assert_eq!(fs.read_dir(&p("/fault/a/b")).expect("ls"), vec!["x".to_string()]);
        assert!(fs.exists(&p("/fault/a/b/x")));
        assert_eq!(
            fs.open(&p("/fault/a/b/x"), OpenMode::CreateNew).map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        assert_eq!(
            fs.open(&p("/fault/nope/x"), OpenMode::CreateOrOpen).map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
        assert_eq!(fs.create_dir(&p("/fault/a")).map_err(|e| e.kind()), Err(io::ErrorKind::AlreadyExists));
        fs.rename(&p("/fault/a/b/x"), &p("/fault/a/y")).expect("rename");
        assert!(!fs.exists(&p("/fault/a/b/x")));
        assert_eq!(fs.files(), vec![p("/fault/a/y")]);
        // An open handle keeps reading the inode after its name is removed.
        fs.remove_file(&p("/fault/a/y")).expect("rm");
        f.read_exact_at(&mut buf, 0).expect("read unlinked");
        assert_eq!(&buf, b"hel");
        fs.remove_dir_all(&p("/fault/a")).expect("rm -r");
        assert!(fs.files().is_empty());
        let m = fs.map(&p("/fault")).map(|_| ());
        assert!(m.is_err());
    }

    #[test]
    fn crash_drops_unsynced_data_and_entries() {
        let fs = FaultFs::new();
        fs.create_dir(&p("/fault/d")).expect("mkdir");
        fs.sync_dir(&p("/fault")).expect("syncdir");
        write_file(&fs, "/fault/d/synced", b"durable", true);
        fs.sync_dir(&p("/fault/d")).expect("syncdir");
        write_file(&fs, "/fault/d/synced", b"+more", false);
        write_file(&fs, "/fault/d/new", b"never dir-synced", true);
        let snap = fs.snapshot();

        fs.crash(CrashMode::POWER_LOSS);
        assert_eq!(fs.files(), vec![p("/fault/d/synced")]);
        assert_eq!(fs.contents("/fault/d/synced").expect("read"), b"durable");

        fs.restore(&snap);
        fs.crash(CrashMode::PROCESS_KILL);
        assert_eq!(fs.contents("/fault/d/synced").expect("read"), b"durable+more");
        assert_eq!(fs.contents("/fault/d/new").expect("read"), b"never dir-synced");
        assert!(!fs.has_unsynced("/fault/d/synced").expect("exists"), "a crash leaves everything durable");

        fs.restore(&snap);
        fs.crash(CrashMode::new(Unsynced::Zeroed, Entries::Lost, 1));
        assert_eq!(fs.contents("/fault/d/synced").expect("read"), b"durable\0\0\0\0\0");

        fs.restore(&snap);
        fs.crash(CrashMode::new(Unsynced::Garbage, Entries::Lost, 1));
        let g = fs.contents("/fault/d/synced").expect("read");
        assert_eq!((&g[..7], g.len()), (&b"durable"[..], 12));
    }

    #[test]
    fn unsynced_rename_and_removal_are_undone() {
        let fs = FaultFs::new();
        write_file(&fs, "/fault/head", b"old", true);
        write_file(&fs, "/fault/gone", b"g", true);
        fs.sync_dir(&p("/fault")).expect("syncdir");
        write_file(&fs, "/fault/head.tmp", b"new", true);
        fs.rename(&p("/fault/head.tmp"), &p("/fault/head")).expect("rename");
        fs.remove_file(&p("/fault/gone")).expect("rm");
        let snap = fs.snapshot();
        fs.crash(CrashMode::POWER_LOSS);
        assert_eq!(fs.files(), vec![p("/fault/gone"), p("/fault/head")]);
        assert_eq!(fs.contents("/fault/head").expect("read"), b"old");
        fs.restore(&snap);
        fs.crash(CrashMode::new(Unsynced::Lost, Entries::Kept, 0));
        assert_eq!(fs.files(), vec![p("/fault/head")]);
        assert_eq!(fs.contents("/fault/head").expect("read"), b"new");
    }

    #[test]
    fn torn_and_mixed_crashes_are_seeded() {
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            for data in [Unsynced::Torn, Unsynced::Mixed] {
                let fs = FaultFs::new();
                write_file(&fs, "/fault/f", b"0123", true);
                fs.sync_dir(&p("/fault")).expect("syncdir");
                write_file(&fs, "/fault/f", b"4567", false);
                write_file(&fs, "/fault/f", b"89", false);
                let snap = fs.snapshot();
                fs.crash(CrashMode::new(data, Entries::Lost, seed));
                let a = fs.contents("/fault/f").expect("read");
                fs.restore(&snap);
                fs.crash(CrashMode::new(data, Entries::Lost, seed));
                assert_eq!(fs.contents("/fault/f").expect("read"), a, "deterministic");
                assert!(a.starts_with(b"0123"));
                if data == Unsynced::Torn {
                    assert!(b"0123456789".starts_with(&a), "{a:?} is a prefix");
                }
                seen.insert(a);
            }
        }
        assert!(seen.len() > 8, "crashes vary with the seed: {seen:?}");
    }

    #[test]
    fn handles_die_at_a_crash() {
        let fs = FaultFs::new();
        let f = fs.open(&p("/fault/f"), OpenMode::CreateNew).expect("open");
        assert!(f.try_lock().expect("lock"));
        fs.sync_dir(&p("/fault")).expect("syncdir");
        fs.crash(CrashMode::PROCESS_KILL);
        assert!(f.write_all_at(b"x", 0).is_err());
        assert!(f.sync_data().is_err());
        let g = fs.open(&p("/fault/f"), OpenMode::ReadWrite).expect("open");
        assert!(g.try_lock().expect("lock"), "the dead handle's lock is gone");
        drop(f);
        let h = fs.open(&p("/fault/f"), OpenMode::ReadWrite).expect("open");
        assert!(!h.try_lock().expect("lock"), "dropping a dead handle does not release a live lock");
    }

    #[test]
    fn locks_are_per_handle() {
        let fs = FaultFs::new();
        let a = fs.open(&p("/fault/lock"), OpenMode::CreateOrOpen).expect("open");
        let b = fs.open(&p("/fault/lock"), OpenMode::Read).expect("open");
        assert!(a.try_lock().expect("lock"));
        assert!(a.try_lock().expect("relock by the holder"));
        assert!(!b.try_lock().expect("lock"));
        assert!(!b.try_lock_shared().expect("lock"));
        a.unlock().expect("unlock");
        assert!(b.try_lock_shared().expect("lock"));
        assert!(a.try_lock_shared().expect("two shared"));
        assert!(!a.try_lock().expect("exclusive while another is shared"));
        drop(b);
        assert!(a.try_lock().expect("upgrade once alone"));
        let c = fs.open(&p("/fault/lock"), OpenMode::Read).expect("open");
        drop(a);
        assert!(c.try_lock().expect("released on drop"));
    }

    #[test]
    fn failing_syncs_and_writes() {
        let fs = FaultFs::new();
        let f = fs.open(&p("/fault/f"), OpenMode::CreateNew).expect("open");
        fs.fail_syncs_after(1);
        f.sync_data().expect("first sync succeeds");
        f.write_all_at(b"abc", 0).expect("write");
        let e = f.sync_data().expect_err("second sync fails");
        assert_eq!(e.raw_os_error(), Some(EIO));
        assert!(fs.sync_dir(&p("/fault")).is_err(), "directory syncs fail too");
        assert_eq!(fs.durable_contents("/fault/f").expect("read"), b"");
        fs.clear_faults();
        f.sync_data().expect("sync");
        fs.fail_writes_after(0);
        assert!(f.write_all_at(b"d", 3).is_err());
        assert_eq!(fs.contents("/fault/f").expect("read"), b"abc");
        let c = fs.counters();
        assert_eq!((c.writes, c.bytes_written, c.syncs, c.faults), (1, 3, 2, 3));
    }

    #[test]
    fn enospc_is_a_short_write() {
        let fs = FaultFs::new();
        let f = fs.open(&p("/fault/f"), OpenMode::CreateNew).expect("open");
        f.write_all_at(b"0123", 0).expect("write");
        fs.enospc_after_bytes(6);
        let e = f.write_all_at(b"4567", 4).expect_err("full");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        assert_eq!(fs.contents("/fault/f").expect("read"), b"012345");
        f.write_all_at(b"ab", 0).expect("overwrite needs no space");
        assert!(f.set_len(7).is_err());
        fs.remove_file(&p("/fault/f")).expect("rm");
        let g = fs.open(&p("/fault/g"), OpenMode::CreateNew).expect("open");
        g.write_all_at(b"xyz", 0).expect("space freed");
    }

    #[test]
    fn freeze_stops_every_mutation() {
        let fs = FaultFs::new();
        let f = fs.open(&p("/fault/f"), OpenMode::CreateNew).expect("open");
        fs.freeze_after_writes(2);
        f.write_all_at(b"a", 0).expect("1");
        f.write_all_at(b"b", 1).expect("2");
        assert!(f.write_all_at(b"c", 2).is_err());
        assert!(f.sync_data().is_err());
        assert!(f.set_len(0).is_err());
        assert!(fs.open(&p("/fault/g"), OpenMode::CreateNew).is_err());
        assert!(fs.rename(&p("/fault/f"), &p("/fault/h")).is_err());
        assert_eq!(fs.contents("/fault/f").expect("read"), b"ab");
        fs.crash(CrashMode::PROCESS_KILL);
        let g = fs.open(&p("/fault/g"), OpenMode::CreateNew).expect("thawed by the crash");
        g.write_all_at(b"x", 0).expect("write");
    }

    #[test]
    fn replay_rebuilds_every_prefix() {
        let fs = FaultFs::new();
        fs.create_dir(&p("/fault/d")).expect("mkdir");
        let f = fs.open(&p("/fault/d/f"), OpenMode::CreateNew).expect("open");
        f.write_all_at(b"hello", 0).expect("write");
        f.sync_data().expect("sync");
        f.write_all_at(b" world", 5).expect("write");
        fs.rename(&p("/fault/d/f"), &p("/fault/d/g")).expect("rename");
        let kinds: Vec<OpKind> = fs.journal().iter().map(|o| o.kind).collect();
        use OpKind::*;
        assert_eq!(kinds, vec![CreateDir, CreateFile, Write, SyncData, Write, Rename]);
        let mut r = fs.replay();
        let mut states = Vec::new();
        loop {
            let fs2 = r.fs();
            states
                .push(fs2.files().iter().map(|p| (p.clone(), fs2.contents(p).unwrap_or_default())).collect::<Vec<_>>());
            if r.next_op().is_some_and(|o| o.kind == OpKind::Write && o.offset == 5) {
                let cut = r.fs_with_partial(3).expect("partial");
                assert_eq!(cut.contents("/fault/d/f").expect("read"), b"hello wo");
                assert_eq!(cut.durable_contents("/fault/d/f").expect("read"), b"hello");
            }
            if !r.advance().expect("advance") {
                break;
            }
        }
        assert_eq!(states.len(), 7);
        assert!(states[0].is_empty());
        assert_eq!(states[3], vec![(p("/fault/d/f"), b"hello".to_vec())]);
        assert_eq!(states[6], vec![(p("/fault/d/g"), b"hello world".to_vec())]);
        let at = fs.state_at(2, Some(2)).expect("state_at");
        assert_eq!(at.contents("/fault/d/f").expect("read"), b"he");
        assert!(fs.state_at(1, Some(2)).is_err(), "entry 1 is not a write");
    }

    #[test]
    fn corrupt_flips_bits_everywhere() {
        let fs = FaultFs::new();
        write_file(&fs, "/fault/f", b"\x00\x00", true);
        write_file(&fs, "/fault/f", b"\x00", false);
        fs.corrupt("/fault/f", 0, 0x80).expect("flip");
        fs.corrupt("/fault/f", 2, 0x01).expect("flip pending");
        assert!(fs.corrupt("/fault/f", 3, 1).is_err());
        assert_eq!(fs.contents("/fault/f").expect("read"), b"\x80\x00\x01");
        fs.crash(CrashMode::PROCESS_KILL);
        assert_eq!(fs.contents("/fault/f").expect("read"), b"\x80\x00\x01");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FaultFs>();
        check::<FaultFile>();
        check::<Snapshot>();
        check::<Replay>();
    }
}
