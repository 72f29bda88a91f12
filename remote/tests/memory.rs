//! Two "machines" (two cache directories) on one in-memory object store: creation races, copy-free forks,
//! readers while a writer seals, leases, delete/gc with forks, corruption and failing uploads.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use forklog::{Error, ForkPoint, Options, Store, SyncPolicy};
use forklog_remote::object_store::memory::InMemory;
use forklog_remote::object_store::path::Path as Key;
use forklog_remote::object_store::{
    self, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use forklog_remote::RemoteOptions;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

mod common;

use common::{steps, Machine};

fn opts() -> RemoteOptions {
    RemoteOptions::default()
        .lease(Duration::from_millis(600))
        .store_options(Options::default().segment_size(4096).buffer_size(512).sync(SyncPolicy::Never))
}

fn machine(os: &Arc<dyn ObjectStore>) -> Machine {
    machine_with(os, opts())
}

fn machine_with(os: &Arc<dyn ObjectStore>, opts: RemoteOptions) -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let (store, remote) = forklog_remote::open_object_store(os.clone(), "team/a", dir.path(), opts).unwrap();
    Machine { _dir: dir, store, remote }
}

fn memory() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn write_rows(store: &Store, id: &str, rows: u64) {
    let mut w = store.create_run(id).unwrap();
    for i in 0..rows {
        w.log_floats(&[("loss", i as f64), ("acc", 0.5)]).unwrap();
    }
    w.finish(0).unwrap();
}

fn keys(os: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<(String, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let p = Key::from(prefix);
    let mut v: Vec<(String, u64)> = rt
        .block_on(os.list(Some(&p)).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect();
    v.sort();
    v
}

#[test]
fn creation_race_has_exactly_one_winner() {
    let os = memory();
    let (a, b) = (machine(&os), machine(&os));
    for round in 0..8 {
        let id = format!("race-{round}");
        let results = common::race(vec![&a, &b], |m| m.store.create_run(&id).and_then(|w| w.finish(0)));
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(Error::RunExists { .. }))), "{results:?}");
    }
    // Both machines list every run.
    assert_eq!(b.store.runs().unwrap().len(), 8);
    assert_eq!(a.store.runs().unwrap().len(), 8);
}

#[test]
fn fork_from_another_machine_is_copy_free() {
    let os = memory();
    let (a, b) = (machine(&os), machine(&os));
    write_rows(&a.store, "parent", 2000);
    let parent_objects = keys(&os, "team/a/runs/parent");
    assert!(parent_objects.iter().filter(|(k, _)| k.ends_with(".seg")).count() > 3, "{parent_objects:?}");

    let w = b.store.fork("child", &ForkPoint::new("parent", 999)).unwrap();
    w.finish(0).unwrap();
    b.remote.sync().unwrap();
    let child = keys(&os, "team/a/runs/child");
    assert_eq!(child.iter().filter(|(k, _)| k.ends_with(".head")).count(), 1, "{child:?}");
    // The child's own files hold headers only: no byte of the parent's segments was copied.
    let child_bytes: u64 = child.iter().map(|(_, n)| n).sum();
    let parent_bytes: u64 = parent_objects.iter().map(|(_, n)| n).sum();
    assert!(child_bytes < 2048 && child_bytes * 20 < parent_bytes, "child {child_bytes} B, parent {parent_bytes} B");
    assert_eq!(keys(&os, "team/a/runs/parent"), parent_objects, "the parent is untouched");

    // A third machine (cold cache) reads the fork; A reads it too.
    let c = machine(&os);
    assert_eq!(steps(&c.store, "child"), (0..1000).collect::<Vec<_>>());
    assert_eq!(steps(&a.store, "child"), (0..1000).collect::<Vec<_>>());
    assert!(c.remote.stats().downloads > 0);
}

#[test]
fn reader_on_another_machine_sees_sealed_segments_while_writing() {
    let os = memory();
    common::reader_while_writing(&machine(&os), &machine(&os), Duration::from_secs(10), Duration::from_millis(20));
}

#[test]
fn one_writer_per_run_across_machines_and_resume_elsewhere() {
    let os = memory();
    let (a, b) = (machine(&os), machine(&os));
    let mut w = a.store.create_run("r").unwrap();
    w.log_floats(&[("x", 1.0)]).unwrap();
    // The lease is renewed while A writes, well past its duration.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(keys(&os, "team/a/leases").len(), 1);
    assert!(matches!(b.store.resume("r"), Err(Error::RunBusy { .. })));
    for _ in 0..300 {
        w.log_floats(&[("x", 2.0)]).unwrap();
    }
    w.finish(0).unwrap();
    // A finished: B resumes the run and appends.
    let mut wb = b.store.resume("r").unwrap();
    assert_eq!(wb.next_step(), 301);
    for _ in 0..200 {
        wb.log_floats(&[("x", 3.0)]).unwrap();
    }
    assert!(matches!(a.store.resume("r"), Err(Error::RunBusy { .. })));
    wb.finish(0).unwrap();
    assert_eq!(steps(&a.store, "r"), (0..501).collect::<Vec<_>>());
    let mut wa = a.store.resume("r").unwrap();
    wa.log_floats(&[("x", 4.0)]).unwrap();
    wa.finish(0).unwrap();
    assert_eq!(steps(&b.store, "r"), (0..502).collect::<Vec<_>>());
}

#[test]
fn delete_and_gc_never_break_a_fork() {
    let os = memory();
    let (a, b) = (machine(&os), machine(&os));
    write_rows(&a.store, "p", 1200);
    b.store.fork("c", &ForkPoint::new("p", 600)).unwrap().finish(0).unwrap();
    a.store.delete_run("p").unwrap();
    a.store.gc().unwrap();
    b.store.gc().unwrap();
    // The fork's inherited segments stay.
    let fresh = machine(&os);
    assert_eq!(steps(&fresh.store, "c"), (0..601).collect::<Vec<_>>());
    assert!(fresh.store.runs().unwrap().iter().all(|r| r.id != "p"));
    // Once the fork goes too, gc removes everything of both.
    b.store.delete_run("c").unwrap();
    b.store.gc().unwrap();
    a.store.gc().unwrap();
    assert_eq!(keys(&os, "team/a/runs"), vec![]);
}

#[test]
fn a_corrupted_object_is_corrupt_naming_its_key() {
    let os = memory();
    let a = machine(&os);
    write_rows(&a.store, "r", 800);
    let key = Key::from("team/a/runs/r/v0-0.seg");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut bytes = rt.block_on(async { os.get(&key).await.unwrap().bytes().await.unwrap() }).to_vec();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    rt.block_on(os.put(&key, PutPayload::from(bytes))).unwrap();

    let b = machine(&os);
    let err = b.store.history("r").unwrap().find_map(|r| r.err()).expect("corruption found");
    let err = b.remote.name_object(err);
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("runs/r/v0-0.seg"), "{err}");
    let report = b.store.verify().unwrap();
    assert!(!report.is_clean());
    assert!(report.problems.iter().any(|p| b.remote.object_key(&p.file).as_deref() == Some("runs/r/v0-0.seg")));
}

/// An object store that fails the first `fail` puts (and the first `fail_gets` gets), records the order of
/// successful puts, and (with `copies` set) keeps a copy of everything it holds right after every segment put:
/// the states another machine can list in the middle of an upload.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn ObjectStore>,
    fail: AtomicU32,
    fail_gets: AtomicU32,
    log: Mutex<Vec<String>>,
    copies: Mutex<Option<Vec<Arc<dyn ObjectStore>>>>,
    /// Milliseconds each conditional update of a lease object takes (a slow store keeps renewals in flight).
    lease_delay_ms: AtomicU32,
    /// The keys of the GETs served (not `HEAD`s), in order.
    gets: Mutex<Vec<String>>,
    /// How many of the next GETs of a segment deliver three quarters of their body, then fail.
    cut_bodies: AtomicU32,
}

fn flaky() -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: memory(),
        fail: AtomicU32::new(0),
        fail_gets: AtomicU32::new(0),
        log: Mutex::new(Vec::new()),
        copies: Mutex::new(None),
        lease_delay_ms: AtomicU32::new(0),
        gets: Mutex::new(Vec::new()),
        cut_bodies: AtomicU32::new(0),
    })
}

impl Flaky {
    /// A copy of every object (when copies are kept and `location` is a segment).
    async fn copy_after(&self, location: &Key) -> object_store::Result<()> {
        if !location.as_ref().ends_with(".seg") || self.copies.lock().unwrap().is_none() {
            return Ok(());
        }
        let copy = InMemory::new();
        let metas: Vec<ObjectMeta> = self.inner.list(None).try_collect().await?;
        for m in metas {
            let bytes = self.inner.get(&m.location).await?.bytes().await?;
            copy.put(&m.location, bytes.into()).await?;
        }
        if let Some(c) = self.copies.lock().unwrap().as_mut() {
            c.push(Arc::new(copy));
        }
        Ok(())
    }
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flaky({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(&self, location: &Key, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        if !location.as_ref().contains("leases/")
            && self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
        {
            return Err(object_store::Error::Generic { store: "flaky", source: "injected failure".into() });
        }
        let delay = self.lease_delay_ms.load(Ordering::SeqCst);
        if delay > 0 && location.as_ref().contains("leases/") && matches!(opts.mode, PutMode::Update(_)) {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.log.lock().unwrap().push(location.to_string());
        self.copy_after(location).await?;
        Ok(r)
    }
    async fn put_multipart_opts(
        &self,
        location: &Key,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Key, options: GetOptions) -> object_store::Result<GetResult> {
        if !options.head
            && self.fail_gets.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
        {
            return Err(object_store::Error::Generic { store: "flaky", source: "injected get failure".into() });
        }
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        if head {
            return Ok(r);
        }
        self.gets.lock().unwrap().push(location.to_string());
        if !location.as_ref().ends_with(".seg")
            || self.cut_bodies.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err()
        {
            return Ok(r);
        }
        let (meta, range, attributes) = (r.meta.clone(), r.range.clone(), r.attributes.clone());
        let body = r.bytes().await?;
        let cut: Vec<object_store::Result<Bytes>> = vec![
            Ok(body.slice(..body.len() * 3 / 4)),
            Err(object_store::Error::Generic { store: "flaky", source: "connection reset mid-body".into() }),
        ];
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::iter(cut).boxed()),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Key>>,
    ) -> BoxStream<'static, object_store::Result<Key>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Key>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Key>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Key, to: &Key, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[test]
fn failed_uploads_are_retried_and_headers_follow_their_targets() {
    let flaky = flaky();
    let os: Arc<dyn ObjectStore> = flaky.clone();
    let a = machine(&os);
    let mut w = a.store.create_run("p").unwrap();
    flaky.fail.store(12, Ordering::SeqCst);
    for i in 0..1500 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    w.sync().unwrap();
    // A fork of the live run: its header is published only after the parent's data it points at.
    a.store.fork("f", &ForkPoint::new("p", 1400)).unwrap().finish(0).unwrap();
    w.finish(0).unwrap();
    a.remote.sync().unwrap();
    assert!(a.remote.stats().upload_retries >= 12, "{:?}", a.remote.stats());
    assert_eq!(a.remote.stats().upload_failures, 0);
    let log = flaky.log.lock().unwrap().clone();
    let head = log.iter().position(|k| k == "team/a/runs/f/v0.head").expect("fork header uploaded");
    for seg in 0..3 {
        let k = format!("team/a/runs/p/v0-{seg}.seg");
        let at = log.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k} uploaded: {log:?}"));
        assert!(at < head, "{k} uploaded after the fork's header");
    }
    let b = machine(&os);
    assert_eq!(steps(&b.store, "f"), (0..1401).collect::<Vec<_>>());
    assert_eq!(steps(&b.store, "p"), (0..1500).collect::<Vec<_>>());
}

#[test]
fn uploads_that_keep_failing_are_reported_and_publish_no_header() {
    let flaky = flaky();
    let os: Arc<dyn ObjectStore> = flaky.clone();
    let a = machine_with(&os, opts().retries(1).finish_waits(false));
    let mut w = a.store.create_run("p").unwrap();
    for i in 0..50 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    flaky.fail.store(1000, Ordering::SeqCst);
    w.finish(0).unwrap();
    // The parent's data cannot be uploaded: a fork pointing at it is refused, no header published.
    assert!(a.store.fork("f", &ForkPoint::new("p", 20)).is_err());
    assert!(matches!(a.remote.sync(), Err(forklog_remote::Error::Upload { .. })));
    assert!(!flaky.log.lock().unwrap().iter().any(|k| k.contains("runs/f/")));
    // The store comes back: everything is uploaded, and the fork works.
    flaky.fail.store(0, Ordering::SeqCst);
    a.remote.sync().unwrap();
    a.store.fork("f", &ForkPoint::new("p", 20)).unwrap().finish(0).unwrap();
    let b = machine(&os);
    assert_eq!(steps(&b.store, "f"), (0..21).collect::<Vec<_>>());
}

#[test]
fn the_cache_stays_under_its_limit() {
    let os = memory();
    let a = machine(&os);
    write_rows(&a.store, "big", 5000);
    let b = machine_with(&os, opts().cache_limit(16 << 10));
    assert_eq!(steps(&b.store, "big").len(), 5000);
    let s = b.remote.stats();
    assert!(s.evictions > 0 && s.cached_bytes <= 16 << 10, "{s:?}");
    assert_eq!(steps(&b.store, "big").len(), 5000);
}

/// Options with 1 MiB segments (fetched block by block when read) and a quick lease.
fn big_opts() -> RemoteOptions {
    RemoteOptions::default()
        .lease(Duration::from_millis(600))
        .store_options(Options::default().segment_size(1 << 20).sync(SyncPolicy::Never))
}

/// Writes `rows` rows of two columns in a few calls (about 20 bytes a row).
fn write_columns(store: &Store, id: &str, rows: u64) {
    let mut w = store.create_run(id).unwrap();
    let steps: Vec<u64> = (0..rows).collect();
    let loss: Vec<f64> = (0..rows).map(|i| 1.0 / (1.0 + i as f64)).collect();
    let acc: Vec<f64> = (0..rows).map(|i| (i % 1000) as f64).collect();
    for at in (0..rows as usize).step_by(16384) {
        let end = (at + 16384).min(rows as usize);
        w.log_columns(&steps[at..end], &[("loss", &loss[at..end]), ("acc", &acc[at..end])]).unwrap();
    }
    w.finish(0).unwrap();
}

/// Sizes of the objects under `prefix` whose names end with `suffix`.
fn sizes(os: &Arc<dyn ObjectStore>, prefix: &str, suffix: &str) -> Vec<u64> {
    keys(os, prefix).into_iter().filter(|(k, _)| k.ends_with(suffix)).map(|(_, n)| n).collect()
}

#[test]
fn a_cold_fork_fetches_only_blocks_near_its_pointer() {
    let os = memory();
    let a = machine_with(&os, big_opts());
    write_columns(&a.store, "p", 200_000);
    let segs = sizes(&os, "team/a/runs/p", ".seg");
    let total: u64 = sizes(&os, "team/a/runs/p", "").iter().sum();
    assert!(segs.len() >= 3 && segs[..segs.len() - 1].iter().all(|&n| n > 512 << 10), "{segs:?}");

    let b = machine_with(&os, big_opts());
    b.store.fork("c", &ForkPoint::new("p", 123_456)).unwrap().finish(0).unwrap();
    let fetched = b.remote.stats().downloaded_bytes;
    assert!(fetched > 0 && fetched * 2 < total, "fetched {fetched} of {total} bytes");
    // No segment sits in the cache whole: the blocks read wait in partial files.
    let cached: Vec<String> = std::fs::read_dir(b.remote.cache_dir().join("runs/p"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let last = format!("v0-{}.seg", segs.len() - 1);
    assert!(!cached.iter().any(|n| n.ends_with(".seg") && *n != last), "{cached:?}");

    // The fork reads right from anywhere, and so does the parent (replayed through the same partial files).
    let c = machine_with(&os, big_opts());
    assert_eq!(steps(&c.store, "c"), (0..=123_456).collect::<Vec<_>>());
    assert_eq!(steps(&b.store, "c"), (0..=123_456).collect::<Vec<_>>());
    assert_eq!(steps(&b.store, "p"), (0..200_000).collect::<Vec<_>>());
    // Read front to back, every segment is complete in the cache now, and a second replay fetches nothing.
    for (i, n) in segs.iter().enumerate() {
        let path = b.remote.cache_dir().join(format!("runs/p/v0-{i}.seg"));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(*n), "{}", path.display());
    }
    let before = b.remote.stats().downloaded_bytes;
    assert_eq!(steps(&b.store, "p").len(), 200_000);
    assert_eq!(b.remote.stats().downloaded_bytes, before);
    assert!(b.store.verify().unwrap().is_clean());
}

#[test]
fn readers_sharing_a_cold_segment_see_the_same_rows() {
    let os = memory();
    let a = machine_with(&os, big_opts());
    write_columns(&a.store, "p", 150_000);
    let b = machine_with(&os, big_opts());
    // Two readers at once on an empty cache: they share the partial files and wait for each other's blocks.
    let results = common::race(vec![&b, &b, &b], |m| steps(&m.store, "p"));
    for got in results {
        assert_eq!(got, (0..150_000).collect::<Vec<_>>());
    }
    let fork = b.store.fork("f", &ForkPoint::new("p", 77_777)).unwrap();
    fork.finish(0).unwrap();
    assert_eq!(steps(&b.store, "f").len(), 77_778);
}

#[test]
fn a_fetch_cut_short_leaves_no_cache_file_that_looks_complete() {
    let flaky = flaky();
    let os: Arc<dyn ObjectStore> = flaky.clone();
    // 4 MiB segments: a fork's position lookup fetches a small part of one.
    let opts = || big_opts().store_options(Options::default().segment_size(4 << 20).sync(SyncPolicy::Never));
    let a = machine_with(&os, opts());
    write_columns(&a.store, "p", 250_000);
    let seg0 = sizes(&os, "team/a/runs/p", "v0-0.seg")[0];
    assert!(seg0 > 3 << 20, "{seg0}");

    let dir = tempfile::tempdir().unwrap();
    let seg_path = dir.path().join("runs/p/v0-0.seg");
    let leftovers = dir.path().join(".forklog-partial");
    {
        let (store, remote) =
            forklog_remote::open_object_store(os.clone(), "team/a", dir.path(), opts().retries(0)).unwrap();
        // Every GET fails: the fork fails (and publishes nothing).
        flaky.fail_gets.store(u32::MAX, Ordering::SeqCst);
        assert!(store.fork("c", &ForkPoint::new("p", 100_000)).is_err());
        // The GETs come back: the fork fetches the blocks near its pointer, no more.
        flaky.fail_gets.store(0, Ordering::SeqCst);
        store.fork("c", &ForkPoint::new("p", 100_000)).unwrap().finish(0).unwrap();
        assert!(remote.stats().downloaded_bytes < seg0, "{:?}", remote.stats());
        // A read that fails mid-segment: an error, and the blocks it needed are still missing.
        flaky.fail_gets.store(u32::MAX, Ordering::SeqCst);
        let replay = store.history("p").map(|h| h.map(|r| r.map(|_| ())).collect::<Result<Vec<_>, _>>());
        assert!(!matches!(replay, Ok(Ok(_))), "the replay failed");
        // The process "crashes" here (store and remote dropped without finishing anything).
    }
    // The segment never appeared in the run's cache directory: its blocks wait in a partial file.
    assert!(!seg_path.exists(), "an incomplete segment in the cache");
    assert!(std::fs::read_dir(&leftovers).unwrap().count() > 0);
    // A partial file of the crashed process, full length and all zeros, is never taken for the segment.
    std::fs::write(leftovers.join("0123456789abcdef"), vec![0u8; seg0 as usize]).unwrap();

    flaky.fail_gets.store(0, Ordering::SeqCst);
    let (store, remote) = forklog_remote::open_object_store(os.clone(), "team/a", dir.path(), opts()).unwrap();
    assert!(!leftovers.exists(), "the next process drops partial files");
    assert_eq!(steps(&store, "p"), (0..250_000).collect::<Vec<_>>());
    assert_eq!(steps(&store, "c"), (0..=100_000).collect::<Vec<_>>());
    assert!(store.verify().unwrap().is_clean());
    assert!(remote.stats().downloaded_bytes >= seg0);
    assert_eq!(std::fs::metadata(&seg_path).unwrap().len(), seg0);
}

#[test]
fn a_corrupted_block_is_corrupt_naming_its_key() {
    let os = memory();
    let a = machine_with(&os, big_opts());
    write_columns(&a.store, "r", 100_000);
    let key = Key::from("team/a/runs/r/v0-1.seg");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut bytes = rt.block_on(async { os.get(&key).await.unwrap().bytes().await.unwrap() }).to_vec();
    // A byte in the middle of the segment: inside a block fetched on its own.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    rt.block_on(os.put(&key, PutPayload::from(bytes))).unwrap();

    let b = machine_with(&os, big_opts());
    let err = b.store.history("r").unwrap().find_map(|r| r.err()).expect("corruption found");
    let err = b.remote.name_object(err);
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("runs/r/v0-1.seg"), "{err}");
    let c = machine_with(&os, big_opts());
    let report = c.store.verify().unwrap();
    assert!(report.problems.iter().any(|p| c.remote.object_key(&p.file).as_deref() == Some("runs/r/v0-1.seg")));
}

#[test]
fn partial_files_count_in_the_cache_limit() {
    let os = memory();
    let a = machine_with(&os, big_opts());
    write_columns(&a.store, "big", 200_000);
    let limit = 2560 << 10;
    let b = machine_with(&os, big_opts().cache_limit(limit));
    // Forks from all over the run leave partial files; replays complete and evict them.
    for (i, step) in [10_000u64, 60_000, 110_000, 160_000, 190_000].into_iter().enumerate() {
        b.store.fork(&format!("f{i}"), &ForkPoint::new("big", step)).unwrap().finish(0).unwrap();
        assert!(b.remote.stats().cached_bytes <= limit, "{:?}", b.remote.stats());
    }
    assert_eq!(steps(&b.store, "big"), (0..200_000).collect::<Vec<_>>());
    let s = b.remote.stats();
    assert!(s.evictions > 0 && s.cached_bytes <= limit, "{s:?}");
    assert_eq!(steps(&b.store, "f3"), (0..=160_000).collect::<Vec<_>>());
}

/// The objects of the run `p` and their total size.
fn run_bytes(os: &Arc<dyn ObjectStore>) -> u64 {
    sizes(os, "team/a/runs/p", "").iter().sum()
}

/// A flaky store holding run `p` (200,000 rows in 1 MiB segments), written by a machine that stays open.
fn flaky_with_run() -> (Arc<Flaky>, Arc<dyn ObjectStore>, Machine) {
    let flaky = flaky();
    let os: Arc<dyn ObjectStore> = flaky.clone();
    let a = machine_with(&os, big_opts());
    write_columns(&a.store, "p", 200_000);
    (flaky, os, a)
}

#[test]
fn a_cold_replay_fetches_each_segment_whole_with_one_request() {
    let (flaky, os, _a) = flaky_with_run();
    let segs = sizes(&os, "team/a/runs/p", ".seg").len();
    assert!(segs >= 3, "{segs} segments");

    let b = machine_with(&os, big_opts());
    flaky.gets.lock().unwrap().clear();
    assert_eq!(steps(&b.store, "p"), (0..200_000).collect::<Vec<_>>());
    // The replay names its segments up front (`Vfs::will_read`): each is fetched ahead, whole, in one request,
    // the active one (read in chunks, not mapped) too.
    let gets = flaky.gets.lock().unwrap().clone();
    for i in 0..segs {
        let key = format!("team/a/runs/p/v0-{i}.seg");
        assert_eq!(gets.iter().filter(|k| **k == key).count(), 1, "{key} in {gets:?}");
    }
    // Every byte was fetched once.
    assert!(b.remote.stats().downloaded_bytes <= run_bytes(&os), "{:?}", b.remote.stats());
    assert!(b.store.verify().unwrap().is_clean());
}

#[test]
fn a_body_cut_mid_transfer_is_fetched_again_from_where_it_stopped() {
    let (flaky, os, _a) = flaky_with_run();
    let b = machine_with(&os, big_opts());
    // The read-ahead's first two segment downloads break off after three quarters of their bytes.
    flaky.cut_bodies.store(2, Ordering::SeqCst);
    assert_eq!(steps(&b.store, "p"), (0..200_000).collect::<Vec<_>>());
    assert_eq!(flaky.cut_bodies.load(Ordering::SeqCst), 0, "two bodies were cut");
    // The blocks that arrived whole were kept: only the rest was asked for again (from the block the body broke
    // off in, 256 KiB at most, fetched twice).
    assert!(b.remote.stats().downloaded_bytes <= run_bytes(&os) + 2 * (256 << 10), "{:?}", b.remote.stats());
    for (i, n) in sizes(&os, "team/a/runs/p", ".seg").into_iter().enumerate() {
        let path = b.remote.cache_dir().join(format!("runs/p/v0-{i}.seg"));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(n), "{}", path.display());
    }
    assert!(b.store.verify().unwrap().is_clean());
    let c = machine_with(&os, big_opts());
    assert_eq!(steps(&c.store, "p"), (0..200_000).collect::<Vec<_>>());
}

#[test]
fn a_run_creator_holds_the_lease_from_the_start() {
    let os = memory();
    let (a, b) = (machine(&os), machine(&os));
    for round in 0..6 {
        let id = format!("lease-{round}");
        // The header's conditional create and the lease go out together; the loser lets its lease go.
        let mut results = common::race(vec![&a, &b], |m| m.store.create_run(&id).map(|w| (m, w)));
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        let winner = results.iter().position(|r| r.is_ok()).unwrap();
        let (owner, mut w) = results.swap_remove(winner).unwrap();
        let other = if std::ptr::eq(owner, &a) { &b } else { &a };
        w.log_floats(&[("x", 1.0)]).unwrap();
        // The winner writes under the lease: the other machine's writer is refused.
        assert!(matches!(other.store.resume(&id), Err(Error::RunBusy { .. })), "round {round}");
        w.finish(0).unwrap();
        // Once it finished, the other machine takes the run at once (the loser's lease was let go).
        let mut w2 = other.store.resume(&id).unwrap();
        assert_eq!(w2.next_step(), 1);
        w2.log_floats(&[("x", 2.0)]).unwrap();
        w2.finish(0).unwrap();
        assert_eq!(steps(&owner.store, &id), vec![0, 1]);
    }
}

#[test]
fn a_run_deleted_and_created_again_is_not_read_from_old_partial_files() {
    let os = memory();
    let a = machine_with(&os, big_opts());
    write_columns(&a.store, "r", 200_000);
    let b = machine_with(&os, big_opts());
    // B's fork leaves partial files of r's segments.
    b.store.fork("f", &ForkPoint::new("r", 150_000)).unwrap().finish(0).unwrap();
    b.store.delete_run("f").unwrap();
    b.store.delete_run("r").unwrap();
    b.store.gc().unwrap();
    // r again, written by another machine, with other values in segments of the same names.
    let d = machine_with(&os, big_opts());
    let mut w = d.store.create_run("r").unwrap();
    let steps: Vec<u64> = (0..200_000).collect();
    let v: Vec<f64> = (0..200_000).map(|i| -(i as f64)).collect();
    w.log_columns(&steps, &[("loss", &v), ("acc", &v)]).unwrap();
    w.finish(0).unwrap();
    let fork = b.store.fork("g", &ForkPoint::new("r", 150_000)).unwrap();
    fork.finish(0).unwrap();
    // Every value is the new run's, through B's cache and a fresh one.
    let c = machine_with(&os, big_opts());
    for (m, id) in [(&b, "g"), (&b, "r"), (&c, "r")] {
        let mut n = 0u64;
        for row in m.store.history(id).unwrap() {
            let row = row.unwrap();
            assert_eq!(row.metrics.get("loss"), Some(&forklog::Value::Float(-(row.step as f64))), "{id}");
            n += 1;
        }
        assert_eq!(n, if id == "g" { 150_001 } else { 200_000 });
    }
    assert!(c.store.verify().unwrap().is_clean());
    assert!(b.store.verify().unwrap().is_clean());
}

/// The key table goes up before the segments whose frames name its keys: in every state of the bucket right
/// after a segment upload, another machine replays the run without meeting a key the table lacks (each segment
/// here brings new keys, and the writer keeps writing while the uploads run).
#[test]
fn a_segment_never_reaches_the_store_before_the_keys_it_names() {
    let snaps = flaky();
    *snaps.copies.lock().unwrap() = Some(Vec::new());
    let os: Arc<dyn ObjectStore> = snaps.clone();
    let a = machine(&os);
    let mut w = a.store.create_run("p").unwrap();
    for i in 0..1200u64 {
        let key = format!("k{}", i / 40);
        w.log_floats(&[("loss", i as f64), (key.as_str(), 1.0)]).unwrap();
        if i % 300 == 299 {
            w.sync().unwrap();
        }
    }
    w.finish(0).unwrap();
    a.remote.sync().unwrap();
    let copies = snaps.copies.lock().unwrap().clone().unwrap_or_default();
    assert!(copies.len() >= 5, "only {} segment uploads", copies.len());
    for (n, copy) in copies.iter().enumerate() {
        let b = machine(copy);
        let rows: Vec<forklog::LogRow> = b.store.history("p").unwrap().map(|r| r.unwrap()).collect();
        let steps: Vec<u64> = rows.iter().map(|r| r.step).collect();
        assert_eq!(steps, (0..steps.len() as u64).collect::<Vec<_>>(), "state {n}");
        for r in &rows {
            let want = format!("k{}", r.step / 40);
            assert!(r.metrics.contains_key(want.as_str()), "state {n}: step {} lacks {want}", r.step);
        }
    }
    let b = machine(&os);
    assert_eq!(steps(&b.store, "p"), (0..1200).collect::<Vec<_>>());
}

/// A writer that finishes while a renewal of its lease is in flight still lets the lease go (the renewal moved
/// the lease's ETag): the next machine's writer takes the run at once, round after round.
#[test]
fn a_lease_renewed_while_its_writer_finishes_is_let_go() {
    let slow = flaky();
    // Renewed every 200 ms, each conditional update of the lease taking 60 ms.
    slow.lease_delay_ms.store(60, Ordering::SeqCst);
    let os: Arc<dyn ObjectStore> = slow.clone();
    let a = machine_with(&os, opts().lease(Duration::from_millis(600)));
    let b = machine_with(&os, opts().lease(Duration::from_millis(600)));
    let mut busy = Vec::new();
    for round in 0..10u64 {
        let id = format!("r{round}");
        let mut w = a.store.create_run(&id).unwrap();
        w.log_floats(&[("x", 1.0)]).unwrap();
        // Finish at another moment of the renewal period each round, some while the renewal is in flight.
        std::thread::sleep(Duration::from_millis(150 + 23 * round));
        w.finish(0).unwrap();
        match b.store.resume(&id) {
            Ok(w) => w.finish(0).unwrap(),
            Err(Error::RunBusy { .. }) => busy.push(round),
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    assert!(busy.is_empty(), "the lease was still held after its writer finished in rounds {busy:?}");
}

#[test]
fn a_run_another_machine_deleted_and_created_again_is_not_read_from_the_old_cache() {
    let os = memory();
    let a = machine(&os);
    write_rows(&a.store, "r", 3000);
    // B reads r whole: every file of it is in B's cache.
    let b = machine(&os);
    assert_eq!(steps(&b.store, "r").len(), 3000);
    // A deletes r and writes another r: same file names, other bytes (the loss is negative now).
    a.store.delete_run("r").unwrap();
    a.store.gc().unwrap();
    let mut w = a.store.create_run("r").unwrap();
    for i in 0..2000 {
        w.log_floats(&[("loss", -(i as f64)), ("acc", 0.25)]).unwrap();
    }
    w.finish(0).unwrap();
    a.remote.sync().unwrap();
    // Once B's listing of r is older than a second, B lists again and sees the new run, not its old copy.
    std::thread::sleep(Duration::from_millis(1100));
    let rows: Vec<(u64, Option<forklog::Value>)> =
        b.store.history("r").unwrap().map(|r| r.unwrap()).map(|r| (r.step, r.metrics.get("loss").cloned())).collect();
    assert_eq!(rows.len(), 2000);
    for (step, loss) in rows {
        assert_eq!(loss, Some(forklog::Value::Float(-(step as f64))), "step {step}");
    }
    b.store.fork("f", &ForkPoint::new("r", 1500)).unwrap().finish(0).unwrap();
    assert_eq!(steps(&b.store, "f"), (0..=1500).collect::<Vec<_>>());
    assert!(b.store.verify().unwrap().is_clean());
}

#[test]
fn a_cached_run_another_machine_deleted_is_gone_here_too_even_after_a_restart() {
    let os = memory();
    let a = machine(&os);
    write_rows(&a.store, "r", 1000);
    write_rows(&a.store, "s", 1000);
    // B's process copies both runs whole into its cache, then ends.
    let dir = tempfile::tempdir().unwrap();
    {
        let (b, _remote) = forklog_remote::open_object_store(os.clone(), "team/a", dir.path(), opts()).unwrap();
        assert_eq!(steps(&b, "r").len(), 1000);
        assert_eq!(steps(&b, "s").len(), 1000);
    }
    // A deletes r, and deletes s and writes another s.
    for id in ["r", "s"] {
        a.store.delete_run(id).unwrap();
    }
    a.store.gc().unwrap();
    let mut w = a.store.create_run("s").unwrap();
    for i in 0..700 {
        w.log_floats(&[("loss", -(i as f64))]).unwrap();
    }
    w.finish(0).unwrap();
    a.remote.sync().unwrap();
    // B's next process finds its copies stale (their headers' ETags are unknown to it: it compares bytes).
    let (b, remote) = forklog_remote::open_object_store(os.clone(), "team/a", dir.path(), opts()).unwrap();
    assert!(matches!(b.history("r").map(|h| h.count()), Err(Error::RunNotFound { .. })));
    let ids: Vec<String> = b.runs().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["s".to_string()]);
    let rows: Vec<forklog::LogRow> = b.history("s").unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 700);
    assert!(rows.iter().all(|r| r.metrics.get("loss") == Some(&forklog::Value::Float(-(r.step as f64)))));
    assert!(!dir.path().join("runs/r/v0.head").exists(), "the stale copy is dropped");
    assert!(b.verify().unwrap().is_clean());
    drop(remote);
}
