//! [`RemoteVfs`]: the engine's files in a local cache directory, mirrored to an object store.
//!
//! Paths of the cache map to object keys by their place under the cache root: `forklog.store`,
//! `runs/<id>/<file>` (only names of the run layout; `*.tmp` and the `~new`/`~gc` directories stay local).
//! Leases live under `leases/<id>`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use forklog::vfs::{MappedBytes, OpenMode, StdFs, Vfs, VfsFile};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use crate::{Error, RemoteOptions, RemoteStats, Result};

const RUNS: &str = "runs";
const STORE_FILE: &str = "forklog.store";
const LEASES: &str = "leases";
/// The cache directory of partially fetched files (never a run layout name, skipped when the root is listed).
pub(crate) const PARTIAL_DIR: &str = ".forklog-partial";
/// Block size of a partially fetched file: a read fetches the missing 256 KiB blocks it touches (runs of
/// adjacent missing blocks in one request of at most the download range).
pub(crate) const BLOCK: u64 = 256 << 10;
/// Blocks a read that does not continue the previous one fetches at least (2 MiB).
const JUMP: usize = 8;
/// How many files a replay's read-ahead fetches ahead of the one being read ([`Vfs::will_read`]).
const READ_AHEAD_FILES: usize = 2;
/// How long a run directory's listing answers for its objects' sizes (instead of a `HEAD` per file opened).
pub(crate) const LISTING_TTL: Duration = Duration::from_secs(1);

/// Builds the object store for `url` and returns it with the key prefix inside it.
pub(crate) fn store_for_url(url: &str) -> Result<(Arc<dyn ObjectStore>, String)> {
    let bad = |reason: String| Error::Url { url: url.to_string(), reason };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let prefix = parsed.path().trim_matches('/').to_string();
    match parsed.scheme() {
        "s3" => {
            let bucket = parsed.host_str().ok_or_else(|| bad("no bucket name".into()))?;
            let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).ok();
            let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
                || endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
            let region = std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|_| "us-east-1".into());
            // Client options first: setting them later would turn plain http off again.
            let client = object_store::ClientOptions::new()
                .with_timeout(Duration::from_secs(10))
                .with_connect_timeout(Duration::from_secs(5));
            let retry = object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..Default::default()
            };
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_client_options(client)
                .with_allow_http(allow_http)
                .with_bucket_name(bucket)
                .with_region(region)
                .with_virtual_hosted_style_request(false)
                .with_retry(retry)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(s3), prefix))
        }
        "file" => {
            let dir = PathBuf::from(format!("/{prefix}"));
            fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(local), String::new()))
        }
        "memory" => Ok((Arc::new(object_store::memory::InMemory::new()), prefix)),
        other => Err(bad(format!("unsupported scheme {other:?} (s3, file or memory)"))),
    }
}

/// A run directory's listing: when it was taken, its objects' sizes by name, and whether this process created
/// the run (then no other machine wrote any of them).
type RunListing = (Instant, HashMap<String, u64>, bool);

/// A remote directory listing: `(objects with sizes, child prefixes, headers)`.
type Listing = (Vec<(String, u64)>, Vec<String>, Heads);

/// The version headers of a run directory's listing with their ETags.
type Heads = HashMap<String, Option<String>>;

/// The names and sizes of `objects`.
fn sized(objects: &[object_store::ObjectMeta]) -> Vec<(String, u64)> {
    objects.iter().filter_map(|o| o.location.filename().map(|n| (n.to_string(), o.size))).collect()
}

/// The headers among `objects`, with their ETags.
fn heads_of(objects: &[object_store::ObjectMeta]) -> Heads {
    objects
        .iter()
        .filter_map(|o| {
            let name = o.location.filename()?;
            matches!(parse_run_file(name), Some(RunFile::Head(_))).then(|| (name.to_string(), o.e_tag.clone()))
        })
        .collect()
}

/// What a cache path is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// The cache root.
    Root,
    /// `forklog.store`.
    StoreFile,
    /// `runs/`.
    Runs,
    /// `runs/<id>`.
    RunDir(String),
    /// `runs/<id>/<name>`, a file of the run layout.
    RunFile(String, String),
    /// Anything else (temp files, `~new` and `~gc` directories): local only.
    Local,
}

/// A file of a run directory, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunFile {
    Head(u32),
    Keys(u32),
    Seg(u32, u32),
    Idx(u32, u32),
    Zmap(u32, u32),
    Deleted,
}

/// What the engine's file name `name` is (its own parser), the tombstone included.
fn parse_run_file(name: &str) -> Option<RunFile> {
    use forklog::vfs::RunFile as F;
    if name == forklog::vfs::DELETED_FILE {
        return Some(RunFile::Deleted);
    }
    Some(match forklog::vfs::parse_run_file(name)? {
        F::Head(v) => RunFile::Head(v),
        F::Keys(v) => RunFile::Keys(v),
        F::Seg(v, s) => RunFile::Seg(v, s),
        F::Idx(v, s) => RunFile::Idx(v, s),
        F::Zone(v, s) => RunFile::Zmap(v, s),
        _ => return None,
    })
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z = t ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(17);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn to_io(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

/// True for errors worth retrying (everything but answers about the object itself).
fn transient(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
    )
}

#[derive(Default)]
struct Counters {
    uploads: AtomicU64,
    uploaded_bytes: AtomicU64,
    upload_retries: AtomicU64,
    upload_failures: AtomicU64,
    downloads: AtomicU64,
    downloaded_bytes: AtomicU64,
    evictions: AtomicU64,
    leases_lost: AtomicU64,
    deletes: AtomicU64,
    requests: AtomicU64,
}

/// Evictable files of the cache (downloaded, or uploaded and sealed), least recently used first.
#[derive(Default)]
struct Lru {
    files: HashMap<PathBuf, (u64, u64)>,
    total: u64,
    tick: u64,
}

impl Lru {
    /// Stops counting `path` (it left the cache, or became a file this process must keep).
    fn forget(&mut self, path: &Path) {
        if let Some((size, _)) = self.files.remove(path) {
            self.total -= size;
        }
    }
}

/// A held lease.
struct Lease {
    version: UpdateVersion,
    generation: u64,
}

/// A job of the upload queue.
enum Job {
    /// Upload what run `id` has locally and the object store lacks (or has shorter); `skip_seg` `(K, S)`
    /// leaves segment S of version K (the new active one) and everything after it for later.
    /// `release` (the writer let go of the run): once all is uploaded, its files become evictable.
    Run { id: String, skip_seg: Option<(u32, u32)>, heads: bool, release: bool },
    /// Let run `id`'s lease go (it expires now).
    Release { id: String, version: UpdateVersion },
    /// Reply once every earlier job is done.
    Barrier(oneshot::Sender<()>),
}

/// State shared by the file system, its upload worker and lease renewals.
pub(crate) struct Shared {
    store: Arc<dyn ObjectStore>,
    cache: PathBuf,
    root: String,
    opts: RemoteOptions,
    owner: String,
    counters: Counters,
    lru: Mutex<Lru>,
    /// Files this process writes (never evicted, never overwritten by a download) until uploaded and sealed.
    written: Mutex<HashSet<PathBuf>>,
    /// Runs written through this remote (what `sync` uploads).
    touched: Mutex<HashSet<String>>,
    leases: Mutex<HashMap<String, Lease>>,
    /// Runs published from a `~new` directory whose lock handle now stands for the run's writer lock.
    adopted: Mutex<HashMap<PathBuf, String>>,
    failures: Mutex<(u64, String)>,
    download: Mutex<()>,
    /// The last listing of each run directory: when it was taken and its objects' sizes (see
    /// [`LISTING_TTL`]); this process's own uploads are added to it.
    listed: Mutex<HashMap<String, RunListing>>,
    /// Runs whose key table was opened since their listing was taken (a second open asks the object store).
    keys_read: Mutex<HashSet<String>>,
    /// Partially fetched files by their cache path (until complete or evicted).
    partials: Mutex<HashMap<PathBuf, Arc<Partial>>>,
    /// A replay's read-ahead ([`Vfs::will_read`]): the file fetched when the reader opens the file before it.
    read_next: Mutex<HashMap<PathBuf, PathBuf>>,
    /// The ETag of the object each cached header was downloaded from or uploaded as: a fresh listing that names
    /// another one (or none) shows the run was deleted, and maybe created again, by another machine.
    head_etags: Mutex<HashMap<PathBuf, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The remote file system (see the module docs).
pub(crate) struct RemoteVfs {
    shared: Arc<Shared>,
    rt: Runtime,
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for RemoteVfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteVfs").field("root", &self.shared.root).field("cache", &self.shared.cache).finish()
    }
}

impl RemoteVfs {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        root: &str,
        cache: &Path,
        opts: RemoteOptions,
    ) -> Result<RemoteVfs> {
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { store } else { Arc::new(object_store::prefix::PrefixStore::new(store, prefix)) };
        fs::create_dir_all(cache).map_err(|source| Error::Io { op: "creating cache", path: cache.into(), source })?;
        let cache =
            fs::canonicalize(cache).map_err(|source| Error::Io { op: "opening", path: cache.into(), source })?;
        // Partial files of an earlier process (a crash mid-fetch) are dropped: their block maps lived in memory.
        let partial = cache.join(PARTIAL_DIR);
        match fs::remove_dir_all(&partial) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::Io { op: "clearing partial downloads in", path: partial, source: e })
            }
            _ => {}
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("forklog-remote")
            .enable_all()
            .build()
            .map_err(|source| Error::Io { op: "starting runtime for", path: cache.clone(), source })?;
        let (tx, rx) = mpsc::channel(opts.queue);
        let shared = Arc::new(Shared {
            store,
            cache,
            root: root.to_string(),
            owner: format!("{:016x}", nonce()),
            opts,
            counters: Counters::default(),
            lru: Mutex::new(Lru::default()),
            written: Mutex::new(HashSet::new()),
            touched: Mutex::new(HashSet::new()),
            leases: Mutex::new(HashMap::new()),
            adopted: Mutex::new(HashMap::new()),
            failures: Mutex::new((0, String::new())),
            download: Mutex::new(()),
            listed: Mutex::new(HashMap::new()),
            keys_read: Mutex::new(HashSet::new()),
            partials: Mutex::new(HashMap::new()),
            read_next: Mutex::new(HashMap::new()),
            head_etags: Mutex::new(HashMap::new()),
        });
        rt.spawn(upload_worker(shared.clone(), rx));
        Ok(RemoteVfs { shared, rt, queue: tx })
    }

    pub(crate) fn cache_root(&self) -> &Path {
        &self.shared.cache
    }

    pub(crate) fn root(&self) -> &str {
        &self.shared.root
    }

    pub(crate) fn key_of(&self, path: &Path) -> Option<String> {
        match self.shared.place(path) {
            Place::StoreFile => Some(STORE_FILE.into()),
            Place::RunFile(id, name) => Some(format!("{RUNS}/{id}/{name}")),
            _ => None,
        }
    }

    pub(crate) fn stats(&self) -> RemoteStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RemoteStats {
            uploads: get(&c.uploads),
            uploaded_bytes: get(&c.uploaded_bytes),
            upload_retries: get(&c.upload_retries),
            upload_failures: get(&c.upload_failures),
            downloads: get(&c.downloads),
            downloaded_bytes: get(&c.downloaded_bytes),
            evictions: get(&c.evictions),
            cached_bytes: lock(&self.shared.lru).total,
            leases_lost: get(&c.leases_lost),
            deletes: get(&c.deletes),
            requests: get(&c.requests),
        }
    }

    fn enqueue(&self, job: Job) {
        // Called from the engine's threads (never from the runtime's): waits for a place in the queue.
        if self.queue.blocking_send(job).is_err() {
            self.shared.fail("upload queue closed".into());
        }
    }

    /// Waits until every queued job is done.
    fn barrier(&self) {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Job::Barrier(tx));
        let _ = rx.blocking_recv();
    }

    pub(crate) fn sync_all(&self) -> Result<()> {
        let runs: Vec<String> = lock(&self.shared.touched).iter().cloned().collect();
        for id in runs {
            self.enqueue(Job::Run { id, skip_seg: None, heads: true, release: false });
        }
        self.barrier();
        let mut f = lock(&self.shared.failures);
        if f.0 > 0 {
            let e = Error::Upload { failed: f.0, last: std::mem::take(&mut f.1) };
            f.0 = 0;
            return Err(e);
        }
        Ok(())
    }

    /// Uploads run `id`'s outstanding files now (in the calling thread), heads included when `heads`.
    fn flush_run_now(&self, id: &str, heads: bool) -> io::Result<()> {
        let failures = self.shared.counters.upload_failures.load(Ordering::Relaxed);
        self.rt.block_on(upload_run(&self.shared, id, None, heads, false));
        if self.shared.counters.upload_failures.load(Ordering::Relaxed) != failures {
            return Err(io::Error::other(format!("uploading run {id} failed after retries")));
        }
        Ok(())
    }

    /// Makes `path` present and current in the cache when the object store has it; with `sparse`, a large
    /// object the cache lacks is not downloaded but returned as a [`Partial`] whose reads fetch what they touch.
    fn ensure_local(&self, path: &Path, key: &str, place: &Place, sparse: bool) -> io::Result<Option<Arc<Partial>>> {
        if lock(&self.shared.written).contains(path) {
            return Ok(None);
        }
        let local = fs::metadata(path).ok().map(|m| m.len());
        if local.is_some() && self.shared.is_final(path, place) {
            // Only files this process downloaded or uploaded are evictable: a file left by a writer process
            // that died before uploading it must stay until its run's next writer uploads it.
            self.shared.reuse(path);
            return Ok(None);
        }
        let size = match self.shared.listed_size(place) {
            // The run's listing is fresh: the engine's view of the run came from it.
            Some(Some(size)) => size,
            Some(None) => return Ok(None),
            None => {
                let k = Key::from(key);
                match self.rt.block_on(self.shared.retry("head", || self.shared.store.head(&k))) {
                    Ok(m) => m.size,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    // Offline: a cached copy is better than nothing.
                    Err(_) if local.is_some() => return Ok(None),
                    Err(e) => return Err(to_io(e)),
                }
            }
        };
        if local.is_some_and(|l| l >= size) {
            return Ok(None);
        }
        let partial = self.shared.partial(path, size);
        if sparse && size > BLOCK && local.is_none() {
            if let Some(p) = partial {
                return Ok(Some(p));
            }
            let p = Partial::create(&self.shared, path, key, size)?;
            return Ok(Some(p));
        }
        if let Some(p) = partial {
            // Someone reads it sparsely: fetch the rest of it.
            p.complete(&self.shared, &self.rt)?;
            // The read-ahead may be the one moving it into place: wait for that.
            p.finish(&self.shared)?;
            if fs::metadata(path).is_ok_and(|m| m.len() >= size) {
                return Ok(None);
            }
        }
        self.download(path, key, size)?;
        Ok(None)
    }

    /// Downloads object `key` (`size` bytes) into `path` with parallel ranged requests.
    fn download(&self, path: &Path, key: &str, size: u64) -> io::Result<()> {
        let _one = lock(&self.shared.download);
        if fs::metadata(path).is_ok_and(|m| m.len() >= size) {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = path.with_file_name(format!("{name}.dl{:016x}.tmp", nonce()));
        let file = fs::File::create(&tmp)?;
        file.set_len(size)?;
        let file = Arc::new(file);
        let range = self.shared.opts.range.max(1);
        let ranges: Vec<std::ops::Range<u64>> =
            (0..size.div_ceil(range)).map(|i| i * range..((i + 1) * range).min(size)).collect();
        let shared = &self.shared;
        let k = Key::from(key);
        let res: io::Result<()> = self.rt.block_on(async {
            futures::stream::iter(ranges)
                .map(|r| {
                    let (k, file) = (k.clone(), file.clone());
                    async move {
                        let opts = || GetOptions::new().with_range(Some(r.clone()));
                        let got =
                            shared.retry("get_range", || shared.store.get_opts(&k, opts())).await.map_err(to_io)?;
                        if r.start == 0 {
                            shared.note_etag(path, got.meta.e_tag.as_deref());
                        }
                        let bytes = got.bytes().await.map_err(to_io)?;
                        if bytes.len() as u64 != r.end - r.start {
                            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{key}: short read")));
                        }
                        std::os::unix::fs::FileExt::write_all_at(&*file, &bytes, r.start)
                    }
                })
                .buffer_unordered(shared.opts.parallel)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        });
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // Durable before it takes the cache name: after a crash a file under that name is a complete copy.
        file.sync_data()?;
        fs::rename(&tmp, path)?;
        self.shared.counters.downloads.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.downloaded_bytes.fetch_add(size, Ordering::Relaxed);
        self.shared.touch(path, size);
        Ok(())
    }

    /// Names of `prefix`'s children in the object store: `(objects, common prefixes)`.
    fn remote_names(&self, prefix: &str) -> io::Result<Listing> {
        let p = Key::from(prefix);
        let list = self
            .rt
            .block_on(self.shared.retry("list", || self.shared.store.list_with_delimiter(Some(&p))))
            .map_err(to_io)?;
        let objects = sized(&list.objects);
        let dirs = list.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        Ok((objects, dirs, heads_of(&list.objects)))
    }

    /// The objects of run `id`'s directory. When the cache has no directory of the run, a `HEAD` of its
    /// `v0.head` races the listing: a directory without `v0.head` is no run to the engine (and the object store
    /// holds none without it: a run's objects are deleted before its headers), so "not found" (the quicker
    /// answer) lists it as empty.
    fn run_objects(&self, id: &str, cached: bool) -> io::Result<(Vec<(String, u64)>, Heads)> {
        let prefix = format!("{RUNS}/{id}");
        if cached {
            let (objects, _, heads) = self.remote_names(&prefix)?;
            return Ok((objects, heads));
        }
        let (p, head) = (Key::from(prefix.as_str()), Key::from(format!("{prefix}/v0.head")));
        let shared = &self.shared;
        let list = self
            .rt
            .block_on(async {
                let list = std::pin::pin!(shared.retry("list", || shared.store.list_with_delimiter(Some(&p))));
                let probe = std::pin::pin!(shared.store.head(&head));
                match futures::future::select(probe, list).await {
                    futures::future::Either::Left((Err(object_store::Error::NotFound { .. }), _)) => Ok(None),
                    futures::future::Either::Left((_, list)) => list.await.map(Some),
                    futures::future::Either::Right((list, _)) => list.map(Some),
                }
            })
            .map_err(to_io)?;
        Ok(list.map_or_else(Default::default, |l| (sized(&l.objects), heads_of(&l.objects))))
    }

    /// Another machine may have deleted run `id` (or a version of it), and maybe created it again, since this
    /// cache copied its files. A cached header that the fresh listing `heads` lacks, or names with another ETag,
    /// makes every cached file of the run stale: they are dropped here and fetched again when read. A header
    /// copied by an earlier process (its ETag unknown) is compared byte for byte once. A run this process has
    /// files of still to upload is left alone (its writer is here).
    /// Returns whether it dropped them.
    fn drop_stale_copy(&self, id: &str, heads: &Heads) -> io::Result<bool> {
        let dir = self.shared.cache.join(RUNS).join(id);
        let Ok(entries) = fs::read_dir(&dir) else { return Ok(false) };
        let files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        if files.iter().any(|f| lock(&self.shared.written).contains(f)) {
            return Ok(false);
        }
        let mut unknown = Vec::new();
        let mut stale = false;
        for path in &files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if !matches!(parse_run_file(name), Some(RunFile::Head(_))) {
                continue;
            }
            match (heads.get(name), lock(&self.shared.head_etags).get(path)) {
                (None, _) => stale = true,
                (Some(Some(listed)), Some(mine)) => stale |= listed != mine,
                (Some(Some(_)), None) => unknown.push((name.to_string(), path.clone())),
                // A store without ETags: nothing to compare cheaply.
                (Some(None), _) => {}
            }
        }
        if !stale && !unknown.is_empty() {
            let shared = &self.shared;
            let fetched = self.rt.block_on(futures::future::join_all(unknown.iter().map(|(name, _)| async move {
                let key = Key::from(format!("{RUNS}/{id}/{name}"));
                let got = shared.retry("get", || shared.store.get(&key)).await?;
                let etag = got.meta.e_tag.clone();
                Ok::<_, object_store::Error>((etag, got.bytes().await?))
            })));
            for ((_, path), got) in unknown.iter().zip(fetched) {
                match got {
                    Ok((etag, bytes)) if fs::read(path)? == bytes.as_ref() => {
                        self.shared.note_etag(path, etag.as_deref())
                    }
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => stale = true,
                    Err(e) => return Err(to_io(e)),
                }
            }
        }
        if stale {
            self.drop_run_copy(&dir, &files);
        }
        Ok(stale)
    }

    /// Drops the cached `files` of run directory `dir` and its partial files.
    fn drop_run_copy(&self, dir: &Path, files: &[PathBuf]) {
        self.shared.drop_partials(|p| p.starts_with(dir));
        for f in files {
            if fs::remove_file(f).is_err() {
                continue;
            }
            lock(&self.shared.lru).forget(f);
            lock(&self.shared.head_etags).remove(f);
        }
    }

    /// A run this cache has nothing of was just listed: every reader of it asks for the headers, the latest
    /// version's key table and (for at most four segments) its segment indexes next, so they are fetched now,
    /// in parallel, in the background. Segments are not: a replay asks for them whole ([`Vfs::will_read`]), a
    /// fork's position lookup for a few blocks, and a request for blocks nobody reads would only delay the
    /// others (a server answers a few at a time).
    fn prefetch(&self, id: &str, objects: &[(String, u64)]) {
        let latest = objects.iter().filter_map(|(n, _)| match parse_run_file(n) {
            Some(RunFile::Head(v)) => Some(v),
            _ => None,
        });
        let Some(latest) = latest.max() else { return };
        let segs = objects.iter().filter(|(n, _)| matches!(parse_run_file(n), Some(RunFile::Seg(v, _)) if v == latest));
        let few = segs.count() <= 4;
        let dir = self.shared.cache.join(RUNS).join(id);
        for (name, size) in objects {
            let wanted = match parse_run_file(name) {
                Some(RunFile::Head(_)) => true,
                Some(RunFile::Keys(v)) => v == latest,
                Some(RunFile::Idx(v, _)) => v == latest && few,
                _ => false,
            };
            let path = dir.join(name);
            if !wanted || *size == 0 || self.shared.partial(&path, *size).is_some() {
                continue;
            }
            self.fetch_all_in_background(&path, &format!("{RUNS}/{id}/{name}"), *size);
        }
    }

    /// Fetches every missing block of `path` (object `key`, `size` bytes) in the background, with one request,
    /// into its partial file (created if there is none).
    fn fetch_all_in_background(&self, path: &Path, key: &str, size: u64) {
        let p = match self.shared.partial(path, size) {
            Some(p) => p,
            None => match Partial::create(&self.shared, path, key, size) {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let blocks: Vec<usize> = (0..size.div_ceil(BLOCK) as usize).collect();
        p.fetch_in_background(&self.shared, &self.rt, &blocks, usize::MAX);
    }

    /// Starts fetching the whole of `path` (a run file the cache lacks, of a fresh listing) in the background,
    /// with one request (like a plain `get`: a range costs a request each, and some servers read the whole object
    /// for every range), its body streaming into the partial file; readers wait for the blocks in flight.
    fn fetch_whole_in_background(&self, path: &Path) {
        let place = self.shared.place(path);
        let Place::RunFile(id, name) = &place else { return };
        if path.exists() || lock(&self.shared.written).contains(path) {
            return;
        }
        let Some(Some(size)) = self.shared.listed_size(&place) else { return };
        // Reading ahead must not crowd out what is being read: only files that fit a quarter of the cache,
        // `READ_AHEAD_FILES` at a time.
        if size == 0 || size.saturating_mul(READ_AHEAD_FILES as u64) > self.shared.opts.cache_limit / 4 {
            return;
        }
        self.fetch_all_in_background(path, &format!("{RUNS}/{id}/{name}"), size);
    }

    /// Whether `e`, the failure to open a file just made present in the cache, came from an eviction since
    /// the cache had `evictions` (a download for another reader made room): then the caller fetches it again,
    /// up to three times.
    fn evicted_meanwhile(&self, e: &io::Error, evictions: u64, attempt: u32) -> bool {
        e.kind() == io::ErrorKind::NotFound
            && attempt < 3
            && self.shared.counters.evictions.load(Ordering::Relaxed) != evictions
    }

    /// A file of a replay's read-ahead is opened: fetch the file [`READ_AHEAD_FILES`] after it.
    fn opened_for_replay(&self, path: &Path) {
        let next = lock(&self.shared.read_next).remove(path);
        if let Some(next) = next {
            self.fetch_whole_in_background(&next);
        }
    }

    /// Publishes run directory `from` (`runs/<id>~new…`) as run `id`: its parent's data is uploaded, then
    /// `v0.head` is created in the object store only if no machine created it first, then renamed locally.
    fn publish_run(&self, id: &str, from: &Path, to: &Path) -> io::Result<()> {
        let head_path = from.join("v0.head");
        let head = fs::read(&head_path)?;
        if let Some(base) = base_run_of(&head) {
            // Only files in this cache that this process did not download or see uploaded can be missing from
            // the object store (also those of a writer process that died before its uploads).
            if base != id && self.shared.has_pending(&base) {
                self.flush_run_now(&base, false)?;
            }
        }
        let key = Key::from(format!("{RUNS}/{id}/v0.head"));
        let exists = || io::Error::new(io::ErrorKind::AlreadyExists, format!("run {id} exists in the object store"));
        // The conditional create is the one commit point: of two machines creating this id, one wins. The
        // lease is asked for at the same time (one round trip for both); a loser lets it go before it returns.
        self.shared.forget_listing(id);
        let shared = &self.shared;
        let (put, lease) = self.rt.block_on(async {
            let put = shared.retry("create", || {
                shared.store.put_opts(&key, PutPayload::from(head.clone()), PutMode::Create.into())
            });
            tokio::join!(put, take_lease(shared, id))
        });
        let put = match put {
            Ok(put) => put,
            Err(e) => {
                if let Ok(Some(version)) = lease {
                    self.let_go(id, version);
                }
                return Err(match e {
                    object_store::Error::AlreadyExists { .. } => exists(),
                    e => to_io(e),
                });
            }
        };
        self.shared.note_etag(&to.join("v0.head"), put.e_tag.as_deref());
        // This process created the header: the run has no other object (a run id's objects go before its
        // headers are deleted), so its listing is known without asking.
        let mut files = HashMap::new();
        files.insert("v0.head".to_string(), head.len() as u64);
        lock(&shared.listed).insert(id.to_string(), (Instant::now(), files, true));
        // The creator is the run's first writer: it takes the lease. Only a stale lease of an earlier run of
        // this id (deleted, then created again), or one a losing creator took for an instant, can be in the
        // way; it expires (or is let go) within a lease duration.
        let deadline = std::time::Instant::now() + self.shared.opts.lease * 2;
        let held = match lease {
            Ok(Some(version)) => {
                self.hold_lease(id, version);
                true
            }
            _ => false,
        };
        while !held && !self.take_lease_now(id)? {
            if std::time::Instant::now() > deadline {
                self.shared.fail(format!("run {id}: its lease is held by another machine"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shared.counters.uploads.fetch_add(1, Ordering::Relaxed);
        // A leftover empty directory (from a lease probe or a download) must not block the rename.
        let _ = fs::remove_dir(to);
        if let Err(e) = fs::rename(from, to) {
            // Keep the object store as it was: nobody else can hold this id's header.
            let _ = self.rt.block_on(self.shared.store.delete(&key));
            self.drop_lease(id);
            return Err(e);
        }
        lock(&self.shared.adopted).insert(from.to_path_buf(), id.to_string());
        lock(&self.shared.touched).insert(id.to_string());
        self.shared.mark_written(&to.join("v0.head"));
        Ok(())
    }

    /// Deletes every object of run `id` (headers last, so no header outlives what it points at).
    fn delete_run_objects(&self, id: &str) -> io::Result<()> {
        self.shared.forget_listing(id);
        let dir = self.shared.cache.join(RUNS).join(id);
        self.shared.drop_partials(|p| p.starts_with(&dir));
        let prefix = Key::from(format!("{RUNS}/{id}"));
        let metas: Vec<object_store::ObjectMeta> =
            self.rt.block_on(self.shared.store.list(Some(&prefix)).try_collect()).map_err(to_io)?;
        let (heads, rest): (Vec<_>, Vec<_>) =
            metas.into_iter().partition(|m| m.location.filename().is_some_and(|n| n.ends_with(".head")));
        for m in rest.into_iter().chain(heads) {
            self.delete_object(&m.location)?;
        }
        Ok(())
    }

    fn delete_object(&self, key: &Key) -> io::Result<()> {
        match self.rt.block_on(self.shared.retry("delete", || self.shared.store.delete(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.shared.note_object(key, None);
                self.shared.counters.deletes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(to_io(e)),
        }
    }

    /// Takes run `id`'s lease: `Ok(false)` when another live owner holds it.
    fn acquire_lease(&self, id: &str) -> io::Result<bool> {
        // A writer reads the run as the object store has it now, not as an earlier listing saw it.
        self.shared.forget_listing(id);
        self.take_lease_now(id)
    }

    /// [`take_lease`] in the calling thread; a lease taken is held (renewed in the background).
    fn take_lease_now(&self, id: &str) -> io::Result<bool> {
        let Some(version) = self.rt.block_on(take_lease(&self.shared, id)).map_err(to_io)? else { return Ok(false) };
        self.hold_lease(id, version);
        Ok(true)
    }

    /// Records run `id`'s lease as held (at `version`) and starts renewing it.
    fn hold_lease(&self, id: &str, version: UpdateVersion) {
        let generation = nonce();
        lock(&self.shared.leases).insert(id.to_string(), Lease { version, generation });
        lock(&self.shared.touched).insert(id.to_string());
        self.rt.spawn(renew_lease(self.shared.clone(), id.to_string(), generation));
    }

    /// Lets a lease taken at `version` (and not held) go at once.
    fn let_go(&self, id: &str, version: UpdateVersion) {
        let key = Key::from(format!("{LEASES}/{id}"));
        let body = self.shared.lease_body(0);
        let _ = self.rt.block_on(self.shared.retry("release", || {
            self.shared.store.put_opts(&key, PutPayload::from(body.clone()), PutMode::Update(version.clone()).into())
        }));
    }

    /// Lets run `id`'s lease go at once (nothing was written under it).
    fn drop_lease(&self, id: &str) {
        let Some(lease) = lock(&self.shared.leases).remove(id) else { return };
        let key = Key::from(format!("{LEASES}/{id}"));
        let body = self.shared.lease_body(0);
        let _ = self.rt.block_on(self.shared.store.put_opts(
            &key,
            PutPayload::from(body),
            PutOptions::from(PutMode::Update(lease.version)),
        ));
    }

    /// Uploads what run `id` has outstanding (waiting when the options say so) and lets its lease go.
    fn release_lease(&self, id: &str) {
        let lease = lock(&self.shared.leases).remove(id);
        self.enqueue(Job::Run { id: id.to_string(), skip_seg: None, heads: true, release: true });
        if let Some(lease) = lease {
            // After the uploads, in queue order: no other machine takes the run before its data is there.
            self.enqueue(Job::Release { id: id.to_string(), version: lease.version });
        }
        if self.shared.opts.finish_waits {
            self.barrier();
        }
    }
}

/// One attempt at run `id`'s lease: created when missing, taken over (conditional update) when expired or this
/// owner's; `None` when another live owner holds it.
async fn take_lease(shared: &Shared, id: &str) -> object_store::Result<Option<UpdateVersion>> {
    let key = Key::from(format!("{LEASES}/{id}"));
    let body = shared.lease_body(now_ms() + shared.opts.lease.as_millis() as u64);
    let put = |mode: PutMode| {
        let (key, body) = (key.clone(), body.clone());
        async move { shared.store.put_opts(&key, PutPayload::from(body), PutOptions::from(mode)).await }
    };
    // Most runs have no lease object yet: one conditional create settles it.
    match put(PutMode::Create).await {
        Ok(r) => return Ok(Some(UpdateVersion::from(r))),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
        Err(e) => return Err(e),
    }
    for _ in 0..3 {
        match shared.retry("get", || shared.store.get(&key)).await {
            Err(object_store::Error::NotFound { .. }) => match put(PutMode::Create).await {
                Ok(r) => return Ok(Some(UpdateVersion::from(r))),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
            Ok(got) => {
                let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                let bytes = got.bytes().await?;
                let (owner, expires) = parse_lease(&bytes);
                if owner != shared.owner && expires > now_ms() {
                    return Ok(None);
                }
                match put(PutMode::Update(version)).await {
                    Ok(r) => return Ok(Some(UpdateVersion::from(r))),
                    Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(None)
}

/// The run a version header's base pointer names, if any (`v<K>.head` body: run id, version, nonce,
/// created, then the optional base whose first field is its run id; docs/FORMAT.md).
fn base_run_of(head: &[u8]) -> Option<String> {
    let body = head.get(16..)?;
    let read_u64 = |at: usize| -> Option<u64> { Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?)) };
    let id_len = usize::try_from(read_u64(0)?).ok()?;
    let mut at = 8usize.checked_add(id_len)?;
    at += 4 + 8 + 8;
    if *body.get(at)? != 1 {
        return None;
    }
    at += 1;
    let base_len = usize::try_from(read_u64(at)?).ok()?;
    let start = at + 8;
    let bytes = body.get(start..start.checked_add(base_len)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// The body of a lease object (docs/FORMAT.md, "Lease object").
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseBody {
    owner: String,
    expires_ms: u64,
}

/// `(owner, expires_ms)` of a lease object; unreadable leases count as expired (no owner, 0).
fn parse_lease(bytes: &[u8]) -> (String, u64) {
    serde_json::from_slice::<LeaseBody>(bytes).map(|b| (b.owner, b.expires_ms)).unwrap_or_default()
}

async fn renew_lease(shared: Arc<Shared>, id: String, generation: u64) {
    let key = Key::from(format!("{LEASES}/{id}"));
    let period = shared.opts.lease / 3;
    loop {
        tokio::time::sleep(period).await;
        let version = match lock(&shared.leases).get(&id) {
            Some(l) if l.generation == generation => l.version.clone(),
            _ => return,
        };
        let body = shared.lease_body(now_ms() + shared.opts.lease.as_millis() as u64);
        let res = shared
            .retry("renew", || {
                shared.store.put_opts(&key, PutPayload::from(body.clone()), PutMode::Update(version.clone()).into())
            })
            .await;
        let mut leases = lock(&shared.leases);
        match (res, leases.get_mut(&id)) {
            (Ok(r), Some(l)) if l.generation == generation => l.version = UpdateVersion::from(r),
            (Ok(_), _) => return,
            (Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }), Some(l))
                if l.generation == generation =>
            {
                leases.remove(&id);
                shared.counters.leases_lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Unreachable store: keep trying; the lease may expire meanwhile (the README's limits).
            (Err(_), _) => {}
        }
    }
}

/// Lets run `id`'s lease go (writes `expires_ms` 0, conditional on `version`). A renewal that was in flight
/// when the writer let go may have moved the lease's ETag: while the object still names this owner and this
/// process has not taken the run's lease again, the release is retried at the lease's current ETag.
async fn let_lease_go(shared: &Shared, id: &str, mut version: UpdateVersion) {
    let key = Key::from(format!("{LEASES}/{id}"));
    let body = shared.lease_body(0);
    for _ in 0..4 {
        let mode = PutMode::Update(version.clone());
        let put = shared
            .retry("release", || shared.store.put_opts(&key, PutPayload::from(body.clone()), mode.clone().into()))
            .await;
        if !matches!(put, Err(object_store::Error::Precondition { .. })) || lock(&shared.leases).contains_key(id) {
            return;
        }
        let Ok(got) = shared.retry("get", || shared.store.get(&key)).await else { return };
        let current = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
        let Ok(bytes) = got.bytes().await else { return };
        if parse_lease(&bytes).0 != shared.owner {
            return;
        }
        version = current;
    }
}

async fn upload_worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Run { id, skip_seg, heads, release } => upload_run(&shared, &id, skip_seg, heads, release).await,
            Job::Release { id, version } => let_lease_go(&shared, &id, version).await,
            Job::Barrier(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

/// Uploads every file of run `id` that the object store lacks or has shorter, data first, then (when `heads`
/// and every data upload succeeded) missing headers, then the tombstone.
async fn upload_run(shared: &Shared, id: &str, skip_seg: Option<(u32, u32)>, heads: bool, release: bool) {
    let dir = shared.cache.join(RUNS).join(id);
    let Ok(entries) = fs::read_dir(&dir) else { return };
    let mut local: Vec<(String, RunFile, u64)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kind = parse_run_file(&name)?;
            Some((name, kind, e.metadata().ok()?.len()))
        })
        .collect();
    if local.is_empty() {
        return;
    }
    let prefix = Key::from(format!("{RUNS}/{id}"));
    let remote: HashMap<String, u64> = match shared
        .retry("list", || shared.store.list(Some(&prefix)).try_collect::<Vec<_>>())
        .await
    {
        Ok(metas) => metas.into_iter().filter_map(|m| m.location.filename().map(|n| (n.to_string(), m.size))).collect(),
        Err(e) => {
            shared.fail(format!("listing {}/{prefix}: {e}", shared.root));
            return;
        }
    };
    // The key table first, then data in segment order, each data file cut at the length listed above, headers
    // after all. The table is read after those lengths were taken, and the writer makes a key durable before a
    // frame names it, so the table uploaded names every key of the frames uploaded after it: another machine
    // never sees a segment that names keys the table in the object store lacks.
    let rank = |k: &RunFile| match k {
        RunFile::Keys(v) => (0, *v, 0, 0),
        RunFile::Seg(v, s) => (1, *v, *s, 0),
        RunFile::Idx(v, s) => (1, *v, *s, 1),
        RunFile::Zmap(v, s) => (1, *v, *s, 2),
        RunFile::Head(v) => (3, *v, 0, 0),
        RunFile::Deleted => (4, 0, 0, 0),
    };
    local.sort_by_key(|(_, k, _)| rank(k));
    let mut ok = true;
    let mut done = Vec::new();
    for (name, kind, len) in local {
        // A job queued when segment S was started uploads what came before it: the writer may be further on
        // by now, and a later segment must never reach the object store before an earlier one.
        let skip = match (kind, skip_seg) {
            (RunFile::Seg(v, s) | RunFile::Idx(v, s) | RunFile::Zmap(v, s), Some((sv, ss))) => (v, s) >= (sv, ss),
            (RunFile::Keys(v), Some((sv, _))) => v > sv,
            _ => false,
        };
        let is_head = matches!(kind, RunFile::Head(_) | RunFile::Deleted);
        if skip || (is_head && (!heads || !ok)) {
            continue;
        }
        let have = remote.get(&name).copied();
        let needed = match kind {
            RunFile::Head(_) => have.is_none(),
            RunFile::Deleted => have != Some(len),
            _ => have.is_none_or(|h| h < len),
        };
        let path = dir.join(&name);
        if needed {
            let key = Key::from(format!("{RUNS}/{id}/{name}"));
            let mode = if matches!(kind, RunFile::Head(_)) { PutMode::Create } else { PutMode::Overwrite };
            let cut = matches!(kind, RunFile::Seg(..) | RunFile::Idx(..) | RunFile::Zmap(..)).then_some(len);
            match upload_file(shared, &path, &key, mode, cut).await {
                Ok(()) => {}
                Err(e) => {
                    // Stop here: later segments must not reach the object store before this one.
                    ok = false;
                    shared.fail(format!("uploading {}/{key}: {e}", shared.root));
                    break;
                }
            }
        }
        // Uploaded and never written again: an evictable cache entry from now on.
        if shared.is_final(&path, &Place::RunFile(id.to_string(), name.clone())) {
            lock(&shared.written).remove(&path);
            shared.touch(&path, len);
        } else {
            done.push((path, len));
        }
    }
    // A writer that let go leaves nothing to protect: every uploaded file is a cache entry (and is checked
    // against the object store when opened again, since another machine may append to it).
    if release && ok && !lock(&shared.leases).contains_key(id) {
        for (path, len) in done {
            lock(&shared.written).remove(&path);
            shared.touch(&path, len);
        }
    }
}

/// Uploads the file at `path` (its first `cut` bytes when given) as object `key`.
async fn upload_file(
    shared: &Shared,
    path: &Path,
    key: &Key,
    mode: PutMode,
    cut: Option<u64>,
) -> std::result::Result<(), String> {
    let mut bytes = fs::read(path).map_err(|e| e.to_string())?;
    if let Some(n) = cut.and_then(|n| usize::try_from(n).ok()) {
        bytes.truncate(n);
    }
    let bytes = Bytes::from(bytes);
    let len = bytes.len() as u64;
    let res = shared
        .retry("put", || shared.store.put_opts(key, PutPayload::from(bytes.clone()), PutOptions::from(mode.clone())))
        .await;
    match res {
        Ok(put) => shared.note_etag(path, put.e_tag.as_deref()),
        // A header is written once: someone (an earlier attempt) already put it.
        Err(object_store::Error::AlreadyExists { .. }) if mode == PutMode::Create => return Ok(()),
        Err(e) => return Err(e.to_string()),
    }
    shared.counters.uploads.fetch_add(1, Ordering::Relaxed);
    shared.counters.uploaded_bytes.fetch_add(len, Ordering::Relaxed);
    shared.note_object(key, Some(len));
    Ok(())
}

impl Shared {
    fn place(&self, path: &Path) -> Place {
        let Ok(rel) = path.strip_prefix(&self.cache) else {
            // Paths the engine builds start with the canonical cache root; a relative one cannot be placed.
            return Place::Local;
        };
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        let valid = |id: &str| forklog::validate_run_id(id).is_ok();
        match parts.as_slice() {
            [] => Place::Root,
            [STORE_FILE] => Place::StoreFile,
            [RUNS] => Place::Runs,
            [RUNS, id] if valid(id) => Place::RunDir(id.to_string()),
            [RUNS, id, name] if valid(id) && parse_run_file(name).is_some() => {
                Place::RunFile(id.to_string(), name.to_string())
            }
            _ => Place::Local,
        }
    }

    /// The size of the run file at `place` by its run directory's fresh listing: `Some(None)` when the listing
    /// lacks it, `None` when there is no fresh listing (then a `HEAD` tells). A key table of a run another
    /// machine writes is taken from the listing only the first time it is opened after the listing: the engine
    /// opens it again exactly when the segments it read name keys the table lacked (the writer uploads the table
    /// after them, so a listing can fall between the two), and that open asks the object store.
    fn listed_size(&self, place: &Place) -> Option<Option<u64>> {
        let Place::RunFile(id, name) = place else { return None };
        let listed = lock(&self.listed);
        let (at, files, own) = listed.get(id)?;
        if !own && matches!(parse_run_file(name), Some(RunFile::Keys(_))) && !lock(&self.keys_read).insert(id.clone()) {
            return None;
        }
        (at.elapsed() < LISTING_TTL).then(|| files.get(name).copied())
    }

    /// Records in its run's listing (if there is one) that object `key` now has `size` bytes, or is gone.
    fn note_object(&self, key: &Key, size: Option<u64>) {
        let mut parts = key.parts();
        let (Some(runs), Some(id), Some(name)) = (parts.next(), parts.next(), parts.next()) else { return };
        if runs.as_ref() != RUNS {
            return;
        }
        if let Some((_, files, _)) = lock(&self.listed).get_mut(id.as_ref()) {
            match size {
                Some(n) => files.insert(name.as_ref().to_string(), n),
                None => files.remove(name.as_ref()),
            };
        }
    }

    /// True when run `id` has a file in the cache that this process neither downloaded nor saw uploaded (and
    /// sealed): a file the object store may lack.
    fn has_pending(&self, id: &str) -> bool {
        let dir = self.cache.join(RUNS).join(id);
        let Ok(entries) = fs::read_dir(&dir) else { return false };
        let lru = lock(&self.lru);
        entries.filter_map(|e| e.ok()).any(|e| {
            e.file_name().to_str().is_some_and(|n| parse_run_file(n).is_some()) && !lru.files.contains_key(&e.path())
        })
    }

    /// Records the ETag of the object cache file `path` holds, when it is a header.
    fn note_etag(&self, path: &Path, etag: Option<&str>) {
        let is_head = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| matches!(parse_run_file(n), Some(RunFile::Head(_))));
        if let (true, Some(etag)) = (is_head, etag) {
            lock(&self.head_etags).insert(path.to_path_buf(), etag.to_string());
        }
    }

    /// Forgets run `id`'s listing: its next writer (or a deletion) must see the object store itself.
    fn forget_listing(&self, id: &str) {
        lock(&self.listed).remove(id);
    }

    /// The live partial file of `path` if it is at least `size` bytes long (a shorter one is dropped: the
    /// object grew since).
    fn partial(&self, path: &Path, size: u64) -> Option<Arc<Partial>> {
        let p = lock(&self.partials).get(path).cloned()?;
        if p.size >= size {
            return Some(p);
        }
        self.drop_partials(|q| q == path);
        None
    }

    /// Forgets the partial files of the cache paths `which` selects (their open handles keep reading them).
    fn drop_partials(&self, which: impl Fn(&Path) -> bool) {
        let gone: Vec<Arc<Partial>> = {
            let mut partials = lock(&self.partials);
            let keys: Vec<PathBuf> = partials.keys().filter(|p| which(p)).cloned().collect();
            keys.iter().filter_map(|k| partials.remove(k)).collect()
        };
        for p in gone {
            lock(&self.lru).forget(&p.tmp);
            let _ = fs::remove_file(&p.tmp);
        }
    }

    fn lease_body(&self, expires_ms: u64) -> Vec<u8> {
        let body = LeaseBody { owner: self.owner.clone(), expires_ms };
        let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    fn fail(&self, message: String) {
        self.counters.upload_failures.fetch_add(1, Ordering::Relaxed);
        let mut f = lock(&self.failures);
        f.0 += 1;
        f.1 = message;
    }

    fn mark_written(&self, path: &Path) {
        lock(&self.written).insert(path.to_path_buf());
        lock(&self.lru).forget(path);
    }

    /// True when the cached file can never change: a header, or a segment (with its index and zone map) of
    /// a version whose next segment exists.
    fn is_final(&self, path: &Path, place: &Place) -> bool {
        let Place::RunFile(_, name) = place else { return false };
        match parse_run_file(name) {
            Some(RunFile::Head(_)) => true,
            Some(RunFile::Seg(v, s) | RunFile::Idx(v, s) | RunFile::Zmap(v, s)) => {
                path.with_file_name(format!("v{v}-{}.seg", s + 1)).exists()
            }
            _ => false,
        }
    }

    /// Records a use of `path` if it is an evictable cache entry.
    fn reuse(&self, path: &Path) {
        let mut lru = lock(&self.lru);
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(entry) = lru.files.get_mut(path) {
            entry.1 = tick;
        }
    }

    /// Records a use of an evictable cached file, then evicts the least recently used ones over the limit.
    fn touch(&self, path: &Path, size: u64) {
        if lock(&self.written).contains(path) {
            return;
        }
        let mut lru = lock(&self.lru);
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(old) = lru.files.insert(path.to_path_buf(), (size, tick)) {
            lru.total -= old.0;
        }
        lru.total += size;
        while lru.total > self.opts.cache_limit {
            let Some(victim) = lru
                .files
                .iter()
                .filter(|(p, _)| p.as_path() != path)
                .min_by_key(|(_, (_, t))| *t)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            lru.forget(&victim);
            // Open handles and mappings keep the bytes (POSIX); a later open downloads the file again.
            let _ = fs::remove_file(&victim);
            if victim.starts_with(self.cache.join(PARTIAL_DIR)) {
                lock(&self.partials).retain(|_, p| p.tmp != victim);
            }
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `op` until it succeeds, fails with an answer about the object, or runs out of retries
    /// (exponential backoff from 50 ms to 2 s).
    async fn retry<T, F, Fut>(&self, _what: &str, mut op: F) -> object_store::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && attempt < self.opts.retries => {
                    attempt += 1;
                    self.counters.upload_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A directory handle; for a run directory its exclusive lock also takes the run's lease.
#[derive(Debug)]
struct DirHandle {
    inner: Box<dyn VfsFile>,
    path: PathBuf,
    run: Option<String>,
    vfs: Arc<RemoteVfsRef>,
    leased: Mutex<bool>,
}

/// What a [`DirHandle`] needs of its file system (a weak-free back reference).
pub(crate) struct RemoteVfsRef(std::sync::Weak<RemoteVfs>);

impl std::fmt::Debug for RemoteVfsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteVfsRef")
    }
}

impl VfsFile for DirHandle {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(data, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn try_lock(&self) -> io::Result<bool> {
        if !self.inner.try_lock()? {
            return Ok(false);
        }
        let (Some(id), Some(vfs)) = (&self.run, self.vfs.0.upgrade()) else { return Ok(true) };
        let mut leased = lock(&self.leased);
        if *leased {
            return Ok(true);
        }
        match vfs.acquire_lease(id) {
            Ok(true) => {
                *leased = true;
                Ok(true)
            }
            Ok(false) => {
                let _ = self.inner.unlock();
                Ok(false)
            }
            Err(e) => {
                let _ = self.inner.unlock();
                Err(e)
            }
        }
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.inner.try_lock_shared()
    }
    fn unlock(&self) -> io::Result<()> {
        self.release();
        self.inner.unlock()
    }
}

impl DirHandle {
    fn release(&self) {
        let Some(vfs) = self.vfs.0.upgrade() else { return };
        let mut leased = lock(&self.leased);
        if *leased {
            *leased = false;
            if let Some(id) = &self.run {
                vfs.release_lease(id);
            }
            return;
        }
        // The lock of a `~new` directory published as a run: it was that run's writer lock.
        let adopted = lock(&vfs.shared.adopted).remove(&self.path);
        if let Some(id) = adopted {
            vfs.release_lease(&id);
        }
    }
}

impl Drop for DirHandle {
    fn drop(&mut self) {
        self.release();
    }
}

/// The [`Vfs`] the engine sees: an `Arc<RemoteVfs>` (directory handles keep a weak reference to it).
impl Vfs for RemoteVfsHandle {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let v = &self.0;
        let place = v.shared.place(path);
        if let Place::RunFile(id, name) = &place {
            let key = format!("{RUNS}/{id}/{name}");
            match mode {
                OpenMode::Read => {
                    v.opened_for_replay(path);
                    // A segment is read in chunks (`pread`): fetch only the blocks read.
                    let sparse = matches!(parse_run_file(name), Some(RunFile::Seg(..)));
                    for attempt in 0.. {
                        let evictions = v.shared.counters.evictions.load(Ordering::Relaxed);
                        if let Some(partial) = v.ensure_local(path, &key, &place, sparse)? {
                            return Ok(Box::new(PartialFile(partial, v.clone())));
                        }
                        match StdFs.open(path, mode) {
                            Err(e) if v.evicted_meanwhile(&e, evictions, attempt) => {}
                            r => return r,
                        }
                    }
                }
                OpenMode::ReadWrite => {
                    v.ensure_local(path, &key, &place, false)?;
                }
                // The engine truncates what it opens this way (a new segment's index and zone map).
                OpenMode::CreateOrOpen | OpenMode::CreateNew => {}
            }
            if mode != OpenMode::Read {
                if let Some(dir) = path.parent() {
                    if !dir.exists() {
                        fs::create_dir_all(dir)?;
                    }
                }
            }
            let f = StdFs.open(path, mode)?;
            if mode != OpenMode::Read {
                v.shared.mark_written(path);
                lock(&v.shared.touched).insert(id.clone());
            }
            if mode == OpenMode::CreateNew {
                if let Some(RunFile::Seg(ver, seg)) = parse_run_file(name) {
                    if seg > 0 {
                        // The previous segment is sealed: upload it (and the rest but the new segment).
                        v.enqueue(Job::Run {
                            id: id.clone(),
                            skip_seg: Some((ver, seg)),
                            heads: false,
                            release: false,
                        });
                    }
                }
            }
            return Ok(f);
        }
        if place == Place::StoreFile && mode == OpenMode::Read {
            v.ensure_local(path, STORE_FILE, &place, false)?;
        }
        StdFs.open(path, mode)
    }

    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let v = &self.0;
        let place = v.shared.place(path);
        if matches!(place, Place::RunDir(_) | Place::Runs | Place::Root) && !path.exists() && self.exists(path) {
            fs::create_dir_all(path)?;
        }
        let inner = StdFs.open_dir(path)?;
        let run = match place {
            Place::RunDir(id) => Some(id),
            _ => None,
        };
        Ok(Box::new(DirHandle {
            inner,
            path: path.to_path_buf(),
            run,
            vfs: Arc::new(RemoteVfsRef(Arc::downgrade(&self.0))),
            leased: Mutex::new(false),
        }))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            if !parent.exists() && self.0.shared.place(parent) == Place::Runs {
                fs::create_dir_all(parent)?;
            }
        }
        StdFs.create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let v = &self.0;
        let place = v.shared.place(path);
        let mut local = StdFs.read_dir(path);
        let remote = match &place {
            Place::Runs => v.remote_names(RUNS)?.1,
            Place::RunDir(id) => {
                let (objects, heads) = v.run_objects(id, local.is_ok())?;
                if local.is_err() {
                    v.prefetch(id, &objects);
                } else if v.drop_stale_copy(id, &heads)? {
                    local = StdFs.read_dir(path);
                }
                let names = objects.iter().map(|(n, _)| n.clone()).collect();
                lock(&v.shared.listed).insert(id.clone(), (Instant::now(), objects.into_iter().collect(), false));
                lock(&v.shared.keys_read).remove(id);
                names
            }
            // The cache root lists only what is local (less the partial downloads): a store another machine
            // created meanwhile is found through `exists` or taken over when this machine publishes its own
            // store file.
            Place::Root => {
                return local.map(|names| names.into_iter().filter(|n| n != PARTIAL_DIR).collect());
            }
            _ => return local,
        };
        let mut names = match local {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !remote.is_empty() => Vec::new(),
            Err(e) => return Err(e),
        };
        let seen: HashSet<String> = names.iter().cloned().collect();
        names.extend(remote.into_iter().filter(|n| !seen.contains(n)));
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        if path.exists() {
            return true;
        }
        let v = &self.0;
        let place = v.shared.place(path);
        match &place {
            Place::StoreFile => v.rt.block_on(v.shared.store.head(&Key::from(STORE_FILE))).is_ok(),
            Place::RunFile(id, name) => match v.shared.listed_size(&place) {
                Some(size) => size.is_some(),
                None => v.rt.block_on(v.shared.store.head(&Key::from(format!("{RUNS}/{id}/{name}")))).is_ok(),
            },
            Place::RunDir(id) => v.remote_names(&format!("{RUNS}/{id}")).is_ok_and(|(o, _, _)| !o.is_empty()),
            Place::Runs | Place::Root | Place::Local => false,
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let v = &self.0;
        let (pf, pt) = (v.shared.place(from), v.shared.place(to));
        match (&pf, &pt) {
            (Place::Local, Place::RunDir(id)) => v.publish_run(id, from, to),
            (Place::RunDir(id), Place::Local) => {
                // gc or delete moves a run aside: its objects go first (headers last).
                v.delete_run_objects(id)?;
                if !from.exists() {
                    fs::create_dir_all(from)?;
                }
                StdFs.rename(from, to)
            }
            (Place::Local, Place::RunFile(id, name)) => {
                let key = Key::from(format!("{RUNS}/{id}/{name}"));
                match parse_run_file(name) {
                    Some(RunFile::Head(_)) => {
                        // A new version (rewind): what it points at first, then the header, once.
                        v.flush_run_now(id, false)?;
                        let bytes = fs::read(from)?;
                        let put = v.rt.block_on(v.shared.retry("create", || {
                            v.shared.store.put_opts(&key, PutPayload::from(bytes.clone()), PutMode::Create.into())
                        }));
                        match put {
                            Ok(put) => v.shared.note_etag(to, put.e_tag.as_deref()),
                            Err(object_store::Error::AlreadyExists { .. }) => {
                                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{key} exists")))
                            }
                            Err(e) => return Err(to_io(e)),
                        }
                        StdFs.rename(from, to)?;
                    }
                    _ => {
                        StdFs.rename(from, to)?;
                        let bytes = fs::read(to)?;
                        v.rt.block_on(
                            v.shared.retry("put", || v.shared.store.put(&key, PutPayload::from(bytes.clone()))),
                        )
                        .map_err(to_io)?;
                    }
                }
                v.shared.counters.uploads.fetch_add(1, Ordering::Relaxed);
                v.shared.mark_written(to);
                lock(&v.shared.touched).insert(id.clone());
                Ok(())
            }
            (Place::Local, Place::StoreFile) => {
                StdFs.rename(from, to)?;
                let bytes = fs::read(to)?;
                let key = Key::from(STORE_FILE);
                let put = |mode: PutMode| {
                    v.rt.block_on(v.shared.retry("put", || {
                        v.shared.store.put_opts(&key, PutPayload::from(bytes.clone()), mode.clone().into())
                    }))
                };
                // Two machines may create the store at once: the first store file wins and the other machine
                // takes it; a newer format declaration (an upgrade) replaces an older one.
                match put(PutMode::Create) {
                    Ok(_) => Ok(()),
                    Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                        let theirs =
                            v.rt.block_on(async { v.shared.store.get(&key).await?.bytes().await }).map_err(to_io)?;
                        let version = |b: &[u8]| b.get(8..10).map_or(0, |x| u16::from_le_bytes([x[0], x[1]]));
                        if version(&bytes) > version(&theirs) {
                            put(PutMode::Overwrite).map(|_| ()).map_err(to_io)
                        } else {
                            fs::write(to, &theirs)
                        }
                    }
                    Err(e) => Err(to_io(e)),
                }
            }
            _ => StdFs.rename(from, to),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let v = &self.0;
        let local = StdFs.remove_file(path);
        lock(&v.shared.lru).forget(path);
        lock(&v.shared.written).remove(path);
        if let Place::RunFile(id, name) = v.shared.place(path) {
            v.shared.drop_partials(|p| p == path);
            v.delete_object(&Key::from(format!("{RUNS}/{id}/{name}")))?;
            return match local {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            };
        }
        local
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let v = &self.0;
        if let Place::RunDir(id) = v.shared.place(path) {
            v.delete_run_objects(&id)?;
            return match StdFs.remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            };
        }
        StdFs.remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match StdFs.sync_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.exists(path) => Ok(()),
            r => r,
        }
    }

    fn map(&self, path: &Path) -> io::Result<MappedBytes> {
        let v = &self.0;
        let place = v.shared.place(path);
        if let Place::RunFile(id, name) = &place {
            v.opened_for_replay(path);
            let key = format!("{RUNS}/{id}/{name}");
            for attempt in 0.. {
                let evictions = v.shared.counters.evictions.load(Ordering::Relaxed);
                let mapped = match v.ensure_local(path, &key, &place, true)? {
                    // A large file is fetched into a partial file and mapped there once complete: its move into
                    // place (after an fsync) goes on in the background.
                    Some(p) => {
                        p.complete(&v.shared, &v.rt)?;
                        match StdFs.map(&p.tmp) {
                            Err(e) if e.kind() == io::ErrorKind::NotFound => StdFs.map(path),
                            r => r,
                        }
                    }
                    None => StdFs.map(path),
                };
                match mapped {
                    Err(e) if v.evicted_meanwhile(&e, evictions, attempt) => {}
                    r => return r,
                }
            }
        }
        StdFs.map(path)
    }

    fn will_read(&self, paths: &[PathBuf]) {
        let v = &self.0;
        {
            // Each file names the one `READ_AHEAD_FILES` after it: while the reader is in file k, files k + 1
            // to k + READ_AHEAD_FILES are on their way (and in the cache, within its limit).
            let mut next = lock(&v.shared.read_next);
            if next.len() > 4096 {
                next.clear();
            }
            for w in paths.windows(READ_AHEAD_FILES + 1) {
                next.insert(w[0].clone(), w[READ_AHEAD_FILES].clone());
            }
        }
        for p in paths.iter().take(READ_AHEAD_FILES) {
            v.fetch_whole_in_background(p);
        }
    }
}

/// The engine's view of a [`RemoteVfs`].
#[derive(Debug, Clone)]
pub(crate) struct RemoteVfsHandle(pub(crate) Arc<RemoteVfs>);

/// A file of the object store fetched into the cache block by block as it is read ([`BLOCK`] bytes each).
///
/// The bytes live in `<cache>/.forklog-partial/<nonce>` and the map of present blocks only in memory: the file is
/// renamed to its cache path once every block is in (and synced), and a new process deletes what an earlier
/// one left there, so a crash never leaves a cache file that looks complete but holds unfetched zeros.
///
/// Reads that follow one another (replay) make the blocks after them fetched in the background, one download
/// range ahead, so the network and the engine's decoding overlap.
pub(crate) struct Partial {
    file: fs::File,
    tmp: PathBuf,
    path: PathBuf,
    key: Key,
    size: u64,
    state: Mutex<Blocks>,
    /// Signalled whenever blocks become present or a fetch of them failed.
    changed: Condvar,
    /// Set by the first [`Partial::finish`] (later calls wait for it to be done).
    finished: Mutex<bool>,
}

/// The blocks of a [`Partial`] and its reader's pattern.
struct Blocks {
    /// One per block.
    blocks: Vec<BlockState>,
    /// The block after the last one read, and how many reads in a row continued a front-to-back pass.
    next: usize,
    streak: u32,
    /// The first block of the current pass.
    pass_start: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Missing,
    Fetching,
    Present,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial").field("key", &self.key).field("size", &self.size).finish()
    }
}

/// Runs of adjacent blocks, each at most `per` long.
fn runs_of(blocks: &[usize], per: usize) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &b in blocks {
        match runs.last_mut() {
            Some((start, end)) if *end + 1 == b && b - *start < per => *end = b,
            _ => runs.push((b, b)),
        }
    }
    runs
}

impl Partial {
    fn create(shared: &Shared, path: &Path, key: &str, size: u64) -> io::Result<Arc<Partial>> {
        let dir = shared.cache.join(PARTIAL_DIR);
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{:016x}", nonce()));
        let file = fs::OpenOptions::new().read(true).write(true).create_new(true).open(&tmp)?;
        file.set_len(size)?;
        let blocks = usize::try_from(size.div_ceil(BLOCK)).map_err(io::Error::other)?;
        let p = Arc::new(Partial {
            file,
            tmp,
            path: path.to_path_buf(),
            key: Key::from(key),
            size,
            state: Mutex::new(Blocks {
                blocks: vec![BlockState::Missing; blocks],
                next: usize::MAX,
                streak: 0,
                pass_start: 0,
            }),
            changed: Condvar::new(),
            finished: Mutex::new(false),
        });
        // Counted in the cache as a whole (sparse files take no more than that).
        lock(&shared.partials).insert(p.path.clone(), p.clone());
        shared.touch(&p.tmp, size);
        Ok(p)
    }

    /// Fetches the blocks of run `(a, b)` into the file with one ranged request whose body is written as it
    /// streams in: each block is marked present (and its waiting readers woken) as soon as it is wholly
    /// written, so a replay decodes the first blocks while the last are still on the way. A body that breaks
    /// off is asked for again from its first block not written whole (with backoff, as many times as a request
    /// is retried); blocks still not written when that fails are missing again (a reader that needs one fetches
    /// it and sees the error). Returns whether every block of the file is present now.
    async fn fetch_run(&self, shared: &Shared, (a, b): (usize, usize)) -> io::Result<bool> {
        let mut settled = a;
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0;
        let res = loop {
            let mut answered = false;
            match self.stream_run(shared, (settled, b), &mut settled, &mut answered).await {
                Err(_) if answered && attempt < shared.opts.retries => {
                    attempt += 1;
                    shared.counters.upload_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                r => break r,
            }
        };
        let all = if settled <= b { self.settle((settled, b), res.is_ok()) } else { self.all_present() };
        res.map(|()| all)
    }

    /// One request of [`fetch_run`](Self::fetch_run): `settled` is the first block not yet marked present;
    /// `answered` is set once the object store answered (a failure after that broke off the body).
    async fn stream_run(
        &self,
        shared: &Shared,
        (a, b): (usize, usize),
        settled: &mut usize,
        answered: &mut bool,
    ) -> io::Result<()> {
        let r = a as u64 * BLOCK..((b as u64 + 1) * BLOCK).min(self.size);
        let key = &self.key;
        let opts = || GetOptions::new().with_range(Some(r.clone()));
        let got = shared.retry("get_range", || shared.store.get_opts(key, opts())).await.map_err(to_io)?;
        shared.note_etag(&self.path, got.meta.e_tag.as_deref());
        let mut body = got.into_stream();
        *answered = true;
        let mut at = r.start;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(to_io)?;
            if at + chunk.len() as u64 > r.end {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{key}: longer than asked for")));
            }
            std::os::unix::fs::FileExt::write_all_at(&self.file, &chunk, at)?;
            at += chunk.len() as u64;
            shared.counters.downloaded_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            // Blocks wholly written by now (the run's last block may be the file's short last block).
            let done = if at == r.end { b + 1 } else { (at / BLOCK) as usize };
            if done > *settled {
                self.settle((*settled, done - 1), true);
                *settled = done;
            }
        }
        if at != r.end {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{key}: short read")));
        }
        Ok(())
    }

    /// Whether every block is present.
    fn all_present(&self) -> bool {
        lock(&self.state).blocks.iter().all(|s| *s == BlockState::Present)
    }

    /// Marks run `(a, b)` present (or missing again after a failure) and wakes waiting readers; true when
    /// every block is present now.
    fn settle(&self, (a, b): (usize, usize), ok: bool) -> bool {
        let mut st = lock(&self.state);
        for s in st.blocks.iter_mut().take(b + 1).skip(a) {
            // A block is marked present only once it is wholly written.
            *s = if ok { BlockState::Present } else { BlockState::Missing };
        }
        self.changed.notify_all();
        st.blocks.iter().all(|s| *s == BlockState::Present)
    }

    /// Makes blocks `first..=last` present: fetches the missing ones (parallel ranged GETs, adjacent blocks in
    /// one request), waits for those another reader or the read-ahead is fetching, and starts the read-ahead
    /// when reads follow one another. Once every block is present the file moves to its cache path.
    fn fetch(self: &Arc<Self>, shared: &Arc<Shared>, rt: &Runtime, first: usize, last: usize) -> io::Result<()> {
        let per = (shared.opts.range / BLOCK).max(1) as usize;
        let mut ahead = Vec::new();
        let mut mine = Vec::new();
        {
            let mut st = lock(&self.state);
            let n = st.blocks.len();
            let last = last.min(n.saturating_sub(1));
            // A read that starts at or before the block after the last read and goes past the last read's final
            // block continues a front-to-back pass; re-reads and jumps (a fork's position lookup) do not. The
            // third read in a row of a pass starts the read-ahead (the second of a pass from the file's start:
            // a replay reads a segment's header, then its frames).
            if st.next != usize::MAX && first <= st.next && last >= st.next {
                st.streak += 1;
            } else {
                st.streak = 0;
                st.pass_start = first;
            }
            let first_read = st.next == usize::MAX;
            st.next = last + 1;
            // A read into blocks not fetched yet elsewhere (a jump) is likely followed by reads just after it (the
            // position lookup reads a frame, then a chunk from it): fetch at least `JUMP` blocks, one request
            // for what would be two.
            let jump = st.streak == 0 && !first_read && st.blocks[first] == BlockState::Missing;
            let upto = if jump { last.max(first + JUMP - 1).min(n - 1) } else { last };
            for b in first..=upto {
                if st.blocks[b] == BlockState::Missing {
                    st.blocks[b] = BlockState::Fetching;
                    mine.push(b);
                }
            }
            // The reader of a version's last segment (a fork's position lookup, `info`) reads its last frame
            // early on: fetch that block with the first.
            if first_read && self.last_segment(shared) && st.blocks[n - 1] == BlockState::Missing {
                st.blocks[n - 1] = BlockState::Fetching;
                mine.push(n - 1);
            }
            if st.streak >= 2 || (st.streak == 1 && st.pass_start == 0) {
                // The rest of the file, in requests of one download range each, a few at once: small ranged GETs
                // cost a round trip each, and a front-to-back pass reads the file to its end.
                for b in last + 1..n {
                    if st.blocks[b] == BlockState::Missing {
                        st.blocks[b] = BlockState::Fetching;
                        ahead.push(b);
                    }
                }
            }
        }
        if !ahead.is_empty() {
            let (p, shared2) = (self.clone(), shared.clone());
            rt.spawn(async move { p.get_runs(&shared2, runs_of(&ahead, per)).await });
        }

        let mut failure = None;
        if !mine.is_empty() {
            let runs = runs_of(&mine, per);
            let results: Vec<io::Result<bool>> = rt.block_on(
                futures::stream::iter(runs)
                    .map(|run| async move { self.fetch_run(shared, run).await })
                    .buffer_unordered(shared.opts.parallel)
                    .collect(),
            );
            for r in results {
                match r {
                    Ok(true) => self.finish_in_background(rt, shared),
                    Ok(false) => {}
                    Err(e) => failure = Some(e),
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Blocks others fetch: wait for them; one whose fetch failed is fetched here.
        loop {
            let st = lock(&self.state);
            let st = self
                .changed
                .wait_while(st, |st| st.blocks[first..=last.min(st.blocks.len() - 1)].contains(&BlockState::Fetching))
                .unwrap_or_else(|p| p.into_inner());
            let again = st.blocks[first..=last.min(st.blocks.len() - 1)].contains(&BlockState::Missing);
            drop(st);
            if !again {
                return Ok(());
            }
            self.fetch(shared, rt, first, last)?;
        }
    }

    /// Fetches blocks `which` (ascending) in the background (readers wait for the blocks in flight): runs of
    /// adjacent blocks at most `per` long, one request each.
    fn fetch_in_background(self: &Arc<Self>, shared: &Arc<Shared>, rt: &Runtime, which: &[usize], per: usize) {
        let missing: Vec<usize> = {
            let mut st = lock(&self.state);
            let mut missing = Vec::new();
            for &b in which {
                if let Some(s) = st.blocks.get_mut(b).filter(|s| **s == BlockState::Missing) {
                    *s = BlockState::Fetching;
                    missing.push(b);
                }
            }
            missing
        };
        let (p, shared) = (self.clone(), shared.clone());
        rt.spawn(async move { p.get_runs(&shared, runs_of(&missing, per)).await });
    }

    /// Whether this is a segment and, as far as a fresh listing tells, the last one of its version (the one a
    /// writer appends to, whose reader looks for its last frame).
    fn last_segment(&self, shared: &Shared) -> bool {
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(RunFile::Seg(v, seg)) = parse_run_file(name) else { return false };
        let next = shared.place(&self.path.with_file_name(format!("v{v}-{}.seg", seg + 1)));
        !matches!(shared.listed_size(&next), Some(Some(_)))
    }

    /// Fetches `runs` (claimed as in flight) in the background, a few at once; a failed one is missing again
    /// (a reader that needs it fetches it and sees the error).
    async fn get_runs(self: Arc<Self>, shared: &Arc<Shared>, runs: Vec<(usize, usize)>) {
        let p = &self;
        futures::stream::iter(runs)
            .map(|run| async move {
                if let Ok(true) = p.fetch_run(shared, run).await {
                    let (p, shared) = ((*p).clone(), shared.clone());
                    tokio::task::spawn_blocking(move || p.finish(&shared));
                }
            })
            .buffer_unordered(shared.opts.parallel)
            .collect::<Vec<()>>()
            .await;
    }

    /// [`finish`](Self::finish) on a thread of its own: readers of the complete file read (and map) the
    /// partial file meanwhile, and do not wait for its `fsync`.
    fn finish_in_background(self: &Arc<Self>, rt: &Runtime, shared: &Arc<Shared>) {
        let (p, shared) = (self.clone(), shared.clone());
        rt.spawn_blocking(move || p.finish(&shared));
    }

    /// Every block is present: sync the file and move it to its cache path (unless the cache got a copy
    /// meanwhile, or the partial file was evicted).
    fn finish(&self, shared: &Shared) -> io::Result<()> {
        let mut finished = lock(&self.finished);
        if *finished {
            return Ok(());
        }
        *finished = true;
        // The partial file stays findable until the file is in place: a reader that looks in between finds one
        // or the other (and waits on `finished`), never neither (which would download the file again).
        let moved = self.move_into_place();
        {
            let mut partials = lock(&shared.partials);
            if partials.get(&self.path).is_some_and(|p| std::ptr::eq(Arc::as_ptr(p), self)) {
                partials.remove(&self.path);
            }
        }
        lock(&shared.lru).forget(&self.tmp);
        if let Ok(true) = moved {
            shared.counters.downloads.fetch_add(1, Ordering::Relaxed);
            shared.touch(&self.path, self.size);
        }
        moved.map(|_| ())
    }

    /// Syncs the complete file and renames it to its cache path; false when it was not (the cache got a copy
    /// meanwhile, or the partial file was evicted: the bytes stay readable through open handles).
    fn move_into_place(&self) -> io::Result<bool> {
        if !self.tmp.exists() || fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.size) {
            let _ = fs::remove_file(&self.tmp);
            return Ok(false);
        }
        self.file.sync_data()?;
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        match fs::rename(&self.tmp, &self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            r => r.map(|()| true),
        }
    }

    /// Fetches every missing block.
    fn complete(self: &Arc<Self>, shared: &Arc<Shared>, rt: &Runtime) -> io::Result<()> {
        let blocks = lock(&self.state).blocks.len();
        if blocks == 0 {
            return self.finish(shared);
        }
        self.fetch(shared, rt, 0, blocks - 1)
    }
}

/// A read handle of a [`Partial`] (with the file system that fetches its blocks).
#[derive(Debug)]
struct PartialFile(Arc<Partial>, Arc<RemoteVfs>);

impl VfsFile for PartialFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let p = &self.0;
        let end = offset.checked_add(buf.len() as u64).ok_or_else(|| io::Error::other("read past u64"))?;
        if end > p.size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{}: read past the end", p.key)));
        }
        if buf.is_empty() {
            return Ok(());
        }
        p.fetch(&self.1.shared, &self.1.rt, (offset / BLOCK) as usize, ((end - 1) / BLOCK) as usize)?;
        std::os::unix::fs::FileExt::read_exact_at(&p.file, buf, offset)
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "a fetched object is read-only"))
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.size)
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "a fetched object is read-only"))
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn try_lock(&self) -> io::Result<bool> {
        Ok(true)
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        Ok(true)
    }
    fn unlock(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lease bodies read back; anything unreadable counts as expired (no owner, time 0).
    #[test]
    fn lease_bodies_round_trip_and_garbage_is_expired() {
        let body = serde_json::to_vec(&LeaseBody { owner: "00000000000000ab".into(), expires_ms: 1_700_000_000_123 });
        let mut body = body.unwrap_or_default();
        assert_eq!(body, br#"{"owner":"00000000000000ab","expires_ms":1700000000123}"#.to_vec());
        body.push(b'\n');
        assert_eq!(parse_lease(&body), ("00000000000000ab".to_string(), 1_700_000_000_123));
        for bad in [&b""[..], b"{", b"{\"owner\":\"x\"}", b"{\"owner\":1,\"expires_ms\":2}", b"\xff\xfe"] {
            assert_eq!(parse_lease(bad), (String::new(), 0), "{bad:?}");
        }
    }
}
