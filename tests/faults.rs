//! Fault injection: an I/O failure never costs acknowledged data and is never papered over. A failing fsync
//! or write, or a full disk (ENOSPC), makes the failing call return the I/O error and poisons the writer
//! (every later call returns `Error::Poisoned`; a failed fsync is never retried as if it had worked); after
//! a crash and reopen everything acknowledged before the failure is there with its exact values, the run
//! shows a prefix of what was written, and it resumes and verifies clean. A store-level operation (create,
//! fork, rewind) that fails half-way leaves its run cleanly absent or complete. A directory entry that was
//! never dir-synced may vanish at a crash, taking a run with it cleanly, never half of it. A device that
//! freezes after any write (the process sees errors, then the machine dies) is recovered the same way.

use std::sync::Arc;

use forklog::testing::faultfs::{CrashMode, Entries, FaultFs, Unsynced};
use forklog::{metrics, Error, ForkPoint, Key, Metrics, Options, RunWriter, Store, SyncPolicy, Value};

type Row = (u64, Metrics);

fn opts(fs: &Arc<FaultFs>, policy: SyncPolicy) -> Options {
    Options::default().vfs(fs.clone()).sync(policy).buffer_size(64).segment_size(4096)
}

fn open(fs: &Arc<FaultFs>, policy: SyncPolicy) -> Store {
    Store::open_with(FaultFs::store_path(), opts(fs, policy)).expect("open store")
}

fn rows(store: &Store, run: &str) -> forklog::Result<Vec<Row>> {
    store.history(run)?.map(|r| r.map(|r| (r.step, r.metrics))).collect()
}

/// Row `i`: a float, and now and then a new key (key-table writes and syncs mid-run) or padding (segment rolls).
fn row(i: u64) -> Metrics {
    let mut m = metrics! { "loss" => 1.0 / (i as f64 + 1.0), "i" => i as i64 };
    if i % 7 == 3 {
        m.insert(Key::from(format!("key{i}")), Value::Int(i as i64));
    }
    if i.is_multiple_of(5) {
        m.insert(Key::from("pad"), Value::Str("p".repeat(200)));
    }
    m
}

fn is_io(e: &Error) -> bool {
    matches!(e, Error::Io { .. })
}

fn io_raw(e: &Error) -> Option<i32> {
    match e {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// After a failure: every writer call fails with `Poisoned`, and nothing is written.
fn assert_poisoned(w: &mut RunWriter, fs: &FaultFs, ctx: &str) {
    let writes = fs.counters().writes;
    let poisoned = |r: forklog::Result<()>, what: &str| match r {
        Err(Error::Poisoned { run, cause }) => {
            assert_eq!(run, "r", "{ctx}: {what}");
            assert!(!cause.is_empty(), "{ctx}: {what}: no cause");
        }
        other => panic!("{ctx}: {what} after a failure: {other:?}"),
    };
    poisoned(w.log(row(1000)).map(|_| ()), "log");
    poisoned(w.log_at(5000, row(1001)), "log_at");
    poisoned(w.log_batch([(None, row(1002))]).map(|_| ()), "log_batch");
    poisoned(w.set_config(metrics! { "lr" => 0.5 }), "set_config");
    poisoned(w.set_summary(metrics! { "best" => 0.5 }), "set_summary");
    poisoned(w.log_system(metrics! { "gpu" => 0.5 }), "log_system");
    poisoned(w.flush(), "flush");
    poisoned(w.sync(), "sync");
    assert_eq!(fs.counters().writes, writes, "{ctx}: a poisoned writer wrote");
}

/// Reopens after a crash and checks run `r`: a prefix of `written`, at least `acked` rows; then resumes it
/// and verifies the store.
fn check_recovered(fs: &Arc<FaultFs>, policy: SyncPolicy, written: &[Row], acked: usize, ctx: &str) {
    let store =
        Store::open_with(FaultFs::store_path(), opts(fs, policy)).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let got = rows(&store, "r").unwrap_or_else(|e| panic!("{ctx}: history: {e}"));
    assert!(got.len() >= acked, "{ctx}: {} rows survived, {acked} were acknowledged", got.len());
    assert!(got.len() <= written.len() && got[..] == written[..got.len()], "{ctx}: not a prefix of what was written");
    let w = store.resume("r").unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
    drop(w);
    assert_eq!(
        rows(&store, "r").unwrap_or_else(|e| panic!("{ctx}: history: {e}")),
        got,
        "{ctx}: recovery changed rows"
    );
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
    // The run keeps going after recovery.
    let mut w = store.resume("r").unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
    w.log(row(9999)).unwrap_or_else(|e| panic!("{ctx}: log after recovery: {e}"));
    w.sync().unwrap_or_else(|e| panic!("{ctx}: sync after recovery: {e}"));
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `fail_syncs_after(n)`.
    Sync(u64),
    /// `fail_writes_after(n)`.
    Write(u64),
    /// `enospc_after_bytes(used + n)`.
    Space(u64),
}

/// Logs rows until the injected fault hits; checks the error, the poisoning and the recovery.
fn run_until_fault(policy: SyncPolicy, fault: Fault) {
    let ctx = format!("{policy:?} {fault:?}");
    let fs = FaultFs::new();
    let store = open(&fs, policy);
    let mut w = store.create_run("r").expect("create");
    let mut written: Vec<Row> = Vec::new();
    for i in 0..10 {
        let m = row(i);
        w.log(m.clone()).expect("log");
        written.push((i, m));
    }
    w.sync().expect("sync");
    let mut acked = written.len();
    match fault {
        Fault::Sync(n) => fs.fail_syncs_after(n),
        Fault::Write(n) => fs.fail_writes_after(n),
        Fault::Space(n) => fs.enospc_after_bytes(fs.used_bytes() + n),
    }
    let mut err = None;
    let mut step = 10;
    for k in 10..400u64 {
        // A row is "written" as soon as it is attempted: a failed call may still have put it on disk.
        let res = match k % 9 {
            0 => {
                let (a, b) = (row(k), row(k + 1000));
                written.push((step, a.clone()));
                written.push((step + 1, b.clone()));
                step += 2;
                w.log_batch([(None, a), (None, b)]).map(|_| ())
            }
            4 => {
                written.push((step, row(k)));
                step += 1;
                w.set_config(metrics! { "lr" => k as f64 }).and_then(|_| w.log(row(k)).map(|_| ()))
            }
            _ => {
                written.push((step, row(k)));
                step += 1;
                w.log(row(k)).map(|_| ())
            }
        };
        let explicit_sync = policy != SyncPolicy::Always && k % 4 == 0;
        let res = res.and_then(|_| if explicit_sync { w.sync() } else { Ok(()) });
        match res {
            Ok(()) if policy == SyncPolicy::Always || explicit_sync => acked = written.len(),
            Ok(()) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(written.windows(2).all(|p| p[0].0 < p[1].0), "the workload keeps steps increasing");
    let e = err.unwrap_or_else(|| panic!("{ctx}: the fault never fired"));
    assert!(is_io(&e), "{ctx}: the failing call returns the I/O error, got {e:?}");
    match fault {
        Fault::Sync(_) | Fault::Write(_) => assert_eq!(io_raw(&e), Some(5), "{ctx}: EIO: {e}"),
        Fault::Space(_) => {
            assert_eq!(io_raw(&e), Some(28), "{ctx}: ENOSPC: {e}");
            if let Error::Io { source, .. } = &e {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
            }
        }
    }
    assert_poisoned(&mut w, &fs, &ctx);
    match w.finish(0) {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("{ctx}: finish after a failure: {other:?}"),
    }
    // Reads still work while the disk is sick, and show at least what was acknowledged.
    let got = rows(&store, "r").unwrap_or_else(|e| panic!("{ctx}: history while faulty: {e}"));
    assert!(got.len() >= acked, "{ctx}");
    drop(store);
    fs.clear_faults();
    for mode in [CrashMode::POWER_LOSS, CrashMode::PROCESS_KILL, CrashMode::new(Unsynced::Torn, Entries::Mixed, 7)] {
        let snap = fs.snapshot();
        fs.crash(mode);
        check_recovered(&fs, policy, &written, acked, &format!("{ctx} then {mode:?}"));
        fs.restore(&snap);
    }
}

#[test]
fn failing_fsync_poisons_the_writer_and_loses_nothing_acknowledged() {
    for policy in [SyncPolicy::Always, SyncPolicy::EveryMillis(1 << 40)] {
        for n in 0..40 {
            run_until_fault(policy, Fault::Sync(n));
        }
    }
}

#[test]
fn failing_write_poisons_the_writer_and_loses_nothing_acknowledged() {
    for policy in [SyncPolicy::Always, SyncPolicy::EveryMillis(1 << 40), SyncPolicy::Never] {
        for n in 0..40 {
            run_until_fault(policy, Fault::Write(n));
        }
    }
}

#[test]
fn enospc_poisons_the_writer_and_loses_nothing_acknowledged() {
    for policy in [SyncPolicy::Always, SyncPolicy::EveryMillis(1 << 40), SyncPolicy::Never] {
        for n in (0..3000).step_by(97) {
            run_until_fault(policy, Fault::Space(n));
        }
    }
}

/// Reading a full disk's store works, and so does recovering it once space is back.
#[test]
fn full_disk_store_stays_readable() {
    let fs = FaultFs::new();
    let store = open(&fs, SyncPolicy::Always);
    let mut w = store.create_run("r").expect("create");
    for i in 0..30 {
        w.log(row(i)).expect("log");
    }
    fs.enospc_after_bytes(fs.used_bytes());
    assert!(w.log(row(30)).is_err());
    drop(w);
    drop(store);
    let store = open(&fs, SyncPolicy::Always);
    assert_eq!(rows(&store, "r").expect("rows").len(), 30);
    assert!(store.verify().expect("verify").is_clean());
    // Resuming may need space (recovery rewrites an index); it fails cleanly or works.
    match store.resume("r") {
        Ok(w) => drop(w),
        Err(e) => assert!(is_io(&e), "{e:?}"),
    }
    assert_eq!(rows(&store, "r").expect("rows").len(), 30);
    fs.clear_faults();
    drop(store.resume("r").expect("resume with space"));
    assert!(store.verify().expect("verify").is_clean());
}

/// The structural operation a test runs under a fault.
#[derive(Debug, Clone, Copy)]
enum Structural {
    Create,
    Fork,
    Rewind,
    Delete,
}

/// Create, fork, rewind and delete with every one of their fsyncs (or writes) failing in turn: the call
/// errors, and after a crash the run it touched is absent or complete — never half there.
#[test]
fn failing_structural_operations_leave_runs_whole_or_absent() {
    for op in [Structural::Create, Structural::Fork, Structural::Rewind, Structural::Delete] {
        for policy in [SyncPolicy::Always, SyncPolicy::Never] {
            for fail_writes in [false, true] {
                for n in 0..12 {
                    structural_case(op, policy, fail_writes, n);
                }
            }
        }
    }
}

fn structural_case(op: Structural, policy: SyncPolicy, fail_writes: bool, n: u64) {
    let ctx = format!("{op:?} {policy:?} fail_writes={fail_writes} after {n}");
    let fs = FaultFs::new();
    let store = open(&fs, policy);
    let mut w = store.create_run("base").expect("create");
    let mut base = Vec::new();
    for i in 0..30 {
        w.log(row(i)).expect("log");
        base.push((i, row(i)));
    }
    w.sync().expect("sync");
    drop(w);
    if fail_writes {
        fs.fail_writes_after(n);
    } else {
        fs.fail_syncs_after(n);
    }
    let res = match op {
        Structural::Create => store.create_run("new").map(drop),
        Structural::Fork => store.fork("new", &ForkPoint::new("base", 12)).map(drop),
        Structural::Rewind => store.rewind("base", 12).map(drop),
        Structural::Delete => store.delete_run("base"),
    };
    if let Err(e) = &res {
        assert!(is_io(e), "{ctx}: {e:?}");
    }
    drop(store);
    fs.clear_faults();
    for mode in [CrashMode::POWER_LOSS, CrashMode::PROCESS_KILL, CrashMode::new(Unsynced::Torn, Entries::Mixed, 3)] {
        let snap = fs.snapshot();
        fs.crash(mode);
        let ctx = format!("{ctx}: {} then {mode:?}", if res.is_ok() { "succeeded" } else { "failed" });
        let store = open(&fs, policy);
        let acked = res.is_ok() && policy != SyncPolicy::Never;
        let ids: Vec<String> =
            store.runs().unwrap_or_else(|e| panic!("{ctx}: runs: {e}")).into_iter().map(|i| i.id).collect();
        match op {
            Structural::Create | Structural::Fork => {
                let want: Vec<Row> = if matches!(op, Structural::Fork) { base[..13].to_vec() } else { vec![] };
                match rows(&store, "new") {
                    Ok(got) => assert_eq!(got, want, "{ctx}: a half-made run"),
                    Err(Error::RunNotFound { .. }) => {
                        assert!(!acked, "{ctx}: acknowledged run lost");
                        assert!(!ids.contains(&"new".to_string()), "{ctx}: listed but not found");
                    }
                    Err(e) => panic!("{ctx}: {e}"),
                }
                assert_eq!(rows(&store, "base").unwrap_or_else(|e| panic!("{ctx}: {e}")), base, "{ctx}: parent");
            }
            Structural::Rewind => {
                let got = rows(&store, "base").unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let v = store.info("base").unwrap_or_else(|e| panic!("{ctx}: {e}")).version;
                match v {
                    0 => assert!(!acked && got == base, "{ctx}: v0 {got:?}"),
                    1 => {
                        assert_eq!(got, base[..13].to_vec(), "{ctx}: a half-made rewind");
                        assert_eq!(rows(&store, "base@v0").unwrap_or_else(|e| panic!("{ctx}: {e}")), base, "{ctx}");
                    }
                    v => panic!("{ctx}: version {v}"),
                }
            }
            Structural::Delete => match rows(&store, "base") {
                Ok(got) => {
                    assert!(res.is_err(), "{ctx}: delete returned Ok but was undone");
                    assert_eq!(got, base, "{ctx}");
                }
                Err(Error::RunNotFound { .. }) => {}
                Err(e) => panic!("{ctx}: {e}"),
            },
        }
        for id in &ids {
            drop(store.resume(id).unwrap_or_else(|e| panic!("{ctx}: resume {id}: {e}")));
        }
        let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
        assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
        drop(store);
        fs.restore(&snap);
    }
}

/// A run directory that was never dir-synced (`SyncPolicy::Never` syncs nothing) vanishes at a power loss
/// with everything in it: the run is cleanly absent, not half there, and the store is clean.
#[test]
fn unsynced_run_directory_vanishes_cleanly() {
    // `Unsynced::Mixed` is left out: reordered unsynced frames are a known open issue (see tests/crash.rs,
    // `reordered_unsynced_frames_do_not_brick_the_run`).
    for data in Unsynced::ALL.into_iter().filter(|d| *d != Unsynced::Mixed) {
        for entries in Entries::ALL {
            let mode = CrashMode::new(data, entries, 11);
            let fs = FaultFs::new();
            let store = open(&fs, SyncPolicy::Never);
            let mut w = store.create_run("r").expect("create");
            let written: Vec<Row> = (0..40).map(|i| (i, row(i))).collect();
            for (_, m) in &written {
                w.log(m.clone()).expect("log");
            }
            drop(w);
            fs.crash(mode);
            drop(store);
            let ctx = format!("{mode:?}");
            let store = open(&fs, SyncPolicy::Never);
            match rows(&store, "r") {
                Ok(got) => {
                    assert!(got[..] == written[..got.len()], "{ctx}: not a prefix");
                    drop(store.resume("r").unwrap_or_else(|e| panic!("{ctx}: resume: {e}")));
                }
                Err(Error::RunNotFound { .. }) => {
                    assert!(store.runs().expect("runs").is_empty(), "{ctx}");
                    // The id is free again (or taken by leftovers it can reuse): creating it works.
                    drop(store.create_run("r").unwrap_or_else(|e| panic!("{ctx}: create again: {e}")));
                }
                Err(e) => panic!("{ctx}: {e}"),
            }
            let report = store.verify().expect("verify");
            assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
        }
    }
}

/// A crash at any moment of `create_run` and `fork`, with each fate for the directory entries not yet
/// dir-synced: the new run's directory (or its header's name) vanishing leaves the run cleanly absent;
/// surviving, it is whole (empty, or the fork's inherited rows).
#[test]
fn crash_during_create_or_fork_leaves_the_run_whole_or_absent() {
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let fs = FaultFs::new();
        let store = open(&fs, policy);
        let mut w = store.create_run("base").expect("create");
        let base: Vec<Row> = (0..20).map(|i| (i, row(i))).collect();
        for (_, m) in &base {
            w.log(m.clone()).expect("log");
        }
        w.sync().expect("sync");
        drop(w);
        let start = fs.journal_len();
        drop(store.create_run("new").expect("create"));
        let mid = fs.journal_len();
        drop(store.fork("kid", &ForkPoint::new("base", 7)).expect("fork"));
        let end = fs.journal_len();
        drop(store);
        for pos in start..=end {
            for entries in Entries::ALL {
                let mode = CrashMode::new(Unsynced::Lost, entries, pos as u64);
                let ctx = format!("{policy:?}: crash before journal entry {pos} ({start}..{mid}..{end}), {mode:?}");
                let state = fs.state_at(pos, None).expect("state");
                state.crash(mode);
                let store = open(&state, policy);
                for (id, want) in [("new", vec![]), ("kid", base[..8].to_vec())] {
                    match rows(&store, id) {
                        Ok(got) => assert_eq!(got, want, "{ctx}: {id} is half there"),
                        Err(Error::RunNotFound { .. }) => {}
                        Err(e) => panic!("{ctx}: {id}: {e}"),
                    }
                }
                assert_eq!(rows(&store, "base").unwrap_or_else(|e| panic!("{ctx}: {e}")), base, "{ctx}");
                for info in store.runs().unwrap_or_else(|e| panic!("{ctx}: {e}")) {
                    drop(store.resume(&info.id).unwrap_or_else(|e| panic!("{ctx}: resume {}: {e}", info.id)));
                }
                let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
            }
        }
    }
}

/// Under a durable policy a run exists once `create_run` returns, even if the machine dies right after.
#[test]
fn created_run_survives_an_immediate_power_loss() {
    for policy in [SyncPolicy::Always, SyncPolicy::EveryMillis(1 << 40)] {
        let fs = FaultFs::new();
        let store = open(&fs, policy);
        let w = store.create_run("r").expect("create");
        fs.crash(CrashMode::POWER_LOSS);
        drop(w);
        drop(store);
        let store = open(&fs, policy);
        assert_eq!(rows(&store, "r").expect("the run exists"), vec![]);
        assert_eq!(store.runs().expect("runs").len(), 1);
    }
}

/// `RunWriter::sync` promises durability whatever the store's default policy: after it returns, a power
/// loss keeps every event, the run's directory and header included.
#[test]
fn explicit_sync_is_durable_under_every_policy() {
    for policy in [SyncPolicy::Always, SyncPolicy::EveryMillis(1 << 40), SyncPolicy::Never] {
        for entries in Entries::ALL {
            let fs = FaultFs::new();
            let store = open(&fs, policy);
            let mut w = store.create_run("r").expect("create");
            let written: Vec<Row> = (0..25).map(|i| (i, row(i))).collect();
            for (_, m) in &written {
                w.log(m.clone()).expect("log");
            }
            w.sync().expect("sync");
            let mode = CrashMode::new(Unsynced::Lost, entries, 0);
            fs.crash(mode);
            drop(w);
            drop(store);
            let store = open(&fs, policy);
            let got = rows(&store, "r").unwrap_or_else(|e| panic!("{policy:?} {mode:?}: {e}"));
            assert_eq!(got, written, "{policy:?} {mode:?}");
        }
    }
}

/// The device freezes after the n-th write of a workload (the process sees every later call fail), then
/// the machine dies: for every n, whatever was acknowledged survives, and the store recovers clean.
#[test]
fn freeze_after_every_write_then_crash() {
    // Count the writes of a fault-free run first.
    let total = {
        let fs = FaultFs::new();
        freeze_workload(&fs, &mut Vec::new(), &mut 0);
        fs.counters().writes
    };
    assert!(total > 40, "{total} writes");
    for n in 0..=total {
        for mode in [CrashMode::POWER_LOSS, CrashMode::new(Unsynced::Torn, Entries::Kept, n)] {
            let fs = FaultFs::new();
            fs.freeze_after_writes(n);
            let mut written = Vec::new();
            let mut acked = 0;
            freeze_workload(&fs, &mut written, &mut acked);
            fs.crash(mode);
            let ctx = format!("frozen after write {n} of {total}, {mode:?}");
            let store = match Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Always)) {
                Ok(s) => s,
                Err(e) => {
                    assert!(acked == 0, "{ctx}: open: {e}");
                    continue;
                }
            };
            match rows(&store, "r") {
                Ok(_) => {
                    drop(store);
                    check_recovered(&fs, SyncPolicy::Always, &written, acked, &ctx);
                }
                Err(Error::RunNotFound { .. }) => assert!(acked == 0, "{ctx}: run lost"),
                Err(e) => panic!("{ctx}: {e}"),
            }
        }
    }
}

/// Creates run `r` under `Always` and logs until the first error (or 60 rows): records what it attempted
/// and how many rows were acknowledged.
fn freeze_workload(fs: &Arc<FaultFs>, written: &mut Vec<Row>, acked: &mut usize) {
    let Ok(store) = Store::open_with(FaultFs::store_path(), opts(fs, SyncPolicy::Always)) else { return };
    let Ok(mut w) = store.create_run("r") else { return };
    for i in 0..60 {
        written.push((i, row(i)));
        if w.log(row(i)).is_err() {
            assert!(matches!(w.log(row(i + 1)), Err(Error::Poisoned { .. })));
            return;
        }
        *acked = written.len();
    }
}

/// A panic inside a writer call (here: right after its frame's `pwrite`, before the writer records the new
/// length) poisons the writer, with the cause: the next call must not write a frame at the stale offset.
#[test]
fn a_panic_inside_the_writer_poisons_it() {
    for policy in [SyncPolicy::Never, SyncPolicy::Always] {
        let fs = FaultFs::new();
        let store = Store::open_with(FaultFs::store_path(), opts(&fs, policy).buffer_size(1)).unwrap();
        let mut w = store.create_run("r").unwrap();
        w.log(metrics! { "x" => 0.0 }).unwrap();
        fs.panic_after_writes(0);
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.log(metrics! { "x" => 1.0 })));
        std::panic::set_hook(hook);
        assert!(res.is_err(), "{policy:?}: the injected panic did not happen");
        let writes = fs.counters().writes;
        match w.log(metrics! { "x" => 2.0 }) {
            Err(Error::Poisoned { run, cause }) => {
                assert_eq!(run, "r");
                assert!(cause.contains("panic"), "{policy:?}: cause {cause:?}");
            }
            other => panic!("{policy:?}: a writer used after a panic inside it: {other:?}"),
        }
        assert!(matches!(w.sync(), Err(Error::Poisoned { .. })));
        assert_eq!(fs.counters().writes, writes, "{policy:?}: a poisoned writer wrote");
        drop(w);
        // The run is released; what reached the disk is a prefix: row 0, maybe row 1, never row 2.
        let w = store.resume("r").unwrap();
        drop(w);
        let got: Vec<f64> = rows(&store, "r")
            .unwrap()
            .into_iter()
            .map(|(_, m)| match m.get("x") {
                Some(Value::Float(x)) => *x,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(got == [0.0] || got == [0.0, 1.0], "{policy:?}: {got:?}");
        assert!(store.verify().unwrap().problems.is_empty());
    }
}
