//! [`Store`]: the handle an embedder holds. Creating, resuming, forking, rewinding and deleting runs, and
//! every read (history, events, summary, config, info, lineage).
//!
//! Opening a store reads one 32-byte file: runs are looked up on demand, so the cost of `open` does not
//! depend on how many runs there are or how long their histories are.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use crate::catalog::{read_all, write_atomic, Catalog, Known, VersionView};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::{self, micros_to_secs, now_micros, SEG_HEADER_LEN};
use crate::header::{BasePointer, ForkParent, VersionHeader};
use crate::ids::{validate_run_id, ForkPoint, RunRef};
use crate::info::{LineageEntry, RunInfo, RunState};
use crate::meta::RunMeta;
use crate::options::Options;
use crate::registry::Registry;
use crate::replay::{plan, EventStream, Events, History, HistoryOptions};
use crate::report::{GcReport, RepairReport, VerifyReport};
use crate::scan::{own_position, prefix_stats, Ptr};
use crate::stats::Stats;
use crate::value::Metrics;
use crate::vfs::{OpenMode, VfsFile};
use crate::writer::RunWriter;

/// Parent bytes a fork pins that must be made durable before the fork is.
#[derive(Debug)]
struct PinSync {
    /// The parent's active segment.
    path: PathBuf,
    /// Its key in the catalog's [`Known`] cache.
    key: crate::catalog::SegKey,
    /// The pointer: bytes up to here must be durable.
    offset: u64,
}

/// Shared state behind a [`Store`].
#[derive(Debug)]
pub(crate) struct StoreInner {
    pub(crate) root: PathBuf,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) opts: Options,
    /// This handle's open writers and their syncer.
    pub(crate) registry: Arc<Registry>,
    /// Threads that run a creation's fsyncs alongside the caller's.
    aside: Aside,
}

/// A job's result, once [`Aside::run`] ran it.
struct Pending(mpsc::Receiver<std::io::Result<()>>);

impl Pending {
    /// Waits for the job.
    fn wait(self) -> std::io::Result<()> {
        self.0.recv().unwrap_or_else(|_| Err(std::io::Error::other("helper thread panicked")))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Two long-lived helper threads (started on first use, gone with the store) that run independent fsyncs at the
/// same time as the caller's: cheaper than spawning a thread per creation. A job runs on the caller's thread
/// if no helper can take it.
#[derive(Debug, Default)]
struct Aside {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Aside {
    fn start() -> Option<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = false;
        for _ in 0..2 {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name("forklog-aside".into()).spawn(move || loop {
                let job = lock(&rx).recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            started |= spawned.is_ok();
        }
        started.then_some(tx)
    }

    /// Runs `f` on a helper thread (or here, if none is available).
    fn run(&self, f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Pending {
        let (done, result) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        let mut jobs = lock(&self.jobs);
        if jobs.is_none() {
            *jobs = Aside::start();
        }
        let job = match jobs.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => None,
                Err(mpsc::SendError(job)) => {
                    *jobs = None;
                    Some(job)
                }
            },
            None => Some(job),
        };
        drop(jobs);
        if let Some(job) = job {
            job();
        }
        Pending(result)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh random-enough 64-bit number for version nonces.
pub(crate) fn new_nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    format::mix64(t ^ format::mix64(u64::from(std::process::id()) << 32 ^ c))
}

impl StoreInner {
    /// True when some writer (of this process or another) has `view`, the current version of its run, open.
    /// This process's writers are known without a lock; for others the header's lock is probed for an
    /// instant, which a writer's open waits out instead of failing.
    fn is_running(&self, view: &VersionView) -> bool {
        if self.registry.live_stats(&view.id).is_some_and(|(v, n, _)| v == view.version && n == view.header.nonce) {
            return true;
        }
        let path = view.dir.join(format::head_name(view.version));
        match self.catalog.vfs.open(&path, OpenMode::Read) {
            Ok(f) => match f.try_lock_shared() {
                Ok(true) => {
                    let _ = f.unlock();
                    false
                }
                Ok(false) => true,
                Err(_) => false,
            },
            Err(_) => false,
        }
    }

    /// Syncs this process's writer of `key`'s run if it is writing that very segment (so its pending index
    /// entries are written too, keeping later lookups in the segment fast), with the fsync outside the
    /// writer's lock. False when there is no such writer.
    fn sync_writer_of(&self, key: &crate::catalog::SegKey) -> Result<bool> {
        match self.registry.get(&key.0) {
            Some(w) => w.sync_if_writing(key),
            None => Ok(false),
        }
    }

    /// Writes out the buffer of this process's writer of `id`, if any (a fork needs the bytes it points at
    /// written). True if it wrote.
    fn flush_writer(&self, id: &str) -> Result<bool> {
        match self.registry.get(id) {
            Some(w) => w.flush(),
            None => Ok(false),
        }
    }
}

/// Makes the last piece (the version `view` itself) stop where this process's writer's data ended when `tail`
/// was copied, unless that segment did not exist yet when `view` was listed (then nothing of the view comes
/// after it); the copy is read after it.
fn attach_tail(pieces: &mut [crate::replay::Piece], view: &VersionView, tail: Option<&crate::replay::Tail>) {
    if let (Some(t), Some(own)) = (tail, pieces.last_mut()) {
        own.cut = (view.segs > t.seq).then_some(Ptr { seg: t.seq, offset: t.offset });
    }
}

/// A forklog store: a directory of runs. Cheap to clone and share across threads.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

impl Store {
    /// Opens the store in directory `path` with default [`Options`], creating it when the directory is missing
    /// or empty. A directory that holds other files and no store file is refused with [`Error::NotAStore`]:
    /// forklog never creates a store among files that are not its own.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, Options::default())
    }

    /// Opens an existing store read-only: nothing is created or changed, not even the store file's format
    /// declaration (docs/FORMAT.md, "Format versions"). [`Error::NoStore`] when the directory is missing or
    /// empty, [`Error::NotAStore`] when it holds other files; every write fails with [`Error::ReadOnlyStore`].
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, Options::default().read_only(true))
    }

    /// True when `names` (the entries of a store directory without a store file) are only what an interrupted
    /// creation of a store leaves: the store file's temp file and an empty `runs/`.
    fn only_creation_leftovers(vfs: &dyn crate::vfs::Vfs, root: &Path, names: &[String]) -> bool {
        let tmp = format!("{}.tmp", format::STORE_FILE);
        names
            .iter()
            .all(|n| *n == tmp || (n == format::RUNS_DIR && vfs.read_dir(&root.join(n)).is_ok_and(|e| e.is_empty())))
    }

    /// Opens the store in directory `path` (creating it when the directory is missing or empty, unless
    /// `opts` says read-only or no creation; see [`Store::open`]).
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
        // The builder's clamps hold however the options were built.
        let opts = opts.clamped();
        let root = path.as_ref().to_path_buf();
        let vfs = opts.vfs.clone();
        let runs_dir = root.join(format::RUNS_DIR);
        let store_file = root.join(format::STORE_FILE);
        if vfs.exists(&store_file) {
            let bytes = read_all(&*vfs, &store_file)?;
            let header = format::check_fixed_header(&store_file, &bytes, format::STORE_FILE_LEN, &format::STORE_MAGIC)?;
            if opts.read_only {
                // Nothing to upgrade or create: a store without `runs/` just has no runs.
            } else if format::stored_version(header).is_some_and(|v| v < format::FORMAT_VERSION) {
                // A writable open of an older store: declare this build's format first (FORMAT.md, "Format
                // versions"), so a build that reads only older versions refuses the store as a whole rather
                // than a file it cannot read somewhere inside it. The body (creation time) is kept.
                let upgraded = format::build_fixed_header(
                    format::STORE_FILE_LEN,
                    &format::STORE_MAGIC,
                    &header[10..format::STORE_FILE_LEN - 4],
                );
                write_atomic(&*vfs, &root, format::STORE_FILE, &upgraded, true)?;
            }
            if !opts.read_only && !vfs.exists(&runs_dir) {
                vfs.create_dir_all(&runs_dir).map_err(|e| Error::io("creating", &runs_dir, e))?;
            }
        } else {
            let names = match vfs.read_dir(&root) {
                Ok(names) => names,
                Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io("listing", &root, e)),
            };
            if !Store::only_creation_leftovers(&*vfs, &root, &names) {
                return Err(Error::NotAStore { path: root });
            }
            if opts.read_only || !opts.create {
                return Err(Error::NoStore { path: root });
            }
            // The store file first: a crash before it leaves nothing, or leftovers the next open accepts.
            vfs.create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
            let body = now_micros().to_le_bytes();
            let mut fields = vec![0u8; 6];
            fields.extend_from_slice(&body);
            let bytes = format::build_fixed_header(format::STORE_FILE_LEN, &format::STORE_MAGIC, &fields);
            write_atomic(&*vfs, &root, format::STORE_FILE, &bytes, true)?;
            vfs.create_dir_all(&runs_dir).map_err(|e| Error::io("creating", &runs_dir, e))?;
            vfs.sync_dir(&root).map_err(|e| Error::io("syncing directory", &root, e))?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = vfs.sync_dir(parent);
            }
        }
        let inner = Arc::new(StoreInner {
            root,
            catalog: Arc::new(Catalog::new(vfs, runs_dir)),
            opts,
            registry: Arc::new(Registry::default()),
            aside: Aside::default(),
        });
        Ok(Store { inner })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    fn cat(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// True when the store was opened read-only ([`Store::open_existing`]).
    pub fn is_read_only(&self) -> bool {
        self.inner.opts.read_only
    }

    /// `ReadOnlyStore` unless the store may be changed.
    fn writable(&self) -> Result<()> {
        if self.inner.opts.read_only {
            return Err(Error::ReadOnlyStore { path: self.inner.root.clone() });
        }
        Ok(())
    }

    /// Creates a new run holding its `v0.head`, and returns the run's lock; `RunExists` if the id is taken.
    ///
    /// The run is built in a directory of its own under a name that is not a run id (`<id>~new<hex>`, locked
    /// at once so `gc` leaves it alone): `v0.head` is written and fsynced, then that directory, so it durably
    /// holds the header; it is renamed to `<id>` (atomic: either the whole run exists or none of it) and
    /// `runs/` is fsynced. Two rounds of fsyncs, like the minimal durable file create, under every policy. A
    /// crash leaves either no run (and maybe a `~new` directory, ignored by listings and removed by `gc`) or
    /// the whole run. A second creator of the same id fails to rename onto the first one's (non-empty)
    /// directory: `RunExists`.
    ///
    /// `pin`, the parent's bytes a fork pins when they still need a sync, is synced in the first round too:
    /// it only has to be durable before the run is.
    fn create_version0(&self, h: &VersionHeader, pin: Option<&PinSync>) -> Result<Box<dyn VfsFile>> {
        let id = h.run_id.as_str();
        validate_run_id(id)?;
        self.writable()?;
        // No look for an existing run first: publishing the directory fails when one exists (`RunExists`), and
        // on object storage each look is a round trip to the server.
        let bytes = h.encode();
        let mut attempts = 0;
        loop {
            let tmp = self.cat().runs_dir.join(format!("{id}{}{:016x}", format::NEW_SUFFIX, new_nonce()));
            match self.build_run_dir(&tmp, &bytes, pin) {
                Ok(lock) => return self.publish_run_dir(id, &tmp, lock),
                // `gc` removed the directory before it was locked (it takes unlocked ones for crash leftovers).
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                    let _ = self.cat().vfs.remove_dir_all(&tmp);
                    attempts += 1;
                }
                Err(e) => {
                    let _ = self.cat().vfs.remove_dir_all(&tmp);
                    return Err(e);
                }
            }
        }
    }

    /// Makes directory `tmp`, locks it, writes `v0.head` in it, and fsyncs the header, the directory and
    /// `pin` (at once: the three are independent).
    fn build_run_dir(&self, tmp: &Path, head: &[u8], pin: Option<&PinSync>) -> Result<Box<dyn VfsFile>> {
        let vfs = &*self.cat().vfs;
        vfs.create_dir(tmp).map_err(|e| Error::io("creating run directory", tmp, e))?;
        let lock = vfs.open_dir(tmp).map_err(|e| Error::io("opening run directory", tmp, e))?;
        if !lock.try_lock().map_err(|e| Error::io("locking", tmp, e))? {
            let taken = std::io::Error::new(std::io::ErrorKind::NotFound, "taken by gc");
            return Err(Error::io("locking", tmp, taken));
        }
        let path = tmp.join(format::head_name(0));
        let f = vfs.open(&path, OpenMode::CreateNew).map_err(|e| Error::io("creating", &path, e))?;
        f.write_all_at(head, 0).map_err(|e| Error::io("writing", &path, e))?;
        // Durable whatever the policy: a run must never become visible with a header a crash can lose, or
        // pointing at parent bytes a crash can lose. The other fsyncs run on the store's helper threads.
        let vfs_arc = &self.cat().vfs;
        let dir = {
            let (vfs, tmp) = (vfs_arc.clone(), tmp.to_path_buf());
            self.inner.aside.run(move || vfs.sync_dir(&tmp))
        };
        let pinned = pin.map(|p| {
            let (vfs, path, inner, key) = (vfs_arc.clone(), p.path.clone(), self.inner.clone(), p.key.clone());
            self.inner.aside.run(move || match inner.sync_writer_of(&key) {
                // This process's writer of the parent syncs it itself: it then writes its pending index entries.
                Ok(true) => Ok(()),
                Ok(false) => vfs.open(&path, OpenMode::Read)?.sync_data(),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            })
        });
        let head = f.sync_data().map_err(|e| Error::io("syncing", &path, e));
        let dir = dir.wait().map_err(|e| Error::io("syncing directory", tmp, e));
        let pinned = match (pin, pinned) {
            (Some(p), Some(r)) => {
                r.wait().map_err(|e| Error::io("syncing forked-from segment", &p.path, e)).map(|()| {
                    // `own_position` checked every frame up to the pointer: the bytes are valid as well as durable.
                    self.cat().known.note(&p.key, 0, p.offset);
                })
            }
            _ => Ok(()),
        };
        head.and(dir).and(pinned)?;
        Ok(lock)
    }

    /// Renames the complete run directory `tmp` to run `id` and makes that durable.
    fn publish_run_dir(&self, id: &str, tmp: &Path, lock: Box<dyn VfsFile>) -> Result<Box<dyn VfsFile>> {
        let vfs = &*self.cat().vfs;
        let dir = self.cat().run_dir(id);
        let runs = &self.cat().runs_dir;
        let mut cleared = false;
        loop {
            match vfs.rename(tmp, &dir) {
                Ok(()) => break,
                Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty) => {
                    let taken = self.cat().listing(id).and_then(|l| match l {
                        Some(_) => Err(Error::RunExists { run: id.to_string() }),
                        None if cleared => Err(Error::io("renaming into place", &dir, e)),
                        None => self.clear_leftover(id),
                    });
                    if let Err(err) = taken {
                        let _ = vfs.remove_dir_all(tmp);
                        return Err(err);
                    }
                    cleared = true;
                }
                Err(e) => {
                    let _ = vfs.remove_dir_all(tmp);
                    return Err(Error::io("renaming into place", &dir, e));
                }
            }
        }
        vfs.sync_dir(runs).map_err(|e| Error::io("syncing directory", runs, e))?;
        Ok(lock)
    }

    /// Moves aside the directory of run `id` when it has no `v0.head`: the leftover of a creation an older
    /// version of forklog began (it made the directory first). Holding the directory's lock while looking
    /// again keeps two creators from moving each other's work.
    fn clear_leftover(&self, id: &str) -> Result<()> {
        let vfs = &*self.cat().vfs;
        let dir = self.cat().run_dir(id);
        let lock = match vfs.open_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("opening run directory", &dir, e)),
        };
        if !lock.try_lock().map_err(|e| Error::io("locking", &dir, e))? {
            return Err(Error::RunBusy { run: id.to_string() });
        }
        if self.cat().listing(id)?.is_some() {
            return Err(Error::RunExists { run: id.to_string() });
        }
        let trash = self.cat().runs_dir.join(format!("{id}.{:016x}{}", new_nonce(), format::TRASH_SUFFIX));
        match vfs.rename(&dir, &trash) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("moving aside", &dir, e)),
        }
    }

    fn write_header(&self, h: &VersionHeader) -> Result<()> {
        let dir = self.cat().run_dir(&h.run_id);
        // Durable whatever the policy: under `Never` an unsynced header renamed into place can be empty after an
        // OS crash, which would make the whole run unreadable.
        write_atomic(&*self.cat().vfs, &dir, &format::head_name(h.version), &h.encode(), true)?;
        Ok(())
    }

    fn writer_for(&self, id: &str, lock: Box<dyn VfsFile>, cuts: Vec<crate::report::Cut>) -> Result<RunWriter> {
        let view = self.cat().view(&RunRef::live(id), false)?;
        crate::writer::open_writer(&self.inner.catalog, &self.inner.opts, &self.inner.registry, &view, lock, cuts)
    }

    /// Creates a new root run and returns its writer. `RunExists` if the id is taken.
    pub fn create_run(&self, id: &str) -> Result<RunWriter> {
        let h = VersionHeader {
            run_id: id.to_string(),
            version: 0,
            nonce: new_nonce(),
            created_us: now_micros(),
            base: None,
            fork_parent: None,
            rewind_step: None,
        };
        let lock = self.create_version0(&h, None)?;
        self.writer_for_new(h, lock)
    }

    /// Opens an existing run to append to it (its torn tail, if any, is cut first: see
    /// [`RunWriter::recovery`]). `RunBusy` if another writer has it.
    pub fn resume(&self, id: &str) -> Result<RunWriter> {
        let run: RunRef = id.parse()?;
        if run.version.is_some() {
            return Err(Error::ReadOnlyVersion { run: id.to_string() });
        }
        self.cat().view(&run, false)?;
        self.writable()?;
        let lock = self.inner.catalog.acquire_lock(id)?;
        self.writer_for(id, lock, Vec::new())
    }

    /// Where a new version inheriting `parent`'s events with step `<= step` points, and the statistics of
    /// the inherited prefix; plus the parent's bytes the pointer pins that must be made durable before the new
    /// version's header may become durably visible (`None` when they already are, or this process knows so).
    fn base_pointer(&self, parent: &VersionView, step: u64) -> Result<(BasePointer, Option<PinSync>)> {
        let (own, ptr) = own_position(self.cat(), parent, None, Some(step))?;
        let inherited = match &parent.header.base {
            None => Stats::default(),
            Some(b) if step >= b.step => b.inherited,
            Some(b) => {
                let gp = self.cat().view(&RunRef::at(b.run_id.clone(), b.version), true)?;
                prefix_stats(self.cat(), &gp, Some(Ptr { seg: b.segment, offset: b.offset }), Some(step))?
            }
        };
        let mut pin = None;
        if parent.current && parent.segs > 0 && ptr.seg + 1 == parent.segs && ptr.offset > SEG_HEADER_LEN as u64 {
            // The pinned bytes may still be unsynced in the parent's active segment (sealed segments and
            // segment headers are synced when written) unless this process synced them (here or in its writer).
            let key = Known::key(parent, ptr.seg);
            if self.cat().known.get(&key).durable < ptr.offset {
                pin = Some(PinSync { path: parent.seg_path(ptr.seg), key, offset: ptr.offset });
            }
        }
        let base = BasePointer {
            run_id: parent.id.clone(),
            version: parent.version,
            segment: ptr.seg,
            offset: ptr.offset,
            step,
            inherited: inherited.then(&own),
        };
        Ok((base, pin))
    }

    /// Makes the bytes `pin` names durable.
    fn sync_pin(&self, pin: &PinSync) -> Result<()> {
        // This process's writer of the parent syncs it itself: it then also writes its pending index entries.
        if self.inner.sync_writer_of(&pin.key)? {
            return Ok(());
        }
        let f = self.cat().vfs.open(&pin.path, OpenMode::Read).map_err(|e| Error::io("opening", &pin.path, e))?;
        f.sync_data().map_err(|e| Error::io("syncing forked-from segment", &pin.path, e))?;
        // `own_position` checked every frame up to the pointer: the bytes are valid as well as durable.
        self.cat().known.note(&pin.key, 0, pin.offset);
        Ok(())
    }

    /// The writer of a version this handle just created (and holds the lock of): its view is known without
    /// reading the directory back.
    fn writer_for_new(&self, h: VersionHeader, lock: Box<dyn VfsFile>) -> Result<RunWriter> {
        let view = VersionView {
            id: h.run_id.clone(),
            version: h.version,
            dir: self.cat().run_dir(&h.run_id),
            header: Arc::new(h),
            segs: 0,
            current: true,
            deleted: false,
        };
        crate::writer::open_writer(&self.inner.catalog, &self.inner.opts, &self.inner.registry, &view, lock, Vec::new())
    }

    /// Creates run `new_id` inheriting every event of `point.run` with step `<= point.step`, without
    /// copying any of it, and returns its writer (the next step is `point.step + 1`).
    pub fn fork(&self, new_id: &str, point: &ForkPoint) -> Result<RunWriter> {
        validate_run_id(new_id)?;
        validate_run_id(&point.run.id)?;
        if new_id == point.run.id {
            return Err(Error::ForkOntoItself { run: new_id.to_string() });
        }
        let mut parent = self.cat().view(&point.run, false)?;
        if parent.current && self.inner.flush_writer(&parent.id)? {
            // The flush may have started a segment: look again.
            parent = self.cat().view(&parent.run_ref(), false)?;
        }
        let (base, pin) = self.base_pointer(&parent, point.step)?;
        let h = VersionHeader {
            run_id: new_id.to_string(),
            version: 0,
            nonce: new_nonce(),
            created_us: now_micros(),
            base: Some(base),
            fork_parent: Some(ForkParent { run_id: parent.id.clone(), version: parent.version, step: point.step }),
            rewind_step: None,
        };
        let lock = self.create_version0(&h, pin.as_ref())?;
        self.writer_for_new(h, lock)
    }

    /// Rewinds run `id` to `step` (W&B's `resume_from`): the current version is archived as `ID@vK` and a
    /// new version K+1 inherits its events with step `<= step`, copy-free. Returns the new version's writer.
    /// `RunBusy` while another writer has the run open.
    pub fn rewind(&self, id: &str, step: u64) -> Result<RunWriter> {
        self.rewind_to(&ForkPoint::new(id, step))
    }

    /// [`rewind`](Store::rewind) from the tracker syntax `"ID?_step=N"`.
    pub fn rewind_to(&self, point: &ForkPoint) -> Result<RunWriter> {
        let id = point.run.id.as_str();
        validate_run_id(id)?;
        self.writable()?;
        let view = self.cat().view(&RunRef::live(id), false)?;
        if point.run.version.is_some_and(|v| v != view.version) {
            return Err(Error::ReadOnlyVersion { run: point.run.to_string() });
        }
        let lock = self.inner.catalog.acquire_lock(id)?;
        let view = self.cat().view(&RunRef::live(id), false)?;
        let mut cuts = Vec::new();
        crate::recovery::seal_for_rewind(&self.inner.catalog, &view, &mut cuts)?;
        let view = self.cat().view(&view.run_ref(), false)?;
        let (base, pin) = self.base_pointer(&view, point.step)?;
        if let Some(pin) = &pin {
            self.sync_pin(pin)?;
        }
        let h = VersionHeader {
            run_id: id.to_string(),
            version: view.version + 1,
            nonce: new_nonce(),
            created_us: now_micros(),
            base: Some(base),
            fork_parent: view.header.fork_parent.clone(),
            rewind_step: Some(point.step),
        };
        self.write_header(&h)?;
        self.cat().forget_keys(id);
        self.writer_for(id, lock, cuts)
    }

    fn resolve(&self, run: &str) -> Result<VersionView> {
        let r: RunRef = run.parse()?;
        self.cat().view(&r, false)
    }

    /// The replay of `run`. A live run's writer in this process lends a copy of its buffered events, so reads
    /// see them without the writer writing anything: the disk part stops where the writer's data ended when
    /// the copy was taken, and the copy follows.
    fn stream(&self, run: &str, opts: &HistoryOptions) -> Result<EventStream> {
        let r: RunRef = run.parse()?;
        let tail = self.inner.registry.tail(&r.id);
        let view = self.cat().view(&r, false)?;
        let tail = tail.filter(|t| view.current && t.version == view.version && t.nonce == view.header.nonce);
        let mut pieces = plan(self.cat(), &view, opts.own_only)?;
        attach_tail(&mut pieces, &view, tail.as_ref());
        Ok(EventStream::new(self.inner.catalog.clone(), pieces, opts.from_step, opts.to_step, tail))
    }

    /// A copy of this process's writer's buffered events of `view` (taken before `view` was listed, so the two
    /// agree: see [`attach_tail`]). For a view listed before, `tail_of` is only used where the copy's cut
    /// bounds the disk read.
    fn tail_of(&self, view: &VersionView) -> Option<crate::replay::Tail> {
        let t = self.inner.registry.tail(&view.id)?;
        (view.current && t.version == view.version && t.nonce == view.header.nonce).then_some(t)
    }

    /// The run's history rows in step order, inherited prefix included. `run` is `ID` or `ID@vK`.
    pub fn history(&self, run: &str) -> Result<History> {
        self.history_with(run, &HistoryOptions::default())
    }

    /// The run's history rows filtered by step range, keys, or to its own rows.
    pub fn history_with(&self, run: &str, opts: &HistoryOptions) -> Result<History> {
        Ok(History::new(self.stream(run, opts)?, opts.keys.clone()))
    }

    /// The run's history as columns (steps, times, one vector per metric), inherited prefix included: the
    /// fastest read, decoded straight from the frames. `opts` filters as for [`history_with`](Store::history_with).
    pub fn columns(&self, run: &str, opts: &HistoryOptions) -> Result<crate::Columns> {
        crate::columns::collect(self.stream(run, opts)?, opts.keys.as_deref())
    }

    /// Streams the run's history as chunks of columns: the fastest full replay, in bounded memory. A chunk ends
    /// at a frame boundary once it holds 1024 rows (a 64 KiB frame holds ~1.5k five-float rows); its buffers
    /// are reused for the next. Without a key filter, a chunk's columns are in the order their keys were first
    /// met. Each column's [`kinds`](crate::Column::kinds) are those of the chunk's rows. `opts` filters as for
    /// [`history_with`](Store::history_with).
    pub fn scan_columns(&self, run: &str, opts: &HistoryOptions, f: impl FnMut(&crate::Columns)) -> Result<()> {
        crate::columns::scan(self.stream(run, opts)?, opts.keys.as_deref(), f)
    }

    // --- issue 12 (uireads): reads a UI needs; the work is in sample.rs / zonemap.rs / snapshot.rs ---

    /// The run's exact downsampled history (M4): `from_step..=to_step` (default: the first to the last `Log`
    /// step of the visible history) split into `buckets` equal buckets, and for each bucket and key the first,
    /// last, minimum and maximum value with their steps and the count; see [`Sample`](crate::Sample). `keys`
    /// empty means every numeric key. Inherited rows are included. Whole blocks of rows are answered from the
    /// zone maps (docs/FORMAT.md), so the cost grows with `buckets`, not with the history length.
    pub fn sample<S: AsRef<str>>(
        &self,
        run: &str,
        keys: &[S],
        buckets: u32,
        from_step: Option<u64>,
        to_step: Option<u64>,
    ) -> Result<crate::Sample> {
        // A writer of this process live on the version lends its buffered events (see `state_of`).
        let r: RunRef = run.parse()?;
        let tail = self.inner.registry.tail(&r.id);
        let view = self.cat().view(&r, false)?;
        let tail = tail.filter(|t| view.current && t.version == view.version && t.nonce == view.header.nonce);
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        crate::sample::sample(self, &view, &keys, buckets, from_step, to_step, tail.as_ref())
    }

    /// [`Store::sample`] computed by replaying every row in the range (no zone maps): the reference the fast
    /// path is tested against, and the baseline of the benchmarks.
    pub fn sample_by_replay<S: AsRef<str>>(
        &self,
        run: &str,
        keys: &[S],
        buckets: u32,
        from_step: Option<u64>,
        to_step: Option<u64>,
    ) -> Result<crate::Sample> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        let Some(b) = crate::sample::bucketing(self.info(run)?, buckets, from_step, to_step)? else {
            return Ok(crate::sample::empty(&keys, buckets, from_step, to_step));
        };
        let mut opts = HistoryOptions::new().from_step(b.from).to_step(b.to);
        if !keys.is_empty() {
            opts = opts.keys(keys.clone());
        }
        let mut c = crate::sample::Collector::new(b);
        let mut slots: Vec<usize> = Vec::new();
        self.scan_columns(run, &opts, |chunk| {
            for (j, col) in chunk.columns.iter().enumerate() {
                if slots.len() <= j {
                    slots.push(c.slot(&col.key));
                }
                let slot = slots[j];
                for (step, v) in chunk.steps.iter().zip(&col.values) {
                    if let Some(v) = v {
                        c.add_value(slot, *step, *v);
                    }
                }
            }
        })?;
        Ok(c.finish((!keys.is_empty()).then_some(&keys[..])))
    }

    /// The runs table: every live run (current versions, sorted by id) with its summary values, only `keys`
    /// unless `keys` is empty. Each summary is read from the snapshots of the zone maps, so a table of 10,000
    /// runs costs the same whatever their history lengths (see `benches/compare.rs`).
    pub fn runs_table<S: AsRef<str>>(&self, keys: &[S]) -> Result<Vec<crate::RunRow>> {
        let mut out = Vec::new();
        for id in self.cat().run_ids()? {
            self.inner.flush_writer(&id)?;
            let Some(listing) = self.cat().listing(&id)? else { continue };
            if listing.deleted {
                continue;
            }
            let Some(v) = listing.versions.last().copied() else { continue };
            let view = self.cat().view_in(&id, &listing, v)?;
            // A root run no writer of this process holds, whose zone map ends with a snapshot covering all of
            // it: statistics, metadata and summary from that one record.
            let covering = (view.header.base.is_none() && self.tail_of(&view).is_none())
                .then(|| crate::zonemap::covering_snapshot(self.cat(), &view))
                .flatten();
            let (info, state) = match covering {
                Some(snap) => {
                    let mut meta = RunMeta::default();
                    meta.apply(&snap.state.meta);
                    let info = self.info_with(&view, Some((snap.state.stats, meta)))?;
                    (info, crate::snapshot::state_of_root(self.cat(), &view, snap.state)?)
                }
                None => (self.info_of(&view)?, crate::snapshot::state(self.cat(), &view)?),
            };
            let mut summary = state.summary();
            if !keys.is_empty() {
                summary.retain(|k, _| keys.iter().any(|w| w.as_ref() == &**k));
            }
            out.push(crate::RunRow { info, summary });
        }
        Ok(out)
    }

    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    // --- end issue 12 hooks ---

    /// Every event of the run in order, inherited prefix included.
    pub fn events(&self, run: &str) -> Result<Events> {
        self.events_with(run, &HistoryOptions::default())
    }

    /// Events filtered by step range, own-only, and (for `Log` and `System` metrics) keys.
    pub fn events_with(&self, run: &str, opts: &HistoryOptions) -> Result<Events> {
        Ok(Events::new(self.stream(run, opts)?, opts.keys.clone(), false))
    }

    /// The run's `System` events.
    pub fn system(&self, run: &str) -> Result<Events> {
        Ok(Events::new(self.stream(run, &HistoryOptions::default())?, None, true))
    }

    /// The run's summary: the last value of every `Log` key, overridden by explicit `Summary` values.
    /// Assembled from the zone maps' snapshots (docs/FORMAT.md), so it costs the same for a long history as
    /// for a short one; parts the zone maps do not cover (older stores, unsynced tails) are read from the frames.
    pub fn summary(&self, run: &str) -> Result<Metrics> {
        Ok(self.state_of(run)?.summary())
    }

    /// The run's config: every `Config` patch merged in order (from the snapshots, like [`summary`](Store::summary)).
    pub fn config(&self, run: &str) -> Result<Metrics> {
        Ok(self.state_of(run)?.config)
    }

    /// The summary/config state of `run` from the snapshots. A writer of this process live on the version lends
    /// its buffered events (taken before the version is listed, as for a replay): the disk is read up to where
    /// they start (its unsynced frames past the zone maps decoded), then they are applied.
    fn state_of(&self, run: &str) -> Result<crate::snapshot::State> {
        let r: RunRef = run.parse()?;
        let tail = self.inner.registry.tail(&r.id);
        let view = self.cat().view(&r, false)?;
        let tail = tail.filter(|t| view.current && t.version == view.version && t.nonce == view.header.nonce);
        crate::snapshot::state_with_tail(self.cat(), &view, tail.as_ref())
    }

    /// [`Store::summary`] by replaying every event: the reference the snapshots are tested against, and the
    /// benchmarks' baseline.
    pub fn summary_by_replay(&self, run: &str) -> Result<Metrics> {
        let mut auto = BTreeMap::new();
        let mut explicit = BTreeMap::new();
        for rec in self.events(run)? {
            match rec?.event {
                Event::Log { metrics, .. } => auto.extend(metrics),
                Event::Summary { patch, .. } => explicit.extend(patch),
                _ => {}
            }
        }
        auto.extend(explicit);
        Ok(auto)
    }

    /// [`Store::config`] by replaying every event (the reference of the tests).
    pub fn config_by_replay(&self, run: &str) -> Result<Metrics> {
        let mut config = BTreeMap::new();
        for rec in self.events(run)? {
            if let Event::Config { patch, .. } = rec?.event {
                config.extend(patch);
            }
        }
        Ok(config)
    }

    fn info_of(&self, view: &VersionView) -> Result<RunInfo> {
        self.info_with(view, None)
    }

    /// [`info_of`](Store::info_of), with the statistics and metadata of a root version's own data when the caller
    /// has them (the runs table, from the snapshot that covers it).
    fn info_with(&self, view: &VersionView, known: Option<(crate::stats::Stats, RunMeta)>) -> Result<RunInfo> {
        // This process's writer of the version knows its statistics, buffered events included.
        let live = self
            .inner
            .registry
            .live_stats(&view.id)
            .filter(|(v, n, _)| view.current && *v == view.version && *n == view.header.nonce);
        let (known_stats, known_meta) = match known.filter(|_| live.is_none()) {
            Some((s, m)) => (Some(s), Some(m)),
            None => (None, None),
        };
        let stats = match live {
            Some((_, _, stats)) => stats,
            None if known_stats.is_some() => known_stats.unwrap_or_default(),
            // The snapshot that ends the zone maps when it covers the whole version (issue 12), else a skim.
            None => match crate::zonemap::own_stats(self.cat(), view) {
                Some(own) => view.header.base.as_ref().map_or_else(Default::default, |b| b.inherited).then(&own),
                None => prefix_stats(self.cat(), view, None, None)?,
            },
        };
        let state = if view.current && !view.deleted && (live.is_some() || self.inner.is_running(view)) {
            RunState::Running
        } else if stats.last_is_finish {
            RunState::Finished
        } else {
            RunState::Crashed
        };
        let h = &view.header;
        Ok(RunInfo {
            id: view.id.clone(),
            version: view.version,
            archived: !view.current,
            deleted: view.deleted,
            parent: h.fork_parent.as_ref().map(|p| RunRef::at(p.run_id.clone(), p.version)),
            fork_step: h.fork_parent.as_ref().map(|p| p.step),
            rewind_step: h.rewind_step,
            created: micros_to_secs(h.created_us),
            first_step: stats.first_log,
            last_step: stats.last_log,
            rows: stats.rows,
            events: stats.events,
            state,
            meta: match known_meta {
                Some(m) => m,
                None => self.meta_of(view)?,
            },
        })
    }

    /// The metadata of a version's visible history.
    fn meta_of(&self, view: &VersionView) -> Result<RunMeta> {
        // From the zone maps' snapshots and blocks (issue 12): no walk of the history. A writer of this process
        // live on the version lends its buffered events, applied after the disk's data.
        match self.tail_of(view) {
            None => crate::snapshot::meta(self.cat(), view, |v| self.no_meta_events(v)),
            Some(t) => Ok(crate::snapshot::state_with_tail(self.cat(), view, Some(&t))?.meta),
        }
    }

    /// True when `view`'s own data surely holds no `Meta` event: it has none, or the close record of its last
    /// segment (whose length is still the one recorded) counts none.
    fn no_meta_events(&self, view: &VersionView) -> bool {
        let Some(last) = view.segs.checked_sub(1) else { return true };
        let vfs = &*self.cat().vfs;
        let salt = format::segment_salt(view.header.nonce, last);
        let Some(close) = crate::index::read_close_record(vfs, &view.idx_path(last), salt) else { return false };
        let seg_len = vfs.open(&view.seg_path(last), OpenMode::Read).and_then(|f| f.len()).ok();
        close.meta_events == Some(0) && seg_len == Some(close.seg_len)
    }

    /// The run's metadata (name, tags, notes, group): every [`MetaPatch`](crate::MetaPatch) of its visible
    /// history applied in order, so a fork has its parent's as of the fork step. `run` is `ID` or `ID@vK`.
    /// Empty for runs that never set any (every run of a version-1 store).
    pub fn meta(&self, run: &str) -> Result<RunMeta> {
        let view = self.resolve(run)?;
        self.meta_of(&view)
    }

    /// Facts about a run (or `ID@vK`): lineage, steps, counts, state.
    pub fn info(&self, run: &str) -> Result<RunInfo> {
        let view = self.resolve(run)?;
        self.info_of(&view)
    }

    fn list(&self, all: bool) -> Result<Vec<RunInfo>> {
        let mut out = Vec::new();
        for id in self.cat().run_ids()? {
            let Some(listing) = self.cat().listing(&id)? else { continue };
            if listing.deleted && !all {
                continue;
            }
            let versions: Vec<u32> =
                if all { listing.versions.clone() } else { listing.versions.last().copied().into_iter().collect() };
            for v in versions {
                let view = self.cat().view_in(&id, &listing, v)?;
                match self.info_of(&view) {
                    Ok(info) => out.push(info),
                    // A deleted run's version whose ancestor a gc (killed midway) already removed: no live run
                    // reaches it, so it is garbage the next gc finishes; listing it would need what is gone.
                    Err(Error::RunNotFound { .. }) if listing.deleted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Every live run (current versions), sorted by id.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        self.list(false)
    }

    /// Every run version: live runs, their archived versions, and deleted runs still kept for their forks.
    pub fn runs_all(&self) -> Result<Vec<RunInfo>> {
        self.list(true)
    }

    /// The run's ancestry, root first, the run itself last.
    pub fn lineage(&self, run: &str) -> Result<Vec<LineageEntry>> {
        let view = self.resolve(run)?;
        let mut out =
            vec![LineageEntry { run: view.run_ref(), fork_step: view.header.fork_parent.as_ref().map(|p| p.step) }];
        let mut next = view.header.fork_parent.clone();
        while let Some(p) = next {
            let h = self.cat().header(&p.run_id, p.version)?;
            out.push(LineageEntry {
                run: RunRef::at(p.run_id.clone(), p.version),
                fork_step: h.fork_parent.as_ref().map(|q| q.step),
            });
            next = h.fork_parent.clone();
            if out.len() > 1_000_000 {
                return Err(Error::corrupt(self.cat().run_dir(&p.run_id), 0, "lineage has a cycle"));
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Live runs forked from any version of `run`, sorted by id.
    pub fn children(&self, run: &str) -> Result<Vec<RunInfo>> {
        let r: RunRef = run.parse()?;
        self.cat().view(&RunRef::live(r.id.clone()), false)?;
        let mut out = Vec::new();
        for info in self.runs()? {
            if info.parent.as_ref().is_some_and(|p| p.id == r.id && r.version.is_none_or(|v| p.version == Some(v))) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Deletes a run: it disappears from listings and reads. Files its forks still inherit are kept until
    /// no live run reaches them; [`gc`](Store::gc) frees the rest. `RunBusy` while a writer has it open.
    pub fn delete_run(&self, id: &str) -> Result<()> {
        let r: RunRef = id.parse()?;
        if r.version.is_some() {
            return Err(Error::ReadOnlyVersion { run: id.to_string() });
        }
        self.cat().view(&r, false)?;
        self.writable()?;
        let _lock = self.inner.catalog.acquire_lock(id)?;
        let view = self.cat().view(&r, false)?;
        let dir = self.cat().run_dir(id);
        let mut fields = vec![0u8; 6];
        fields.extend_from_slice(&now_micros().to_le_bytes());
        fields.extend_from_slice(&view.version.to_le_bytes());
        let bytes = format::build_fixed_header(format::SMALL_HEADER_LEN, &format::DELETED_MAGIC, &fields);
        write_atomic(&*self.cat().vfs, &dir, format::DELETED_FILE, &bytes, true)?;
        self.cat().forget_run(id);
        Ok(())
    }

    /// Removes every file no live run reaches (deleted runs, and the parts of them no fork inherits).
    pub fn gc(&self) -> Result<GcReport> {
        self.writable()?;
        crate::gc::collect(&self.inner.catalog)
    }

    /// Rebuilds derived files from the segments: every step index that [`verify`](Store::verify) finds damaged
    /// or missing is rewritten (temp file, fsync, rename) with the entries its segment's frames call for, and
    /// with its close record when its writer had closed cleanly. An active segment is fsynced first (index
    /// entries vouch for durable bytes) under its run's lock (`RunBusy` while a writer has it). Segments are
    /// never changed; torn tails are left for the next writer.
    pub fn repair(&self) -> Result<RepairReport> {
        self.writable()?;
        let (_, rebuild) = crate::verify::check(&self.inner.catalog, &self.inner.root)?;
        let vfs = &*self.cat().vfs;
        let mut report = RepairReport::default();
        for r in rebuild {
            let _lock = if r.sealed { None } else { Some(self.inner.catalog.acquire_lock(&r.run)?) };
            if !r.sealed {
                let f = vfs.open(&r.seg, OpenMode::Read).map_err(|e| Error::io("opening", &r.seg, e))?;
                f.sync_data().map_err(|e| Error::io("syncing", &r.seg, e))?;
            }
            let mut bytes = crate::index::encode_index_header(r.version, r.seq, r.salt);
            for e in &r.entries {
                bytes.extend_from_slice(&e.encode(r.salt));
            }
            if let Some(c) = r.closed {
                bytes.extend_from_slice(&crate::index::encode_close_record(r.salt, c));
            }
            let dir = r.ipath.parent().unwrap_or(Path::new("."));
            write_atomic(vfs, dir, &format::idx_name(r.version, r.seq), &bytes, true)?;
            report.rebuilt.push(r.ipath);
        }
        Ok(report)
    }

    /// Checks every byte of every file; see [`VerifyReport`].
    pub fn verify(&self) -> Result<VerifyReport> {
        crate::verify::verify(&self.inner.catalog, &self.inner.root)
    }
}
