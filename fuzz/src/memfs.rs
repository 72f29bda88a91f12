//! A small in-memory [`Vfs`] for the fuzz targets: fast, deterministic, and cheap to snapshot and clone, so
//! every fuzz input starts from a fresh copy of a real store.
//!
//! Semantics follow what forklog expects of a file system (src/vfs.rs): open handles keep a file's bytes
//! after it is renamed over or unlinked, locks are per handle (flock-like) and released when the handle is
//! dropped, `map` returns a snapshot (forklog only maps files nobody writes again), fsyncs are no-ops.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use forklog::vfs::{MappedBytes, OpenMode, Vfs, VfsFile};

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
struct Locks {
    exclusive: Option<u64>,
    shared: BTreeSet<u64>,
}

#[derive(Debug, Default)]
struct Node {
    data: RwLock<Vec<u8>>,
    locks: Mutex<Locks>,
}

impl Node {
    fn with(bytes: Vec<u8>) -> Arc<Node> {
        Arc::new(Node { data: RwLock::new(bytes), locks: Mutex::default() })
    }
    fn bytes(&self) -> Vec<u8> {
        self.data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, Default)]
struct Tree {
    files: BTreeMap<PathBuf, Arc<Node>>,
    dirs: BTreeSet<PathBuf>,
    /// Lock state of directories opened with `open_dir` (made on first open, moved by renames).
    dir_nodes: BTreeMap<PathBuf, Arc<Node>>,
}

/// Every file's bytes and every directory: what [`MemFs::snapshot`] returns and [`MemFs::from_snapshot`] takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// File contents by path.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Directories.
    pub dirs: BTreeSet<PathBuf>,
}

/// The in-memory file system. Clones share the same tree.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    tree: Arc<Mutex<Tree>>,
}

static HANDLES: AtomicU64 = AtomicU64::new(1);

fn not_found(path: &Path) -> io::Error {
    io::Error::new(ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
}

impl MemFs {
    /// An empty file system with only `/`.
    pub fn new() -> MemFs {
        let fs = MemFs::default();
        guard(&fs.tree).dirs.insert(PathBuf::from("/"));
        fs
    }

    /// Copies every file and directory.
    pub fn snapshot(&self) -> Snapshot {
        let t = guard(&self.tree);
        Snapshot { files: t.files.iter().map(|(p, n)| (p.clone(), n.bytes())).collect(), dirs: t.dirs.clone() }
    }

    /// A new, independent file system holding `snap`.
    pub fn from_snapshot(snap: &Snapshot) -> MemFs {
        let fs = MemFs::new();
        {
            let mut t = guard(&fs.tree);
            t.dirs.extend(snap.dirs.iter().cloned());
            for (p, b) in &snap.files {
                t.files.insert(p.clone(), Node::with(b.clone()));
            }
        }
        fs
    }

    /// The bytes of a file, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        guard(&self.tree).files.get(path).map(|n| n.bytes())
    }

    /// Replaces (or creates) a file's bytes.
    pub fn write(&self, path: &Path, bytes: Vec<u8>) {
        let mut t = guard(&self.tree);
        match t.files.get(path) {
            Some(n) => *n.data.write().unwrap_or_else(|p| p.into_inner()) = bytes,
            None => {
                t.files.insert(path.to_path_buf(), Node::with(bytes));
            }
        }
    }

    /// Removes a file if it exists.
    pub fn remove(&self, path: &Path) {
        guard(&self.tree).files.remove(path);
    }

    /// Paths of every file, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        guard(&self.tree).files.keys().cloned().collect()
    }

    fn parent_exists(t: &Tree, path: &Path) -> bool {
        path.parent().is_none_or(|p| p.as_os_str().is_empty() || t.dirs.contains(p))
    }
}

/// An open handle on a [`MemFs`] file.
#[derive(Debug)]
pub struct MemFile {
    node: Arc<Node>,
    id: u64,
    writable: bool,
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut l = guard(&self.node.locks);
        if l.exclusive == Some(self.id) {
            l.exclusive = None;
        }
        l.shared.remove(&self.id);
    }
}

impl VfsFile for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let d = self.node.data.read().unwrap_or_else(|p| p.into_inner());
        let start = usize::try_from(offset).map_err(|_| io::Error::from(ErrorKind::UnexpectedEof))?;
        let end = start.checked_add(buf.len()).ok_or_else(|| io::Error::from(ErrorKind::UnexpectedEof))?;
        let src = d.get(start..end).ok_or_else(|| io::Error::new(ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(ErrorKind::PermissionDenied, "file opened read-only"));
        }
        let mut d = self.node.data.write().unwrap_or_else(|p| p.into_inner());
        let start = usize::try_from(offset).map_err(|_| io::Error::from(ErrorKind::InvalidInput))?;
        let end = start.checked_add(data.len()).ok_or_else(|| io::Error::from(ErrorKind::InvalidInput))?;
        if end > 1 << 30 {
            return Err(io::Error::new(ErrorKind::StorageFull, "memfs: file over 1 GiB"));
        }
        if d.len() < end {
            d.resize(end, 0);
        }
        d[start..end].copy_from_slice(data);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.node.data.read().unwrap_or_else(|p| p.into_inner()).len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(ErrorKind::PermissionDenied, "file opened read-only"));
        }
        if len > 1 << 30 {
            return Err(io::Error::new(ErrorKind::StorageFull, "memfs: file over 1 GiB"));
        }
        self.node.data.write().unwrap_or_else(|p| p.into_inner()).resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn try_lock(&self) -> io::Result<bool> {
        let mut l = guard(&self.node.locks);
        let others_shared = l.shared.iter().any(|h| *h != self.id);
        if l.exclusive.is_some_and(|h| h != self.id) || others_shared {
            return Ok(false);
        }
        l.shared.remove(&self.id);
        l.exclusive = Some(self.id);
        Ok(true)
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        let mut l = guard(&self.node.locks);
        if l.exclusive.is_some_and(|h| h != self.id) {
            return Ok(false);
        }
        if l.exclusive == Some(self.id) {
            l.exclusive = None;
        }
        l.shared.insert(self.id);
        Ok(true)
    }
    fn unlock(&self) -> io::Result<()> {
        let mut l = guard(&self.node.locks);
        if l.exclusive == Some(self.id) {
            l.exclusive = None;
        }
        l.shared.remove(&self.id);
        Ok(())
    }
}

impl Vfs for MemFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut t = guard(&self.tree);
        if t.dirs.contains(path) {
            return Err(io::Error::new(ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
        }
        let existing = t.files.get(path).cloned();
        let node = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(ErrorKind::AlreadyExists, format!("{} exists", path.display())))
            }
            (_, Some(n)) => n,
            (OpenMode::CreateNew | OpenMode::CreateOrOpen, None) => {
                if !MemFs::parent_exists(&t, path) {
                    return Err(not_found(path));
                }
                let n = Node::with(Vec::new());
                t.files.insert(path.to_path_buf(), n.clone());
                n
            }
        };
        let id = HANDLES.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(MemFile { node, id, writable: mode != OpenMode::Read }))
    }
    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut t = guard(&self.tree);
        if !t.dirs.contains(path) {
            return Err(not_found(path));
        }
        let node = t.dir_nodes.entry(path.to_path_buf()).or_insert_with(|| Node::with(Vec::new())).clone();
        let id = HANDLES.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(MemFile { node, id, writable: false }))
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut t = guard(&self.tree);
        if t.dirs.contains(path) || t.files.contains_key(path) {
            return Err(io::Error::new(ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        if !MemFs::parent_exists(&t, path) {
            return Err(not_found(path));
        }
        t.dirs.insert(path.to_path_buf());
        Ok(())
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut t = guard(&self.tree);
        for a in path.ancestors() {
            if a.as_os_str().is_empty() {
                continue;
            }
            if t.files.contains_key(a) {
                return Err(io::Error::new(ErrorKind::NotADirectory, format!("{} is a file", a.display())));
            }
            t.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let t = guard(&self.tree);
        if !t.dirs.contains(path) {
            return Err(not_found(path));
        }
        let child = |p: &Path| -> Option<String> {
            (p.parent() == Some(path)).then(|| p.file_name().map(|n| n.to_string_lossy().into_owned())).flatten()
        };
        let mut out: Vec<String> = t.files.keys().filter_map(|p| child(p)).collect();
        out.extend(t.dirs.iter().filter_map(|p| child(p)));
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        let t = guard(&self.tree);
        t.files.contains_key(path) || t.dirs.contains(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut t = guard(&self.tree);
        if t.dirs.contains(from) {
            if !MemFs::parent_exists(&t, to) {
                return Err(not_found(to));
            }
            let busy = t.files.keys().any(|p| p.starts_with(to)) || t.dirs.iter().any(|p| p != to && p.starts_with(to));
            if t.files.contains_key(to) || busy {
                return Err(io::Error::new(ErrorKind::DirectoryNotEmpty, format!("{} is not empty", to.display())));
            }
            let moved = |p: &Path| to.join(p.strip_prefix(from).unwrap_or(p));
            let files: Vec<PathBuf> = t.files.keys().filter(|p| p.starts_with(from)).cloned().collect();
            for p in files {
                if let Some(n) = t.files.remove(&p) {
                    t.files.insert(moved(&p), n);
                }
            }
            let dirs: Vec<PathBuf> = t.dirs.iter().filter(|p| p.starts_with(from)).cloned().collect();
            for p in dirs {
                t.dirs.remove(&p);
                t.dirs.insert(moved(&p));
            }
            let nodes: Vec<PathBuf> = t.dir_nodes.keys().filter(|p| p.starts_with(from)).cloned().collect();
            for p in nodes {
                if let Some(n) = t.dir_nodes.remove(&p) {
                    t.dir_nodes.insert(moved(&p), n);
                }
            }
            return Ok(());
        }
        let n = t.files.remove(from).ok_or_else(|| not_found(from))?;
        if !MemFs::parent_exists(&t, to) {
            t.files.insert(from.to_path_buf(), n);
            return Err(not_found(to));
        }
        t.files.insert(to.to_path_buf(), n);
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        guard(&self.tree).files.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut t = guard(&self.tree);
        if !t.dirs.contains(path) {
            return Err(not_found(path));
        }
        t.files.retain(|p, _| !p.starts_with(path));
        t.dirs.retain(|p| !p.starts_with(path));
        t.dir_nodes.retain(|p, _| !p.starts_with(path));
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if guard(&self.tree).dirs.contains(path) {
            Ok(())
        } else {
            Err(not_found(path))
        }
    }
    fn map(&self, path: &Path) -> io::Result<MappedBytes> {
        let bytes = guard(&self.tree).files.get(path).map(|n| n.bytes()).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(bytes))
    }
}
