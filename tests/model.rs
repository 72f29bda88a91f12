//! Model-based property tests: random sequences of store operations (create, log single and batch with valid
//! and invalid steps, config, summary, system, finish, fork of any run or version at any step, rewind,
//! resume, flush, sync, reopen, crash, delete, gc, verify) run against a real store and the reference model
//! `forklog::testing::Model`; after every operation the results and everything readable must be equal.
//! Failures shrink to a short operation list printed one per line, with a trace of how each resolved.
//!
//! `PROPTEST_CASES` scales the case counts (defaults keep `cargo test` fast). Regressions found by the
//! property tests are kept below as named tests.

use forklog::testing::faultfs::{CrashMode, Entries, FaultFs, Unsynced};
use forklog::testing::strategies::{self, RunPick, StepPick};
use forklog::testing::{assert_store_matches, Harness, Model, Op};
use forklog::{metrics, HistoryOptions, Options, Store, SyncPolicy, Value};
use proptest::prelude::*;

/// `default` cases, or `PROPTEST_CASES` if set; failures are kept as named tests, not persistence files.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A temporary directory, on tmpfs when there is one: these tests check what the store shows, not what
/// survives a power loss (the FaultFs variant does), and a real disk's fsyncs would dominate their time.
fn tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("forklog-model").tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())
}

/// Runs `ops` on a fresh store on the real file system, failing with the trace on the first disagreement.
fn run_ops(opts: Options, ops: &[Op]) -> Result<(), String> {
    let dir = tempdir().map_err(|e| e.to_string())?;
    let h = Harness::new(dir.path().join("store"), opts).map_err(|e| e.to_string())?;
    drive(h, ops)
}

/// What crashes do to unsynced bytes in the state machine: every mode (lost, kept, torn, zeroed, garbage, mixed).
const CRASH_DATA: [Unsynced; 6] = Unsynced::ALL;

/// Runs `ops` on a fresh store on a [`FaultFs`]. `Op::Crash` crashes the file system: under
/// `SyncPolicy::Always` in any [`CrashMode`] (picked by the op's seed: nothing acknowledged may be lost),
/// otherwise as a process kill (the harness's reads flushed every buffer, so nothing may be lost either).
fn run_ops_faultfs(opts: Options, ops: &[Op]) -> Result<(), String> {
    let fs = FaultFs::new();
    let always = opts.sync_policy() == SyncPolicy::Always;
    let mut h = Harness::new(FaultFs::store_path(), opts.vfs(fs.clone())).map_err(|e| e.to_string())?;
    h.on_crash(Box::new(move |seed| {
        let modes: Vec<CrashMode> = CrashMode::all(seed).into_iter().filter(|m| CRASH_DATA.contains(&m.data)).collect();
        fs.crash(if always { modes[(seed % modes.len() as u64) as usize] } else { CrashMode::PROCESS_KILL });
    }));
    drive(h, ops)
}

fn drive(mut h: Harness, ops: &[Op]) -> Result<(), String> {
    h.check()?;
    for op in ops {
        if let Err(e) = h.apply(op) {
            return Err(format!("{e}\n--- trace ---\n{}", h.trace().join("\n")));
        }
    }
    Ok(())
}

fn always() -> Options {
    Options::default().sync(SyncPolicy::Always)
}

proptest! {
    #![proptest_config(config(32))]

    /// The state machine: up to 40 operations, store options varied per case.
    #[test]
    fn store_matches_model((sync, segment, buffer) in strategies::store_options(), ops in strategies::ops(40)) {
        let opts = Options::default().sync(sync).segment_size(segment).buffer_size(buffer);
        if let Err(e) = run_ops(opts, &ops) {
            prop_assert!(false, "{}", e);
        }
    }

    /// The state machine on the fault-injecting file system, where `crash` is a real simulated crash.
    #[test]
    fn store_matches_model_across_crashes(
        (sync, segment, buffer) in strategies::store_options(),
        ops in strategies::ops(40),
    ) {
        let opts = Options::default().sync(sync).segment_size(segment).buffer_size(buffer);
        if let Err(e) = run_ops_faultfs(opts, &ops) {
            prop_assert!(false, "{}", e);
        }
    }

    /// Fork trees (forks of forks, forks of archived versions, rewinds) replayed on a store and the model.
    #[test]
    fn fork_trees_match_model(tree in strategies::fork_tree(8, 6)) {
        let dir = tempdir().unwrap();
        let store = forklog::Store::open_with(dir.path(), Options::default().segment_size(4096)).unwrap();
        let mut model = Model::new();
        tree.apply(&store, &mut model).unwrap();
        if let Err(e) = assert_store_matches(&store, &model) {
            prop_assert!(false, "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Any value logged comes back bit-exact (NaN payloads, -0.0, nesting) through a reopen.
    #[test]
    fn values_round_trip(rows in proptest::collection::vec(strategies::metrics(4), 1..8)) {
        let ops: Vec<Op> = std::iter::once(Op::Create { run: RunPick::Id(0) })
            .chain(rows.into_iter().map(|metrics| Op::Log { writer: 0, step: StepPick::Next, time: None, metrics }))
            .chain([Op::Reopen])
            .collect();
        if let Err(e) = run_ops(Options::default(), &ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Guards the harness itself: an invalid step is refused by both sides with the same
/// `StepNotIncreasing { last, got }`, nothing is written, and an archived version can't be rewound.
#[test]
fn invalid_steps_and_archived_rewind() {
    let ops = [
        Op::Create { run: RunPick::Id(0) },
        Op::Log { writer: 0, step: StepPick::At(5), time: Some(1.5), metrics: metrics! { "loss" => 1.0 } },
        Op::Log { writer: 0, step: StepPick::At(5), time: None, metrics: metrics! { "loss" => 2.0 } },
        Op::LogBatch {
            writer: 0,
            rows: vec![(StepPick::Next, metrics! {}), (StepPick::At(3), metrics! { "acc" => Value::Null })],
        },
        Op::Close { writer: 0 },
        Op::Rewind { run: RunPick::Id(0), version: None, step: 2 },
        Op::Close { writer: 0 },
        Op::Rewind { run: RunPick::Id(0), version: Some(0), step: 2 },
        Op::Fork { run: RunPick::Id(1), parent: RunPick::Id(0), version: Some(0), step: u64::MAX },
        Op::Log { writer: 0, step: StepPick::Next, time: None, metrics: metrics! {} },
        Op::Verify,
    ];
    run_ops(always(), &ops).unwrap();
}

/// Regression: `runs()` / `runs_all()` (and so `children()`) did not flush this process's writers, so a run
/// with buffered events was listed with stale `rows`/`events` (read-your-writes broke for listings).
#[test]
fn listings_see_buffered_writes() {
    let ops = [
        Op::Create { run: RunPick::Id(0) },
        Op::Log { writer: 0, step: StepPick::Next, time: None, metrics: metrics! {} },
        Op::Config { writer: 0, patch: metrics! { "lr" => 0.1 } },
    ];
    run_ops(Options::default(), &ops).unwrap();
}

/// Regression: segment headers and index entries stored "no step" as `u64::MAX`, so a run whose last step
/// was `u64::MAX` (a legal step) lost it once a segment rolled: `info` said `last_step: None`, and a resumed
/// writer accepted step 1 after `u64::MAX`, making the history non-monotonic. Presence is now a flag bit.
#[test]
fn step_u64_max_survives_segment_roll_and_resume() {
    let dir = tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().segment_size(4096).buffer_size(1)).unwrap();
    let mut w = store.create_run("r").unwrap();
    w.log_at(u64::MAX, metrics! { "blob" => Value::Bytes(vec![0; 5000]) }).unwrap();
    w.set_config(metrics! {}).unwrap(); // lands in segment 1, whose header records last_log = u64::MAX
    drop(w);
    assert_eq!(store.info("r").unwrap().last_step, Some(u64::MAX));
    let mut w = store.resume("r").unwrap();
    assert_eq!(w.last_step(), Some(u64::MAX));
    assert!(matches!(w.log_at(1, metrics! {}), Err(forklog::Error::StepNotIncreasing { got: 1, .. })));
    drop(w);
    let steps: Vec<u64> = store.history("r").unwrap().map(|r| r.unwrap().step).collect();
    assert_eq!(steps, vec![u64::MAX]);
}

/// Regression (fixed): the active segment's step-index entries are written but never fsynced
/// (`WriterCore::sync` syncs only the segment), and readers of an unsealed index tolerate only its *last*
/// entry being invalid. A crash that leaves several unsynced entries as zeros or garbage (a power loss) then
/// makes `info`, `runs()` (the whole listing) and `verify` fail with `Corrupt("index entry checksum
/// mismatch")` until a writer reopens the run, though every acknowledged event survived.
#[test]
fn unsynced_index_entries_garbled_by_a_crash_break_reads() {
    for data in [Unsynced::Zeroed, Unsynced::Garbage] {
        let fs = FaultFs::new();
        let opts = Options::default().vfs(fs.clone()).sync(SyncPolicy::Always);
        let store = Store::open_with(FaultFs::store_path(), opts.clone()).unwrap();
        let mut w = store.create_run("r").unwrap();
        w.log(metrics! { "blob" => Value::Bytes(vec![0; 5000]) }).unwrap(); // index entry 0 (unsynced)
        w.log(metrics! {}).unwrap(); // frame 4 KiB further: index entry 1 (unsynced); both frames are synced
        fs.crash(CrashMode::new(data, Entries::Kept, 7));
        drop(w);
        drop(store);
        let store = Store::open_with(FaultFs::store_path(), opts).unwrap();
        assert_eq!(store.info("r").map(|i| i.rows).map_err(|e| e.to_string()), Ok(2), "{data:?}");
        assert_eq!(store.runs().map(|r| r.len()).map_err(|e| e.to_string()), Ok(1), "{data:?}");
        let from1 = store.history_with("r", &HistoryOptions::new().from_step(1)).unwrap().count();
        assert_eq!(from1, 1, "{data:?}");
        let report = store.verify().unwrap();
        assert!(report.is_clean(), "{data:?}: {:?}", report.problems);
    }
}

/// Regression (fixed: the tombstone records the run's current version): `gc` removes the versions of a
/// deleted run that no live run inherits from, and the catalog then took the last *kept* version for the
/// current one, so an archived version (`a@v0` below, kept for fork `f`) was listed with `archived: false`
/// although `a` had been rewound to v1.
#[test]
fn archived_versions_stay_archived_after_gc() {
    let dir = tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = store.create_run("a").unwrap();
    a.log(metrics! { "x" => 1 }).unwrap();
    drop(a);
    drop(store.rewind("a", 0).unwrap()); // a@v0 archived, a@v1 current
    drop(store.fork("f", &"a@v0?_step=0".parse().unwrap()).unwrap());
    store.delete_run("a").unwrap();
    store.gc().unwrap(); // a@v1 is unreachable and removed; a@v0 stays for f
    let all = store.runs_all().unwrap();
    let a0 = all.iter().find(|i| i.id == "a" && i.version == 0).expect("a@v0 is kept for its fork");
    assert!(a0.archived, "a@v0 is an older version of a rewound run: {a0:?}");
}

/// Regression (fixed: headers are re-read, key tables cached per nonce): a `Store` cached version headers
/// (and key tables) per `(run, version)` for its lifetime. When another handle — typically another process — deletes a run, gc frees its id and
/// the run is created again, the first handle keeps the old header (old nonce), and every read of the run
/// through it fails with `Corrupt("segment header names v0 segment 0, not this file")` until reopened —
/// or, for a run with no data yet, silently shows the old header's `fork_step`, lineage and `created`.
#[test]
fn a_long_lived_handle_sees_a_run_recreated_by_another() {
    let dir = tempdir().unwrap();
    let a = Store::open(dir.path()).unwrap();
    let b = Store::open(dir.path()).unwrap();
    let mut w = a.create_run("r").unwrap();
    w.log(metrics! { "x" => 1 }).unwrap();
    w.finish(0).unwrap();
    assert_eq!(a.history("r").unwrap().count(), 1); // a caches r@v0's header
    b.delete_run("r").unwrap();
    b.gc().unwrap();
    let mut w = b.create_run("r").unwrap();
    w.log_at(7, metrics! { "y" => 2 }).unwrap();
    w.finish(0).unwrap();
    let steps: Vec<u64> = a.history("r").unwrap().map(|r| r.map(|r| r.step)).collect::<forklog::Result<_>>().unwrap();
    assert_eq!(steps, vec![7]);

    // The silent variant: a fork with no rows yet, recreated from another step.
    drop(a.fork("c", &"r?_step=7".parse().unwrap()).unwrap());
    assert_eq!(a.info("c").unwrap().fork_step, Some(7)); // a caches c@v0's header
    b.delete_run("c").unwrap();
    b.gc().unwrap();
    drop(b.fork("c", &"r?_step=3".parse().unwrap()).unwrap());
    assert_eq!(a.info("c").unwrap().fork_step, Some(3));
    assert_eq!(a.lineage("c").unwrap()[1].fork_step, Some(3));
}
