//! Against a real S3 server process: moto (`moto_server`, PyPI `moto[server]`), started on a free port of
//! 127.0.0.1 from the binary named by `FORKLOG_MOTO_SERVER` (./test.sh sets it) and killed at the end.
//! Two "machines" race creates and forks, a reader follows a writer, a writer process is SIGKILLed mid-upload
//! and its run reopened, and the server is stopped (SIGSTOP) and resumed (SIGCONT) mid-run.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use forklog::{Error, ForkPoint, Options, Store, SyncPolicy};
use forklog_remote::testing::MotoServer;
use forklog_remote::RemoteOptions;

mod common;

use common::{steps, Machine};

/// The server of this test binary, or `None` (the tests then skip, loudly) when `FORKLOG_MOTO_SERVER` is unset.
fn server() -> Option<&'static MotoServer> {
    static SERVER: OnceLock<Option<MotoServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let Some(bin) = MotoServer::binary() else {
                eprintln!(
                    "\n*** SKIPPED: FORKLOG_MOTO_SERVER is not set, so the S3 tests do not run. ./test.sh installs \
                     moto[server] and sets it. ***\n"
                );
                return None;
            };
            let s = MotoServer::start(&bin).unwrap_or_else(|e| panic!("starting {bin}: {e}"));
            for (k, v) in s.env() {
                // Set once, before any test thread reads them (inside this OnceLock's initialisation).
                std::env::set_var(k, v);
            }
            Some(s)
        })
        .as_ref()
}

/// A fresh bucket for one test.
fn bucket(s: &MotoServer) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    s.create_bucket(&name).unwrap();
    name
}

fn opts() -> RemoteOptions {
    RemoteOptions::default()
        .lease(Duration::from_secs(1))
        .store_options(Options::default().segment_size(4096).buffer_size(512).sync(SyncPolicy::Never))
}

fn machine(url: &str) -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let (store, remote) = forklog_remote::open(url, dir.path(), opts()).unwrap();
    Machine { _dir: dir, store, remote }
}

#[test]
fn two_machines_race_creates_and_forks() {
    let Some(s) = server() else { return };
    let url = format!("s3://{}/team", bucket(s));
    let (a, b) = (machine(&url), machine(&url));
    for round in 0..6 {
        let id = format!("race-{round}");
        let results = common::race(vec![&a, &b], |m| m.store.create_run(&id).and_then(|w| w.finish(0)));
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(Error::RunExists { .. }))), "{results:?}");
    }
    // Both fork one parent under the same new id at once: one fork wins.
    let mut w = a.store.create_run("parent").unwrap();
    for i in 0..600 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    w.finish(0).unwrap();
    let results = common::race(vec![(&a, 100u64), (&b, 200u64)], |(m, step)| {
        m.store.fork("child", &ForkPoint::new("parent", step)).and_then(|w| w.finish(0))
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let c = machine(&url);
    let got = steps(&c.store, "child");
    assert!(got == (0..101).collect::<Vec<_>>() || got == (0..201).collect::<Vec<_>>(), "{} rows", got.len());
    assert_eq!(steps(&c.store, "parent").len(), 600);
    assert_eq!(c.store.runs().unwrap().len(), 8);
}

#[test]
fn reader_on_b_while_a_writes() {
    let Some(s) = server() else { return };
    let url = format!("s3://{}/team", bucket(s));
    common::reader_while_writing(&machine(&url), &machine(&url), Duration::from_secs(20), Duration::from_millis(50));
}

/// The writer process of `sigkill_mid_upload_then_reopen` (runs only when its variables are set): logs rows
/// to run `k` until it is killed.
#[test]
fn child_writer() {
    let (Ok(url), Ok(cache)) = (std::env::var("FORKLOG_CHILD_URL"), std::env::var("FORKLOG_CHILD_CACHE")) else {
        return;
    };
    let (store, _remote) = forklog_remote::open(&url, &cache, opts()).unwrap();
    let mut w = store.create_run("k").unwrap();
    for i in 0u64.. {
        w.log_floats(&[("x", i as f64)]).unwrap();
        if i % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn sigkill_mid_upload_then_reopen() {
    let Some(s) = server() else { return };
    let url = format!("s3://{}/team", bucket(s));
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("FORKLOG_CHILD_URL", &url)
        .env("FORKLOG_CHILD_CACHE", cache.path())
        .envs(s.env())
        .spawn()
        .unwrap();
    // Kill it once several sealed segments are in the bucket (uploads are then under way).
    let watcher = machine(&url);
    let deadline = Instant::now() + Duration::from_secs(60);
    while steps_or_empty(&watcher.store, "k").len() < 2000 {
        assert!(Instant::now() < deadline, "the writer process uploaded nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Reopen on the same cache: once the dead writer's lease expires the run resumes, and finishing it
    // uploads everything the killed process left behind.
    let (store, remote) = forklog_remote::open(&url, cache.path(), opts()).unwrap();
    let local = steps(&store, "k");
    assert_eq!(local, (0..local.len() as u64).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut w = loop {
        match store.resume("k") {
            Ok(w) => break w,
            Err(Error::RunBusy { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("resume: {e}"),
        }
    };
    let next = w.next_step();
    for i in 0..50 {
        w.log_floats(&[("x", (next + i) as f64)]).unwrap();
    }
    w.finish(0).unwrap();
    remote.sync().unwrap();
    let total = next + 50;
    let fresh = machine(&url);
    assert_eq!(steps(&fresh.store, "k"), (0..total).collect::<Vec<_>>());
    assert!(fresh.store.verify().unwrap().is_clean());
}

fn steps_or_empty(store: &Store, id: &str) -> Vec<u64> {
    match store.history(id) {
        Ok(h) => h.filter_map(|r| r.ok()).map(|r| r.step).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn server_stopped_and_resumed_mid_run() {
    if server().is_none() {
        return;
    }
    // A server of its own: stopping the shared one would stall the other tests (and their leases).
    let Some(bin) = MotoServer::binary() else { return };
    let s = MotoServer::start(bin).unwrap();
    s.create_bucket("paused").unwrap();
    let s3: Arc<dyn forklog_remote::object_store::ObjectStore> = Arc::new(
        forklog_remote::object_store::aws::AmazonS3Builder::new()
            .with_endpoint(s.endpoint())
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .with_bucket_name("paused")
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap(),
    );
    let open = || {
        let dir = tempfile::tempdir().unwrap();
        let (store, remote) = forklog_remote::open_object_store(s3.clone(), "team", dir.path(), opts()).unwrap();
        Machine { _dir: dir, store, remote }
    };
    let a = open();
    let mut w = a.store.create_run("p").unwrap();
    for i in 0..500 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    s.pause().unwrap();
    // Writes keep going locally while the server is stopped (sealed segments queue up).
    let started = Instant::now();
    for i in 500..2000 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    let writing = started.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    s.resume().unwrap();
    assert!(writing < Duration::from_secs(5), "writes waited for the server: {writing:?}");
    w.finish(0).unwrap();
    a.remote.sync().unwrap();
    let b = open();
    assert_eq!(steps(&b.store, "p"), (0..2000).collect::<Vec<_>>());
}

#[test]
fn cold_fork_and_replay_fetch_blocks_of_large_segments() {
    let Some(s) = server() else { return };
    let url = format!("s3://{}/team", bucket(s));
    let big = || {
        RemoteOptions::default()
            .lease(Duration::from_secs(1))
            .store_options(Options::default().segment_size(4 << 20).sync(SyncPolicy::Never))
    };
    let open = || {
        let dir = tempfile::tempdir().unwrap();
        let (store, remote) = forklog_remote::open(&url, dir.path(), big()).unwrap();
        Machine { _dir: dir, store, remote }
    };
    let a = open();
    let rows = 600_000u64;
    let mut w = a.store.create_run("p").unwrap();
    let steps_col: Vec<u64> = (0..rows).collect();
    let loss: Vec<f64> = (0..rows).map(|i| 1.0 / (1.0 + i as f64)).collect();
    for at in (0..rows as usize).step_by(100_000) {
        w.log_columns(&steps_col[at..at + 100_000], &[("loss", &loss[at..at + 100_000])]).unwrap();
    }
    w.finish(0).unwrap();
    let uploaded = a.remote.stats().uploaded_bytes;

    // B forks cold: it fetches the blocks near the pointer, a small part of the parent.
    let b = open();
    b.store.fork("c", &ForkPoint::new("p", 450_000)).unwrap().finish(0).unwrap();
    let fetched = b.remote.stats().downloaded_bytes;
    assert!(fetched > 0 && fetched * 2 < uploaded, "fetched {fetched} of {uploaded} bytes");
    // C replays both cold (read-ahead over HTTP), B the parent through its partial files.
    let c = open();
    assert_eq!(steps(&c.store, "c"), (0..=450_000).collect::<Vec<_>>());
    assert_eq!(steps(&c.store, "p"), (0..rows).collect::<Vec<_>>());
    assert_eq!(steps(&b.store, "p"), (0..rows).collect::<Vec<_>>());
    assert!(c.store.verify().unwrap().is_clean());
    // The creator of the fork held its lease from the start: another machine's writer was refused meanwhile,
    // and gets the run once the fork's writer finished.
    let w = b.store.fork("d", &ForkPoint::new("p", 10)).unwrap();
    assert!(matches!(c.store.resume("d"), Err(Error::RunBusy { .. })));
    w.finish(0).unwrap();
    c.store.resume("d").unwrap().finish(0).unwrap();
}
