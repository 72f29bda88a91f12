//! Creating runs and forks: a run appears whole or not at all, whatever a crash interrupts; one creator wins a
//! contested id; leftovers of interrupted creations (this version's `<id>~new<hex>` directories, or an older
//! version's header-less run directories) are ignored by reads, never called corrupt, and removed or replaced;
//! and a fork pins only parent bytes that are durable, even when this process remembers having synced part of
//! the parent's segment and another handle (another process) appended more since.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use forklog::testing::faultfs::{CrashMode, FaultFs};
use forklog::vfs::Vfs;
use forklog::{metrics, Error, ForkPoint, Options, Store, SyncPolicy};

fn opts(fs: &Arc<FaultFs>, policy: SyncPolicy) -> Options {
    Options::default().vfs(fs.clone()).sync(policy)
}

fn steps(store: &Store, run: &str) -> Vec<u64> {
    store.history(run).expect("history").map(|r| r.expect("row").step).collect()
}

fn runs_dir() -> PathBuf {
    FaultFs::store_path().join("runs")
}

/// Names in `runs/` that are not runs (creations in progress or interrupted, directories on their way out).
fn leftovers(vfs: &dyn Vfs, runs: &Path) -> Vec<String> {
    vfs.read_dir(runs).expect("list runs").into_iter().filter(|n| n.contains('~')).collect()
}

/// Store A remembers which parent bytes it synced; store B (another process, with its own memory) appends to
/// the parent without syncing. A fork at or below what A synced needs no sync; one beyond it must sync.
#[test]
fn a_fork_past_what_this_process_synced_syncs_the_parent_again() {
    let fs = FaultFs::new();
    let seg = runs_dir().join("p").join("v0-0.seg");
    let a = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("open a");
    {
        let b = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("open b");
        let mut w = b.create_run("p").expect("create");
        for i in 0..10 {
            w.log(metrics! { "x" => i as f64 }).expect("log");
        }
    }
    assert!(fs.has_unsynced(&seg).expect("segment"), "the parent's rows are not synced yet");
    drop(a.fork("c1", &ForkPoint::new("p", 5)).expect("fork c1"));
    assert!(!fs.has_unsynced(&seg).expect("segment"), "the fork synced the bytes it pins");
    {
        // Another process appends ten more rows without syncing them.
        let b = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("open b");
        let mut w = b.resume("p").expect("resume");
        for i in 10..20 {
            w.log(metrics! { "x" => i as f64 }).expect("log");
        }
    }
    assert!(fs.has_unsynced(&seg).expect("segment"));
    // At or below what A synced: nothing of the parent to sync (only the fork's own header).
    let before = fs.counters().syncs;
    drop(a.fork("c2", &ForkPoint::new("p", 3)).expect("fork c2"));
    assert_eq!(fs.counters().syncs - before, 1, "only the new header is synced");
    assert!(fs.has_unsynced(&seg).expect("segment"), "the parent's new rows were left alone");
    // Beyond it: the new rows it pins must be synced, although A synced this segment before.
    drop(a.fork("c3", &ForkPoint::new("p", 15)).expect("fork c3"));
    assert!(!fs.has_unsynced(&seg).expect("segment"), "the fork synced the new bytes it pins");
    drop(a);
    fs.crash(CrashMode::POWER_LOSS);
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("reopen");
    assert_eq!(steps(&store, "c3"), (0..=15).collect::<Vec<_>>());
    assert_eq!(steps(&store, "c2"), (0..=3).collect::<Vec<_>>());
    assert_eq!(steps(&store, "c1"), (0..=5).collect::<Vec<_>>());
    assert!(store.verify().expect("verify").problems.iter().all(|p| p.kind != forklog::ProblemKind::Corrupt));
    drop(store.resume("p").expect("resume after the crash"));
    assert!(store.verify().expect("verify").is_clean());
}

/// A writer of this process tells the store what it wrote and synced: a fork of its run needs no parent sync
/// when the writer synced, and does sync when the writer only flushed.
#[test]
fn a_fork_of_a_run_this_process_writes_syncs_only_what_the_writer_did_not() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("open");
    let seg = runs_dir().join("p").join("v0-0.seg");
    let mut w = store.create_run("p").expect("create");
    for i in 0..10 {
        w.log(metrics! { "x" => i as f64 }).expect("log");
    }
    w.sync().expect("sync");
    let before = fs.counters().syncs;
    drop(store.fork("c1", &ForkPoint::new("p", 9)).expect("fork c1"));
    assert_eq!(fs.counters().syncs - before, 1, "the writer synced everything the fork pins");
    w.log(metrics! { "x" => 10.0 }).expect("log");
    drop(store.fork("c2", &ForkPoint::new("p", 10)).expect("fork c2"));
    assert!(!fs.has_unsynced(&seg).expect("segment"), "the fork synced the row the writer had only flushed");
    drop(w);
    fs.crash(CrashMode::POWER_LOSS);
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("reopen");
    assert_eq!(steps(&store, "c2"), (0..=10).collect::<Vec<_>>());
    assert!(store.verify().expect("verify").is_clean());
}

/// Crashes (every mode) before every file-system operation of a fork and of a run creation: afterwards the
/// run is either absent or whole, reads and `verify` never see corruption, `gc` removes what the creation
/// left, and the id can be created again.
#[test]
fn a_crash_anywhere_in_a_creation_leaves_no_run_or_the_whole_run() {
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let fs = FaultFs::new();
        let (mark, mark_c, mark_r);
        {
            let store = Store::open_with(FaultFs::store_path(), opts(&fs, policy)).expect("open");
            let mut w = store.create_run("p").expect("create");
            for i in 0..8 {
                w.log(metrics! { "x" => i as f64 }).expect("log");
            }
            w.finish(0).expect("finish");
            mark = fs.journal_len();
            drop(store.fork("c", &ForkPoint::new("p", 4)).expect("fork"));
            mark_c = fs.journal_len();
            drop(store.create_run("r").expect("create r"));
            mark_r = fs.journal_len();
        }
        let mut replay = fs.replay();
        while replay.position() < mark {
            replay.advance().expect("replay");
        }
        loop {
            let ctx = format!("{policy:?} before journal entry {} {:?}", replay.position(), replay.next_op());
            let mut modes = vec![None, Some(CrashMode::POWER_LOSS), Some(CrashMode::PROCESS_KILL)];
            modes.extend(CrashMode::all(replay.position() as u64).into_iter().map(Some));
            for mode in modes {
                let state = replay.fs();
                if let Some(m) = mode {
                    state.crash(m);
                }
                let acked: Vec<&str> = [("c", mark_c), ("r", mark_r)]
                    .into_iter()
                    .filter(|(_, m)| replay.position() >= *m)
                    .map(|(id, _)| id)
                    .collect();
                check_creation_state(&state, policy, &acked, &format!("{ctx} {mode:?}"));
            }
            if !replay.advance().expect("replay") {
                break;
            }
        }
    }
}

fn check_creation_state(fs: &Arc<FaultFs>, policy: SyncPolicy, acked: &[&str], ctx: &str) {
    let store = Store::open_with(FaultFs::store_path(), opts(fs, policy)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let ids: Vec<String> =
        store.runs().unwrap_or_else(|e| panic!("{ctx}: runs: {e}")).into_iter().map(|i| i.id).collect();
    assert!(ids.iter().any(|i| i == "p"), "{ctx}: the parent is there: {ids:?}");
    for id in acked {
        assert!(ids.iter().any(|i| i == id), "{ctx}: {id} was created (the call returned): {ids:?}");
    }
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.problems.iter().all(|p| p.kind != forklog::ProblemKind::Corrupt), "{ctx}: {report:?}");
    if ids.iter().any(|i| i == "c") {
        assert_eq!(steps(&store, "c"), (0..=4).collect::<Vec<_>>(), "{ctx}: the fork is whole");
    }
    if ids.iter().any(|i| i == "r") {
        assert_eq!(steps(&store, "r"), Vec::<u64>::new(), "{ctx}");
    }
    store.gc().unwrap_or_else(|e| panic!("{ctx}: gc: {e}"));
    assert_eq!(leftovers(&**fs, &runs_dir()), Vec::<String>::new(), "{ctx}: gc removed the leftovers");
    for id in ["c", "r"] {
        if !ids.iter().any(|i| i == id) {
            let w = store.fork(id, &ForkPoint::new("p", 6)).unwrap_or_else(|e| panic!("{ctx}: fork {id} again: {e}"));
            drop(w);
            assert_eq!(steps(&store, id), (0..=6).collect::<Vec<_>>(), "{ctx}");
        }
    }
    assert!(store.verify().expect("verify").problems.iter().all(|p| p.kind != forklog::ProblemKind::Corrupt), "{ctx}");
}

/// Threads with their own store handles (like processes) race to create, or fork into, the same id: one wins,
/// the others get `RunExists`, and nothing is left behind.
#[test]
fn one_of_many_concurrent_creators_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        let mut w = store.create_run("p").expect("create");
        w.log(metrics! { "x" => 1.0 }).expect("log");
    }
    for round in 0..20 {
        let id = format!("x{round}");
        let n = 4;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let (path, barrier, id) = (dir.path().to_path_buf(), barrier.clone(), id.clone());
                std::thread::spawn(move || {
                    let store = Store::open(&path).expect("open");
                    barrier.wait();
                    let r = if t % 2 == 0 { store.create_run(&id) } else { store.fork(&id, &ForkPoint::new("p", 0)) };
                    r.map(drop)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        for r in &results {
            assert!(matches!(r, Ok(()) | Err(Error::RunExists { .. })), "{results:?}");
        }
    }
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.runs().expect("runs").len(), 21);
    assert!(store.verify().expect("verify").is_clean());
    assert_eq!(leftovers(&forklog::vfs::StdFs, &dir.path().join("runs")), Vec::<String>::new());
}

/// Stores written by older versions: run directories hold a `lock` file (ignored), and an interrupted creation
/// left a directory without `v0.head` (read as no run; creating the id moves it aside and gc removes it).
#[test]
fn older_layouts_are_read_and_their_leftovers_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = dir.path().join("runs");
    {
        let store = Store::open(dir.path()).expect("open");
        let mut w = store.create_run("old").expect("create");
        w.log(metrics! { "x" => 1.0 }).expect("log");
    }
    std::fs::write(runs.join("old").join("lock"), b"").expect("lock file");
    std::fs::create_dir(runs.join("torn")).expect("mkdir");
    std::fs::write(runs.join("torn").join("lock"), b"").expect("lock file");
    std::fs::write(runs.join("torn").join("v0.head.tmp"), b"partial").expect("tmp");
    std::fs::create_dir(runs.join("empty")).expect("mkdir");
    let store = Store::open(dir.path()).expect("open");
    let ids: Vec<String> = store.runs().expect("runs").into_iter().map(|i| i.id).collect();
    assert_eq!(ids, vec!["old".to_string()]);
    assert!(store.verify().expect("verify").is_clean());
    let mut w = store.resume("old").expect("resume");
    assert!(matches!(store.resume("old"), Err(Error::RunBusy { .. })));
    w.log(metrics! { "x" => 2.0 }).expect("log");
    drop(w);
    drop(store.create_run("torn").expect("create over the leftover"));
    drop(store.fork("empty", &ForkPoint::new("old", 0)).expect("fork over an empty leftover"));
    assert!(matches!(store.create_run("torn"), Err(Error::RunExists { .. })));
    assert_eq!(steps(&store, "old"), vec![0, 1]);
    assert_eq!(steps(&store, "empty"), vec![0]);
    store.gc().expect("gc");
    assert_eq!(leftovers(&forklog::vfs::StdFs, &runs), Vec::<String>::new());
    assert!(store.verify().expect("verify").is_clean());
}

/// `gc` removes the directory of an interrupted creation, but not one a creator still holds.
#[test]
fn gc_leaves_a_creation_in_progress_alone() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Always)).expect("open");
    let (busy, dead) = (runs_dir().join("b~new00000000000000aa"), runs_dir().join("d~new00000000000000bb"));
    for d in [&busy, &dead] {
        fs.create_dir(d).expect("mkdir");
        fs.open(&d.join("v0.head"), forklog::vfs::OpenMode::CreateNew).expect("header");
    }
    let held = fs.open_dir(&busy).expect("open dir");
    assert!(held.try_lock().expect("lock"));
    store.gc().expect("gc");
    assert_eq!(leftovers(&*fs, &runs_dir()), vec!["b~new00000000000000aa".to_string()]);
    assert!(store.runs().expect("runs").is_empty());
    assert!(store.verify().expect("verify").is_clean());
    drop(held);
    store.gc().expect("gc");
    assert_eq!(leftovers(&*fs, &runs_dir()), Vec::<String>::new());
    // The unlocked handle of a run directory is a writer's lock: RunBusy for anyone else.
    let w = store.create_run("r").expect("create");
    let probe = fs.open_dir(&runs_dir().join("r")).expect("open dir");
    assert!(!probe.try_lock().expect("lock"), "the writer holds its run directory's lock");
    drop(w);
    assert!(probe.try_lock().expect("lock"), "released with the writer");
}

/// What a store remembers about a segment belongs to that segment only: after the parent is deleted and created
/// again (another nonce), or rewound (another version), a fork syncs the new parent's unsynced bytes.
#[test]
fn remembered_syncs_do_not_carry_over_to_a_recreated_or_rewound_parent() {
    let fs = FaultFs::new();
    let seg = runs_dir().join("p").join("v0-0.seg");
    let a = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("open a");
    let write = |rows: std::ops::Range<u64>, rewind: Option<u64>| {
        let b = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("open b");
        let mut w = match rewind {
            Some(step) => b.rewind("p", step).expect("rewind"),
            None => b.create_run("p").expect("create"),
        };
        for i in rows {
            w.log_at(i, metrics! { "x" => i as f64 }).expect("log");
        }
    };
    write(0..20, None);
    drop(a.fork("c", &ForkPoint::new("p", 15)).expect("fork c"));
    assert!(!fs.has_unsynced(&seg).expect("segment"));
    a.delete_run("c").expect("delete c");
    a.delete_run("p").expect("delete p");
    assert_eq!(a.gc().expect("gc").runs_removed.len(), 2);
    // The same id, another nonce: the same segment name, unsynced again.
    write(0..20, None);
    assert!(fs.has_unsynced(&seg).expect("segment"));
    drop(a.fork("d", &ForkPoint::new("p", 10)).expect("fork d"));
    assert!(!fs.has_unsynced(&seg).expect("segment"), "the recreated parent's bytes were synced");
    // A rewind: version 1 has a segment of its own, written unsynced.
    write(6..12, Some(5));
    let seg1 = runs_dir().join("p").join("v1-0.seg");
    assert!(fs.has_unsynced(&seg1).expect("segment"));
    drop(a.fork("e", &ForkPoint::new("p", 11)).expect("fork e"));
    assert!(!fs.has_unsynced(&seg1).expect("segment"), "the rewound parent's bytes were synced");
    drop(a);
    fs.crash(CrashMode::POWER_LOSS);
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never)).expect("reopen");
    assert_eq!(steps(&store, "d"), (0..=10).collect::<Vec<_>>());
    assert_eq!(steps(&store, "e"), (0..=11).collect::<Vec<_>>());
    assert!(store.verify().expect("verify").problems.iter().all(|p| p.kind != forklog::ProblemKind::Corrupt));
}
