//! The storage seam: every byte forklog reads or writes goes through [`Vfs`] and [`VfsFile`].
//!
//! Production uses [`StdFs`] (real files, `pread`/`pwrite`, `fsync`, OS advisory locks, `mmap` for sealed
//! segments). Tests implement the traits to inject faults: lost unsynced writes, torn writes, failing
//! fsyncs, `ENOSPC`, vanished directory entries. The calls are coarse (one per syscall the engine would
//! make anyway), so the dynamic dispatch costs nothing measurable next to the syscall itself.

/// The names of a run directory's files, for a file system that treats them differently (the object-storage
/// tier uploads segments, indexes, zone maps and key tables before the header that points at them).
pub use crate::format::{parse_run_file, RunFile, DELETED_FILE};
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A read-only view of a whole file's bytes (an `mmap` in production), see [`Mapping`].
pub type MappedBytes = Arc<dyn Mapping>;

/// The bytes of a file mapped by [`Vfs::map`], with hints on how they are read.
///
/// A mapping's resident pages count in the process's RSS (and peak RSS) until they are released, so a reader
/// that walks a large mapping front to back releases what it has consumed. Both hints only change which pages
/// are resident: the bytes seen through [`AsRef`] never change. In-memory implementations (a `Vec<u8>`) keep the
/// default no-op hints.
pub trait Mapping: AsRef<[u8]> + Send + Sync {
    /// Hints that the bytes will be read front to back (`MADV_SEQUENTIAL` in production: more read-ahead).
    fn advise_sequential(&self) {}
    /// Hints that the reader is done with `offset..offset + len`: its resident pages may be dropped
    /// (`MADV_DONTNEED` in production). Reading the range again stays valid and returns the same bytes (the
    /// pages are read back from the file). Callers pass page-aligned ranges; a range past the end is clipped.
    fn release(&self, offset: usize, len: usize) {
        let _ = (offset, len);
    }
}

impl Mapping for Vec<u8> {}

/// How [`Vfs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file, failing with `AlreadyExists` if it exists.
    CreateNew,
    /// Read and write; create the file if missing.
    CreateOrOpen,
}

/// A file system as forklog uses it.
pub trait Vfs: Send + Sync + Debug {
    /// Opens `path` in `mode`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>>;
    /// Opens the directory `path` as a handle that can be locked ([`VfsFile::try_lock`] and the like: a run's
    /// writer lock is an advisory lock on its directory) and synced ([`VfsFile::sync_data`] makes the
    /// directory's entries durable, like [`Vfs::sync_dir`]). Reads, writes and lengths fail on it.
    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Creates one directory; `AlreadyExists` if it exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Lists the names of the entries of a directory (unsorted).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// True when `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Maps a file read-only. Only called for files that are never modified again (sealed segments,
    /// archived versions); the caller must not rely on seeing later changes. The [`Mapping`] hints may be
    /// no-ops.
    fn map(&self, path: &Path) -> io::Result<MappedBytes>;
    /// Hints that the files `paths` will be read soon, whole and front to back, in this order (the segments of
    /// a replay of a whole history). A file system that fetches files on demand (an object-storage cache) may start
    /// fetching them now; the default does nothing. A hint never changes what reads return.
    fn will_read(&self, paths: &[std::path::PathBuf]) {
        let _ = paths;
    }
}

/// An open file.
pub trait VfsFile: Send + Sync + Debug {
    /// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` if the file is shorter).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `data` at `offset`.
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// True when the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Takes an exclusive advisory lock without waiting; `Ok(false)` when someone else holds a lock.
    fn try_lock(&self) -> io::Result<bool>;
    /// Takes a shared advisory lock without waiting; `Ok(false)` when someone holds the exclusive lock.
    fn try_lock_shared(&self) -> io::Result<bool>;
    /// Takes an exclusive advisory lock, waiting for other holders to release theirs. The default retries
    /// [`try_lock`](VfsFile::try_lock) with short sleeps.
    fn lock(&self) -> io::Result<()> {
        let mut pause = std::time::Duration::from_micros(20);
        while !self.try_lock()? {
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(2));
        }
        Ok(())
    }
    /// Releases this handle's lock.
    fn unlock(&self) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

/// A [`VfsFile`] on a real file or directory.
#[derive(Debug)]
pub struct StdFile {
    file: File,
    /// True for a directory handle (from [`Vfs::open_dir`]).
    dir: bool,
}

fn lock_result(r: Result<(), TryLockError>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl VfsFile for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, data, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.dir {
            // A directory's entries are its metadata: `fsync`, not `fdatasync`.
            self.file.sync_all()
        } else {
            self.file.sync_data()
        }
    }
    fn try_lock(&self) -> io::Result<bool> {
        lock_result(self.file.try_lock())
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        lock_result(self.file.try_lock_shared())
    }
    fn lock(&self) -> io::Result<()> {
        self.file.lock()
    }
    fn unlock(&self) -> io::Result<()> {
        self.file.unlock()
    }
}

/// A read-only memory map of a sealed file.
struct Mapped(memmap2::Mmap);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Mapping for Mapped {
    fn advise_sequential(&self) {
        // Only a hint: if the kernel refuses it, reads are merely slower on a cold cache.
        let _ = self.0.advise(memmap2::Advice::Sequential);
    }

    fn release(&self, offset: usize, len: usize) {
        let len = len.min(self.0.len().saturating_sub(offset));
        if len == 0 {
            return;
        }
        // SAFETY: `MADV_DONTNEED` is unsafe in general because it discards the contents of private or
        // anonymous pages, so later reads see zeros or the file instead of what was there. This mapping is a
        // read-only `MAP_SHARED` map of a file no forklog writer modifies again (see `StdFs::map`): no page of
        // it was ever written, so the advice only drops this process's references to page-cache pages, and the
        // next access faults the identical bytes back in from the file. Any `&[u8]` still borrowed from the
        // range (callers release only ranges they are done with; `SegmentReader` never lends a frame across a
        // release) therefore keeps seeing unchanged bytes. `offset..offset + len` lies inside the mapping
        // (clipped above), so the call touches no other memory.
        // Only a hint as well: on failure the pages just stay resident until the map is dropped.
        let _ = unsafe { self.0.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
    }
}

impl Vfs for StdFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
            OpenMode::CreateOrOpen => o.read(true).write(true).create(true),
        };
        Ok(Box::new(StdFile { file: o.open(path)?, dir: false }))
    }
    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = File::open(path)?;
        if !file.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{}: not a directory", path.display())));
        }
        Ok(Box::new(StdFile { file, dir: true }))
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn map(&self, path: &Path) -> io::Result<MappedBytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Arc::new(Vec::<u8>::new()));
        }
        // SAFETY: forklog maps only sealed segments, their zone maps and files of archived versions, which no
        // forklog writer modifies or truncates again (docs/FORMAT.md, "Invariants"); garbage collection only
        // unlinks them, which leaves existing mappings valid on POSIX systems. Another program that
        // edits the store's files in place breaks this assumption, as documented in the README.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Arc::new(Mapped(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Releasing pages of a real file mapping changes no byte seen through it, whatever the range (inside,
    /// unaligned, past the end), and in-memory mappings accept the hints too.
    #[test]
    fn released_pages_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealed");
        let data: Vec<u8> = (0..(3u32 << 20) + 123).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        fs::write(&path, &data).unwrap();
        let map = StdFs.map(&path).unwrap();
        map.advise_sequential();
        assert_eq!((*map).as_ref(), &data[..]);
        for (offset, len) in
            [(0, 1 << 20), (1 << 20, 2 << 20), (4096, 10), (5000, 100), (3 << 20, 1 << 20), (8 << 20, 4096)]
        {
            map.release(offset, len);
            assert_eq!((*map).as_ref(), &data[..], "after releasing {offset}+{len}");
        }
        let mem: MappedBytes = Arc::new(data.clone());
        mem.advise_sequential();
        mem.release(0, 1 << 20);
        assert_eq!((*mem).as_ref(), &data[..]);
    }
}
