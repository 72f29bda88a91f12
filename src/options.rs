//! Store and writer options: durability policy, segment size, write buffering, and the storage backend.

use std::sync::Arc;

use crate::vfs::{StdFs, Vfs};

/// When a writer makes its appended events durable with `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every write call (`log`, `log_batch`, `set_config`, ...) is written and fsynced before it returns.
    Always,
    /// Events are buffered and made durable at most this many milliseconds after they were appended
    /// (a background thread syncs idle writers), on `sync()`, and when the writer is dropped.
    EveryMillis(u64),
    /// Never fsync: events reach the OS when the buffer fills, on `flush()`/`sync()` and on drop.
    /// A process crash loses only the unflushed buffer; an OS crash may lose anything not synced.
    Never,
}

impl Default for SyncPolicy {
    /// `EveryMillis(1000)`: see the README's "Durability" section for why.
    fn default() -> SyncPolicy {
        SyncPolicy::EveryMillis(1000)
    }
}

/// Default segment size at which a run's active segment rolls over: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// The smallest segment roll size.
const MIN_SEGMENT_SIZE: u64 = 4096;

/// Default size of a writer's in-memory frame buffer before it is written out: 64 KiB.
pub const DEFAULT_BUFFER_SIZE: usize = 64 << 10;

/// Options for [`Store::open_with`](crate::Store::open_with), built from [`Options::default`] with the builder
/// methods (the fields are private, so options can grow without breaking callers):
///
/// ```
/// use forklog::{Options, SyncPolicy};
/// let opts = Options::default().sync(SyncPolicy::Always).segment_size(1 << 20);
/// assert_eq!(opts.sync_policy(), SyncPolicy::Always);
/// assert_eq!(opts.segment_bytes(), 1 << 20);
/// ```
///
/// Options cannot be built field by field:
///
/// ```compile_fail
/// let opts = forklog::Options { sync: forklog::SyncPolicy::Always, ..Default::default() };
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// The default durability policy of writers (each writer may override it).
    pub(crate) sync: SyncPolicy,
    /// Size in bytes at which a segment is sealed and a new one started.
    pub(crate) segment_size: u64,
    /// Bytes of encoded events a writer buffers before writing a frame.
    pub(crate) buffer_size: usize,
    /// The storage backend. `StdFs` in production; tests inject faults through their own.
    pub(crate) vfs: Arc<dyn Vfs>,
    /// Open read-only: never create, upgrade or change anything.
    pub(crate) read_only: bool,
    /// Create the store when the directory is missing or empty.
    pub(crate) create: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sync: SyncPolicy::default(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            buffer_size: DEFAULT_BUFFER_SIZE,
            vfs: Arc::new(StdFs),
            read_only: false,
            create: true,
        }
    }
}

impl Options {
    /// Sets the default sync policy.
    pub fn sync(mut self, sync: SyncPolicy) -> Options {
        self.sync = sync;
        self
    }

    /// Sets the segment roll size (clamped to at least 4 KiB).
    pub fn segment_size(mut self, bytes: u64) -> Options {
        self.segment_size = bytes.max(MIN_SEGMENT_SIZE);
        self
    }

    /// Sets the writer buffer size (clamped to at least 1 byte: every event is then its own frame).
    pub fn buffer_size(mut self, bytes: usize) -> Options {
        self.buffer_size = bytes.max(1);
        self
    }

    /// The options with every clamp applied.
    pub(crate) fn clamped(self) -> Options {
        let (segment, buffer) = (self.segment_size, self.buffer_size);
        self.segment_size(segment).buffer_size(buffer)
    }

    /// Opens read-only: never create, upgrade or change anything (writes fail with
    /// [`Error::ReadOnlyStore`](crate::Error::ReadOnlyStore)); implies no creation.
    /// [`Store::open_existing`](crate::Store::open_existing) sets it.
    pub fn read_only(mut self, read_only: bool) -> Options {
        self.read_only = read_only;
        self
    }

    /// Whether a missing or empty directory becomes a new store (default `true`). When `false`, opening such a
    /// directory fails with [`Error::NoStore`](crate::Error::NoStore).
    pub fn create(mut self, create: bool) -> Options {
        self.create = create;
        self
    }

    /// Sets the storage backend (`vfs::StdFs`, real files, by default; tests inject faults through their own).
    /// The `vfs` module is hidden from the docs: not a stable extension point yet.
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Options {
        self.vfs = vfs;
        self
    }

    /// The default durability policy of writers (each writer may override it).
    pub fn sync_policy(&self) -> SyncPolicy {
        self.sync
    }

    /// The size in bytes at which a segment is sealed and a new one started.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_size
    }

    /// The bytes of encoded events a writer buffers before writing a frame.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_size
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// Whether the store is opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether a missing or empty directory becomes a new store.
    pub fn creates_missing(&self) -> bool {
        self.create
    }
}
