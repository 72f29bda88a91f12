//! Readers never block a writer and are never blocked by one, in this process too: reads see this process's
//! buffered rows without the writer writing anything; `runs`/`info` learn whether a run is running without a
//! lock a writer could collide with, so `RunBusy` means another writer, never a reader; and a `log` never
//! waits for an fsync it did not ask for (the syncer fsyncs outside the writer's lock), nor does a read.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forklog::testing::faultfs::FaultFs;
use forklog::vfs::{MappedBytes, OpenMode, StdFs, Vfs, VfsFile};
use forklog::{metrics, Error, Options, RunState, Store, SyncPolicy};

/// Reads (history, columns, events, summary, info, runs) show buffered rows and write nothing.
#[test]
fn reads_see_buffered_rows_without_writing() {
    let fs = FaultFs::new();
    let opts = Options::default().vfs(fs.clone()).sync(SyncPolicy::Never);
    let store = Store::open_with(FaultFs::store_path(), opts).unwrap();
    let mut w = store.create_run("r").unwrap();
    for i in 0..10 {
        w.log(metrics! { "x" => i as f64 }).unwrap();
    }
    w.flush().unwrap();
    for i in 10..15 {
        w.log(metrics! { "x" => i as f64, "new" => 1i64 }).unwrap();
    }
    w.set_summary(metrics! { "best" => 3.0 }).unwrap();
    let before = fs.counters();
    assert_eq!(store.history("r").unwrap().count(), 15);
    assert_eq!(store.history("r@v0").unwrap().count(), 15);
    let cols = store.columns("r", &forklog::HistoryOptions::new().from_step(12)).unwrap();
    assert_eq!(cols.steps, vec![12, 13, 14]);
    assert_eq!(store.events("r").unwrap().count(), 16);
    assert_eq!(store.summary("r").unwrap()["best"], forklog::Value::Float(3.0));
    assert_eq!(store.summary("r").unwrap()["new"], forklog::Value::Int(1));
    let sample = store.sample("r", &["x"], 1, None, None).unwrap();
    assert_eq!(sample.series[0].buckets.iter().map(|b| b.count).sum::<u64>(), 15);
    let info = store.info("r").unwrap();
    assert_eq!((info.rows, info.last_step, info.state), (15, Some(14), RunState::Running));
    assert_eq!(store.runs().unwrap()[0].rows, 15);
    let after = fs.counters();
    assert_eq!((after.writes, after.syncs, after.dir_syncs), (before.writes, before.syncs, before.dir_syncs));
    drop(w);
    assert_eq!(store.history("r").unwrap().count(), 15);
}

/// Threads looping on `runs`/`info` of a run never make its writer's open fail: `RunBusy` only comes from
/// another writer.
#[test]
fn readers_never_make_a_run_busy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    drop(store.create_run("r").unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                // Another handle: like another process, it knows nothing of this handle's writers.
                let other = Store::open(store.path()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    other.runs().unwrap();
                    other.info("r").unwrap();
                }
            })
        })
        .collect();
    for i in 0..300 {
        let mut w = store.resume("r").unwrap_or_else(|e| panic!("open #{i} failed while readers ran: {e}"));
        w.log(metrics! { "i" => i as i64 }).unwrap();
        // A second writer is refused: that is what RunBusy means.
        assert!(matches!(store.resume("r"), Err(Error::RunBusy { .. })));
        drop(w);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(store.history("r").unwrap().count(), 300);
}

/// The state another handle (another process) sees: running while a writer is open, else not.
#[test]
fn other_handles_see_running_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = Store::open(dir.path()).unwrap();
    let w = store.create_run("r").unwrap();
    assert_eq!(other.info("r").unwrap().state, RunState::Running);
    drop(w);
    assert_eq!(other.info("r").unwrap().state, RunState::Crashed);
    let w = store.rewind("r", 0).unwrap();
    assert_eq!(other.info("r").unwrap().state, RunState::Running);
    w.finish(0).unwrap();
    assert_eq!(other.info("r").unwrap().state, RunState::Finished);
}

/// A file system whose file fsyncs take 300 ms.
#[derive(Debug)]
struct SlowSync;

#[derive(Debug)]
struct SlowFile(Box<dyn VfsFile>);

const SLOW: Duration = Duration::from_millis(300);

impl VfsFile for SlowFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        std::thread::sleep(SLOW);
        self.0.sync_data()
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        self.0.try_lock()
    }
    fn try_lock_shared(&self) -> std::io::Result<bool> {
        self.0.try_lock_shared()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.0.unlock()
    }
}

impl Vfs for SlowSync {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn VfsFile>> {
        Ok(Box::new(SlowFile(StdFs.open(path, mode)?)))
    }
    fn open_dir(&self, path: &Path) -> std::io::Result<Box<dyn VfsFile>> {
        StdFs.open_dir(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        StdFs.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        StdFs.read_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        StdFs.remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        StdFs.sync_dir(path)
    }
    fn map(&self, path: &Path) -> std::io::Result<MappedBytes> {
        StdFs.map(path)
    }
}

/// Under `EveryMillis`, the syncer's 300 ms fsyncs never hold up `log` or a read of this process: no call
/// waits anywhere near an fsync (once `log` did the fsync itself, and reads waited for the syncer's).
/// (Creating a segment or a new key's record still syncs under the writer's lock: once per segment or key.)
#[test]
fn log_and_reads_never_wait_for_the_syncers_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().vfs(Arc::new(SlowSync)).sync(SyncPolicy::EveryMillis(5)).buffer_size(256);
    let store = Store::open_with(dir.path(), opts).unwrap();
    let mut w = store.create_run("r").unwrap();
    // The segment and the key table exist (creating them, once per segment and once per new key, is I/O
    // the writer does under its lock).
    w.log(metrics! { "x" => 0.0 }).unwrap();
    w.sync().unwrap();
    let (mut worst_log, mut worst_read) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    let mut i = 1u64;
    while start.elapsed() < Duration::from_millis(1500) {
        let t = Instant::now();
        w.log(metrics! { "x" => i as f64 }).unwrap();
        worst_log = worst_log.max(t.elapsed());
        if i.is_multiple_of(10) {
            let t = Instant::now();
            assert_eq!(store.history("r").unwrap().count() as u64, i + 1);
            worst_read = worst_read.max(t.elapsed());
        }
        i += 1;
        std::thread::sleep(Duration::from_micros(500));
    }
    assert!(w.durable_step().is_some(), "the syncer made nothing durable");
    assert!(worst_log < SLOW / 2, "a log waited {worst_log:?} (an fsync takes {SLOW:?})");
    assert!(worst_read < SLOW / 2, "a read waited {worst_read:?} (an fsync takes {SLOW:?})");
}

/// Issue 12: while a writer of this process is live, summary, config, meta and sample come from the zone maps
/// (records and snapshots of synced data), the frames past them (flushed, unsynced) and the writer's buffered
/// events, and equal the replay at every point: buffered only, flushed, synced, across segment seals, forks
/// of the live run, and a fork live in another writer.
#[test]
fn reads_of_a_live_run_equal_the_replay() {
    use forklog::{MetaPatch, Options, SyncPolicy};
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never).segment_size(64 << 10)).unwrap();
    let mut w = store.create_run("r").unwrap();
    let none: [&str; 0] = [];
    let model_meta = |run: &str| {
        let mut m = forklog::RunMeta::default();
        for e in store.events(run).unwrap() {
            if let forklog::Event::Meta { patch, .. } = e.unwrap().event {
                m.apply(&patch);
            }
        }
        m
    };
    let check = |run: &str, at: &str| {
        assert_eq!(
            format!("{:?}", store.summary(run).unwrap()),
            format!("{:?}", store.summary_by_replay(run).unwrap()),
            "{run} {at}"
        );
        assert_eq!(store.config(run).unwrap(), store.config_by_replay(run).unwrap(), "{run} {at}");
        assert_eq!(store.meta(run).unwrap(), model_meta(run), "{run} {at}");
        assert_eq!(store.info(run).unwrap().meta, model_meta(run), "{run} {at}");
        for n in [3, 200] {
            let fast = store.sample(run, &none, n, None, None).unwrap();
            let slow = store.sample_by_replay(run, &none, n, None, None).unwrap();
            assert_eq!(fast, slow, "{run} {at} {n}");
        }
    };
    let mut step = 0u64;
    for round in 0..8u64 {
        for _ in 0..(250 + round * 131) {
            w.log_floats(&[("a", step as f64), ("b", -(step as f64))]).unwrap();
            step += 1;
        }
        check("r", &format!("round {round}, buffered"));
        if round % 3 == 0 {
            w.set_config(metrics! { "lr" => round as f64 }).unwrap();
            w.set_summary(metrics! { "best" => round as i64 }).unwrap();
            w.set_meta(MetaPatch::new().tag(format!("t{round}")).name(format!("n{round}"))).unwrap();
            w.log(metrics! { format!("k{round}") => "text", "a" => 0.5 }).unwrap();
            step += 1;
        }
        check("r", &format!("round {round}, patches buffered"));
        match round % 3 {
            0 => w.flush().unwrap(),
            1 => w.sync().unwrap(),
            _ => {}
        }
        check("r", &format!("round {round}, after flush/sync"));
        if round == 5 {
            let mut f = store.fork("f", &format!("r?_step={}", step - 10).parse().unwrap()).unwrap();
            f.log_floats(&[("a", 1e9)]).unwrap();
            f.set_meta(MetaPatch::new().untag("t3")).unwrap();
            check("f", "fork live");
            drop(f);
            check("f", "fork closed");
        }
    }
    drop(w);
    check("r", "closed");
    check("f", "closed");
}

/// The segment files of run `id` under `runs`, in order (`v0-0.seg`, `v0-1.seg`, ...).
fn seg_files(fs: &FaultFs, runs: &Path, id: &str) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> =
        fs.files_under(runs.join(id)).into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    let seq = |p: &std::path::PathBuf| -> u32 {
        let name = p.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX)
    };
    segs.sort_by_key(seq);
    segs
}

/// A replay of a whole history names the segments it will read before reading them (`Vfs::will_read`, which
/// the object-storage tier uses to fetch them ahead): the parent's up to the fork point, then the fork's own,
/// in order. A replay of a step range names none (it seeks, or stops early).
#[test]
fn a_replay_names_its_segments_before_reading_them() {
    let fs = FaultFs::new();
    let opts = Options::default().vfs(fs.clone()).sync(SyncPolicy::Never).segment_size(4096).buffer_size(512);
    let store = Store::open_with(FaultFs::store_path(), opts).unwrap();
    let mut w = store.create_run("p").unwrap();
    for i in 0..1500 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    w.finish(0).unwrap();
    let mut f = store.fork("c", &forklog::ForkPoint::new("p", 700)).unwrap();
    for _ in 0..600 {
        f.log_floats(&[("loss", -1.0)]).unwrap();
    }
    f.finish(0).unwrap();
    let runs = FaultFs::store_path().join("runs");
    let (p_segs, c_segs) = (seg_files(&fs, &runs, "p"), seg_files(&fs, &runs, "c"));
    assert!(p_segs.len() > 3 && c_segs.len() > 1, "{p_segs:?} {c_segs:?}");

    let before = fs.read_hints().len();
    assert_eq!(store.history("c").unwrap().count(), 1301);
    let hints = fs.read_hints();
    assert_eq!(hints.len(), before + 1, "{hints:?}");
    let hint = &hints[before];
    // A prefix of the parent's segments (the fork point lies inside the last of them), then the fork's own.
    let inherited = hint.len() - c_segs.len();
    assert!(inherited >= 1 && inherited < p_segs.len(), "{hint:?}");
    assert_eq!(hint[..inherited], p_segs[..inherited]);
    assert_eq!(hint[inherited..], c_segs[..]);
    assert_eq!(store.history("p").unwrap().count(), 1500);
    let p_hint = fs.read_hints().last().cloned().unwrap();
    assert_eq!(p_hint, p_segs, "a replay of the parent names all its segments");

    // Columnar reads name them too; a replay from a later step does not.
    let n = fs.read_hints().len();
    store.scan_columns("c", &forklog::HistoryOptions::new(), |_| {}).unwrap();
    assert_eq!(fs.read_hints().len(), n + 1);
    assert_eq!(fs.read_hints()[n], *hint);
    assert_eq!(store.history_with("c", &forklog::HistoryOptions::new().from_step(900)).unwrap().count(), 401);
    assert_eq!(store.history_with("c", &forklog::HistoryOptions::new().to_step(10)).unwrap().count(), 11);
    assert_eq!(fs.read_hints().len(), n + 1);
}
