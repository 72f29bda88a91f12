//! forklog runs in object storage: sealed segments uploaded to S3 (or any `object_store` backend), runs
//! listed, replayed and forked copy-free from any machine.
//!
//! A [`Remote`] is a [`forklog::vfs::Vfs`] over a local cache directory and an [`ObjectStore`]: the engine
//! writes and reads files in the cache as usual, and the remote layer
//!
//! - uploads a segment with its index, zone map and the key table when the engine creates the next segment
//!   (the segment is then sealed), and everything outstanding of a run when its writer lets go of the run
//!   (`finish`, drop) or on [`Remote::sync`], through a bounded FIFO queue with retries and backoff;
//! - publishes a version header (`v<K>.head`, the fork pointer) only after what it points at is uploaded,
//!   with a conditional create, so of two machines creating one run id exactly one wins (`RunExists`);
//! - holds a lease object `leases/<id>` (conditional updates) while a writer has a run, so a second machine's
//!   writer gets `RunBusy`;
//! - fetches what the cache lacks on demand with ranged requests: a segment opened for reading block by block
//!   as the engine reads it (a fork's position lookup fetches the blocks near its pointer), the segments a replay
//!   names up front ([`forklog::vfs::Vfs::will_read`]) whole and ahead of it, two at a time, their bodies
//!   streaming into the cache so decoding starts with the first block; other files whole; and keeps downloaded
//!   and uploaded files under a size limit (least recently used first);
//! - drops its copy of a run another machine deleted (or deleted and created again): a cached header whose ETag
//!   the run's fresh listing does not show.
//!
//! ```no_run
//! use forklog::ForkPoint;
//! use forklog_remote::RemoteOptions;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (store, remote) = forklog_remote::open("s3://my-bucket/team", "/var/cache/forklog", RemoteOptions::default())?;
//! let mut run = store.create_run("sweep-1")?;
//! run.log_floats(&[("loss", 0.5)])?;
//! run.finish(0)?; // waits until the run's files are uploaded (RemoteOptions::finish_waits)
//! store.fork("sweep-1-b", &ForkPoint::new("sweep-1", 0))?.finish(0)?;
//! remote.sync()?; // everything outstanding, or Error::Upload
//! println!("{:?}", remote.stats());
//! # Ok(()) }
//! ```
//!
//! docs/FORMAT.md ("Remote layout") lists the object keys and the upload order; the README's "Beyond one
//! machine" has the commands and the limits.

#[doc(hidden)]
pub mod testing;
mod vfs;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use forklog::Store;
use object_store::ObjectStore;

pub use object_store;

use vfs::{RemoteVfs, RemoteVfsHandle};

/// Errors of the remote layer (the engine's own errors pass through as [`Error::Engine`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store URL could not be used.
    Url {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The object store refused or failed a request.
    ObjectStore {
        /// What was being done.
        op: &'static str,
        /// The object key.
        key: String,
        /// The object store's error.
        source: object_store::Error,
    },
    /// Uploads failed after every retry; the named objects are not (all) in the object store yet.
    Upload {
        /// How many uploads failed since the last successful [`Remote::sync`].
        failed: u64,
        /// The last failure.
        last: String,
    },
    /// A local I/O failure in the cache directory.
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An error of the engine.
    Engine(forklog::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url { url, reason } => write!(f, "store URL {url}: {reason}"),
            Error::ObjectStore { op, key, source } => write!(f, "{op} object {key}: {source}"),
            Error::Upload { failed, last } => write!(f, "{failed} upload(s) failed after retries; last: {last}"),
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Engine(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ObjectStore { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }
}

impl From<forklog::Error> for Error {
    fn from(e: forklog::Error) -> Error {
        Error::Engine(e)
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Default limit of the local cache: 1 GiB.
pub const DEFAULT_CACHE_LIMIT: u64 = 1 << 30;
/// Default lease duration: 30 s (renewed every third of it).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default length of the upload queue.
pub const DEFAULT_QUEUE: usize = 256;
/// Default size of one ranged download request: 32 MiB (each request costs a round trip; four run at once).
pub const DEFAULT_RANGE: u64 = 32 << 20;

/// Options of the remote layer, built from [`RemoteOptions::default`] with the builder methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteOptions {
    pub(crate) cache_limit: u64,
    pub(crate) lease: Duration,
    pub(crate) queue: usize,
    pub(crate) finish_waits: bool,
    pub(crate) range: u64,
    pub(crate) parallel: usize,
    pub(crate) retries: u32,
    pub(crate) engine: forklog::Options,
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            cache_limit: DEFAULT_CACHE_LIMIT,
            lease: DEFAULT_LEASE,
            queue: DEFAULT_QUEUE,
            finish_waits: true,
            range: DEFAULT_RANGE,
            parallel: 4,
            retries: 30,
            engine: forklog::Options::default(),
        }
    }
}

impl RemoteOptions {
    /// Sets the size limit of downloaded and uploaded files kept in the cache (files a writer still needs
    /// stay whatever the limit).
    pub fn cache_limit(mut self, bytes: u64) -> RemoteOptions {
        self.cache_limit = bytes;
        self
    }

    /// Sets the lease duration of a run's writer (at least 300 ms); the lease is renewed every third of it.
    pub fn lease(mut self, lease: Duration) -> RemoteOptions {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Sets the length of the upload queue (at least 1): a writer that seals segments faster than they upload
    /// waits for a place.
    pub fn queue(mut self, jobs: usize) -> RemoteOptions {
        self.queue = jobs.max(1);
        self
    }

    /// Whether a writer's `finish` (or drop) waits until the run's files are uploaded (default `true`). With
    /// `false`, [`Remote::sync`] waits for them.
    pub fn finish_waits(mut self, wait: bool) -> RemoteOptions {
        self.finish_waits = wait;
        self
    }

    /// Sets the size of one ranged download request (at least 64 KiB) and how many run at once (at least 1).
    pub fn downloads(mut self, range: u64, parallel: usize) -> RemoteOptions {
        self.range = range.max(64 << 10);
        self.parallel = parallel.max(1);
        self
    }

    /// Sets how many times a failed request is retried (exponential backoff from 50 ms to 2 s).
    pub fn retries(mut self, retries: u32) -> RemoteOptions {
        self.retries = retries;
        self
    }

    /// Sets the engine options used by [`open`] and [`open_object_store`] (their storage backend is replaced).
    pub fn store_options(mut self, opts: forklog::Options) -> RemoteOptions {
        self.engine = opts;
        self
    }

    /// The cache size limit in bytes.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_limit
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// The upload queue length.
    pub fn queue_len(&self) -> usize {
        self.queue
    }

    /// Whether `finish` waits for the run's uploads.
    pub fn finish_waits_for_uploads(&self) -> bool {
        self.finish_waits
    }
}

/// Counters of a [`Remote`] since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// Objects uploaded.
    pub uploads: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Upload attempts that failed and were retried.
    pub upload_retries: u64,
    /// Uploads that failed after every retry.
    pub upload_failures: u64,
    /// Objects downloaded into the cache.
    pub downloads: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Cached files removed to stay under the cache limit.
    pub evictions: u64,
    /// Bytes of evictable files in the cache now.
    pub cached_bytes: u64,
    /// Leases lost (not renewed in time, or taken over).
    pub leases_lost: u64,
    /// Objects deleted (delete, gc).
    pub deletes: u64,
    /// Requests sent to the object store through the retry loop (each attempt counts): listings, HEADs, GETs,
    /// PUTs and DELETEs, the round trips a read or a fork waits for.
    pub requests: u64,
}

/// The handle of a store's remote tier: wait for uploads, read counters, build engine options.
#[derive(Debug, Clone)]
pub struct Remote {
    vfs: Arc<RemoteVfs>,
}

impl Remote {
    /// Connects to the store at `url` (`s3://bucket/prefix`, `file:///dir`, `memory:///`) with `cache_dir` as
    /// the local cache. S3 credentials, endpoint and region come from the usual environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`);
    /// requests are path-style.
    pub fn connect(url: &str, cache_dir: impl AsRef<Path>, opts: RemoteOptions) -> Result<Remote> {
        let (store, prefix) = vfs::store_for_url(url)?;
        let vfs = RemoteVfs::new(store, &prefix, url.trim_end_matches('/'), cache_dir.as_ref(), opts)?;
        Ok(Remote { vfs: Arc::new(vfs) })
    }

    /// Uses `store` (for example `object_store::memory::InMemory`) under `prefix` (may be empty).
    pub fn with_object_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        cache_dir: impl AsRef<Path>,
        opts: RemoteOptions,
    ) -> Result<Remote> {
        let root = format!("{store}/{}", prefix.trim_matches('/'));
        let vfs = RemoteVfs::new(store, prefix, root.trim_end_matches('/'), cache_dir.as_ref(), opts)?;
        Ok(Remote { vfs: Arc::new(vfs) })
    }

    /// Engine options whose storage backend is this remote (start from `opts`).
    pub fn options(&self, opts: forklog::Options) -> forklog::Options {
        let vfs: Arc<dyn forklog::vfs::Vfs> = Arc::new(RemoteVfsHandle(self.vfs.clone()));
        opts.vfs(vfs)
    }

    /// Opens the store in the cache directory with `opts` (see [`Remote::options`]).
    pub fn open_store(&self, opts: forklog::Options) -> Result<Store> {
        Ok(Store::open_with(self.vfs.cache_root(), self.options(opts))?)
    }

    /// Uploads everything outstanding of every run written through this remote and waits for the upload
    /// queue to drain. Fails with [`Error::Upload`] when uploads failed after every retry since the last
    /// successful sync (their runs' headers are not published until a later sync succeeds).
    pub fn sync(&self) -> Result<()> {
        self.vfs.sync_all()
    }

    /// The counters.
    pub fn stats(&self) -> RemoteStats {
        self.vfs.stats()
    }

    /// The remote root as given (`s3://bucket/prefix`); object keys in messages are relative to it.
    pub fn root(&self) -> &str {
        self.vfs.root()
    }

    /// The local cache directory (the engine's store directory).
    pub fn cache_dir(&self) -> &Path {
        self.vfs.cache_root()
    }

    /// The object key of a file of the cache (`runs/<id>/v0-0.seg`), if it has one.
    pub fn object_key(&self, path: &Path) -> Option<String> {
        self.vfs.key_of(path)
    }

    /// Rewrites an engine error about a cached file so it names the object (`<root>/<key>`) instead: a
    /// corrupted object is then `Error::Corrupt` naming its key.
    pub fn name_object(&self, e: forklog::Error) -> forklog::Error {
        match e {
            forklog::Error::Corrupt { file, offset, reason } => {
                let file = match self.object_key(&file) {
                    Some(key) => PathBuf::from(format!("{}/{key}", self.root())),
                    None => file,
                };
                forklog::Error::Corrupt { file, offset, reason }
            }
            e => e,
        }
    }
}

/// Opens (creating when missing) the forklog store at `url` with `cache_dir` as its local cache; see
/// [`Remote::connect`] for the URLs and credentials.
pub fn open(url: &str, cache_dir: impl AsRef<Path>, opts: RemoteOptions) -> Result<(Store, Remote)> {
    let engine = opts.engine.clone();
    let remote = Remote::connect(url, cache_dir, opts)?;
    let store = remote.open_store(engine)?;
    Ok((store, remote))
}

/// Connects to the store at `url` without opening the engine (the command-line tool opens it read-only or
/// writable per command with [`Remote::open_store`]).
pub fn open_remote(url: &str, cache_dir: impl AsRef<Path>, opts: RemoteOptions) -> Result<Remote> {
    Remote::connect(url, cache_dir, opts)
}

/// Opens (creating when missing) the forklog store kept in `store` under `prefix`, with `cache_dir` as its
/// local cache: for in-memory and local-file stores, and tests.
pub fn open_object_store(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    cache_dir: impl AsRef<Path>,
    opts: RemoteOptions,
) -> Result<(Store, Remote)> {
    let engine = opts.engine.clone();
    let remote = Remote::with_object_store(store, prefix, cache_dir, opts)?;
    let store = remote.open_store(engine)?;
    Ok((store, remote))
}
