//! Fork and rewind semantics: inclusive fork steps, copy-free pointers that pin the prefix existing at fork
//! time, forks of forks, repeated rewinds with archived versions, and lineage kept across rewinds
//! (the W&B complaints #11056, #10694, #7951 in shared/semantics.md).

use forklog::{metrics, ForkPoint, HistoryOptions, Options, Store, SyncPolicy, Value};

fn steps(store: &Store, run: &str) -> Vec<u64> {
    store.history(run).unwrap().map(|r| r.unwrap().step).collect()
}

fn loss(i: u64) -> forklog::Metrics {
    metrics! { "loss" => 1.0 / (i as f64 + 1.0), "i" => i as i64 }
}

fn base(store: &Store, id: &str, n: u64) {
    let mut w = store.create_run(id).unwrap();
    for i in 0..n {
        w.log(loss(i)).unwrap();
    }
}

#[test]
fn fork_inherits_steps_up_to_and_including_n() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    base(&store, "a", 100);
    let mut f = store.fork("b", &"a?_step=41".parse().unwrap()).unwrap();
    assert_eq!(f.next_step(), 42);
    assert_eq!(f.last_step(), Some(41));
    f.log(metrics! { "loss" => 9.0 }).unwrap();
    drop(f);
    assert_eq!(steps(&store, "b"), (0..=42).collect::<Vec<_>>());
    let rows: Vec<_> = store.history("b").unwrap().map(Result::unwrap).collect();
    assert_eq!(rows[41].metrics["i"], Value::Int(41));
    assert_eq!(rows[41].origin.to_string(), "a@v0");
    assert_eq!(rows[42].origin.to_string(), "b@v0");
    assert_eq!(rows[42].metrics["loss"], Value::Float(9.0));
    // The parent is untouched.
    assert_eq!(steps(&store, "a"), (0..100).collect::<Vec<_>>());
    let info = store.info("b").unwrap();
    assert_eq!((info.rows, info.first_step, info.last_step), (43, Some(0), Some(42)));
    assert_eq!(info.parent.unwrap().to_string(), "a@v0");
    assert_eq!(info.fork_step, Some(41));
}

#[test]
fn fork_copies_no_history_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    base(&store, "a", 20_000);
    drop(store.fork("b", &ForkPoint::new("a", 10_000)).unwrap());
    let run_bytes = |id: &str| -> u64 {
        std::fs::read_dir(dir.path().join("runs").join(id)).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    assert!(run_bytes("a") > 200_000, "{}", run_bytes("a"));
    assert!(run_bytes("b") < 1_000, "fork wrote {} bytes", run_bytes("b"));
    assert_eq!(store.history("b").unwrap().count(), 10_001);
}

#[test]
fn fork_step_past_the_end_inherits_everything_and_continues_after_n() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    base(&store, "a", 10);
    let mut f = store.fork("b", &ForkPoint::new("a", 1000)).unwrap();
    assert_eq!(f.next_step(), 1001);
    let err = f.log_at(500, loss(0)).unwrap_err();
    assert!(matches!(err, forklog::Error::StepNotIncreasing { last: 1000, got: 500, .. }), "{err}");
    f.log(loss(1)).unwrap();
    drop(f);
    let mut expected: Vec<u64> = (0..10).collect();
    expected.push(1001);
    assert_eq!(steps(&store, "b"), expected);
}

#[test]
fn fork_of_fork_of_fork_and_forks_into_the_inherited_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().buffer_size(200)).unwrap();
    base(&store, "r", 50);
    let mut prev = "r".to_string();
    for depth in 1..=5u64 {
        let id = format!("f{depth}");
        let mut w = store.fork(&id, &ForkPoint::new(prev.clone(), 40 + depth * 10 - 10)).unwrap();
        for _ in 0..10 {
            w.log(loss(depth)).unwrap();
        }
        drop(w);
        prev = id;
    }
    // f1 forks r at 40 (0..=40 + 41..=50), f2 forks f1 at 50, ... each adds 10 rows.
    assert_eq!(steps(&store, "f5"), (0..=90).collect::<Vec<_>>());
    // A fork of f5 at a step that lives in r's data.
    drop(store.fork("deep", &ForkPoint::new("f5", 7)).unwrap());
    assert_eq!(steps(&store, "deep"), (0..=7).collect::<Vec<_>>());
    assert_eq!(store.info("deep").unwrap().rows, 8);
    let lineage: Vec<String> = store.lineage("deep").unwrap().iter().map(|e| e.run.to_string()).collect();
    assert_eq!(lineage, ["r@v0", "f1@v0", "f2@v0", "f3@v0", "f4@v0", "f5@v0", "deep@v0"]);
    let fork_steps: Vec<Option<u64>> = store.lineage("deep").unwrap().iter().map(|e| e.fork_step).collect();
    assert_eq!(fork_steps, [None, Some(40), Some(50), Some(60), Some(70), Some(80), Some(7)]);
    let kids: Vec<String> = store.children("f5").unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(kids, ["deep"]);
    // Seek inside the chain.
    let from: Vec<u64> = store
        .history_with("f5", &HistoryOptions::new().from_step(45).to_step(62))
        .unwrap()
        .map(|r| r.unwrap().step)
        .collect();
    assert_eq!(from, (45..=62).collect::<Vec<_>>());
    let own: Vec<u64> =
        store.history_with("f5", &HistoryOptions::new().own_only(true)).unwrap().map(|r| r.unwrap().step).collect();
    assert_eq!(own, (81..=90).collect::<Vec<_>>());
}

#[test]
fn fork_while_the_parent_is_being_written_pins_the_prefix_at_fork_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("live").unwrap();
    for i in 0..30 {
        w.log(loss(i)).unwrap();
    }
    // Fork beyond the end while the writer is open (and has buffered rows).
    drop(store.fork("snap", &ForkPoint::new("live", 1_000_000)).unwrap());
    for i in 30..60 {
        w.log(loss(i)).unwrap();
    }
    drop(w);
    assert_eq!(steps(&store, "snap"), (0..30).collect::<Vec<_>>());
    assert_eq!(steps(&store, "live"), (0..60).collect::<Vec<_>>());
}

#[test]
fn many_forks_of_one_parent_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().buffer_size(64)).unwrap();
    base(&store, "p", 25);
    for n in 0..25u64 {
        let mut w = store.fork(&format!("c{n}"), &ForkPoint::new("p", n)).unwrap();
        w.log(metrics! { "child" => n as i64 }).unwrap();
    }
    for n in 0..25u64 {
        let mut expected: Vec<u64> = (0..=n).collect();
        expected.push(n + 1);
        assert_eq!(steps(&store, &format!("c{n}")), expected);
    }
    assert_eq!(store.children("p").unwrap().len(), 25);
}

#[test]
fn rewind_archives_versions_and_can_be_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("run").unwrap();
    w.set_config(metrics! { "lr" => 0.1 }).unwrap();
    for i in 0..100 {
        w.log(loss(i)).unwrap();
    }
    drop(w);
    let mut w = store.rewind("run", 59).unwrap();
    assert_eq!(w.version(), 1);
    assert_eq!(w.next_step(), 60);
    w.set_config(metrics! { "lr" => 0.05 }).unwrap();
    for i in 60..80 {
        w.log(metrics! { "loss" => 2.0, "i" => i as i64 }).unwrap();
    }
    drop(w);
    // Second rewind, into the prefix inherited from v0 (W&B lost data here: wandb #7951).
    let mut w = store.rewind_to(&"run?_step=69".parse().unwrap()).unwrap();
    assert_eq!(w.version(), 2);
    w.log(metrics! { "loss" => 3.0 }).unwrap();
    drop(w);
    assert_eq!(steps(&store, "run"), (0..=70).collect::<Vec<_>>());
    assert_eq!(steps(&store, "run@v0"), (0..100).collect::<Vec<_>>());
    assert_eq!(steps(&store, "run@v1"), (0..80).collect::<Vec<_>>());
    let rows: Vec<_> = store.history("run").unwrap().map(Result::unwrap).collect();
    assert_eq!(rows[59].origin.to_string(), "run@v0");
    assert_eq!(rows[60].origin.to_string(), "run@v1");
    assert_eq!(rows[70].origin.to_string(), "run@v2");
    assert_eq!(store.config("run").unwrap()["lr"], Value::Float(0.05));
    assert_eq!(store.config("run@v0").unwrap()["lr"], Value::Float(0.1));
    assert_eq!(store.summary("run").unwrap()["loss"], Value::Float(3.0));
    let all = store.runs_all().unwrap();
    assert_eq!(all.iter().filter(|i| i.id == "run").count(), 3);
    assert_eq!(all.iter().filter(|i| i.archived).count(), 2);
    let info = store.info("run").unwrap();
    assert_eq!((info.version, info.rewind_step, info.rows), (2, Some(69), 71));
    // Archived versions can be forked.
    drop(store.fork("alt", &"run@v0?_step=95".parse().unwrap()).unwrap());
    assert_eq!(steps(&store, "alt"), (0..=95).collect::<Vec<_>>());
    // But not written.
    assert!(matches!(store.resume("run@v0"), Err(forklog::Error::ReadOnlyVersion { .. })));
}

#[test]
fn rewound_fork_keeps_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    base(&store, "a", 20);
    let mut f = store.fork("b", &ForkPoint::new("a", 10)).unwrap();
    for i in 0..10 {
        f.log(loss(i)).unwrap();
    }
    drop(f);
    drop(store.rewind("b", 5).unwrap());
    let info = store.info("b").unwrap();
    assert_eq!(info.parent.unwrap().to_string(), "a@v0");
    assert_eq!(info.fork_step, Some(10));
    assert_eq!(steps(&store, "b"), (0..=5).collect::<Vec<_>>());
    let lineage: Vec<String> = store.lineage("b").unwrap().iter().map(|e| e.run.to_string()).collect();
    assert_eq!(lineage, ["a@v0", "b@v1"]);
}

#[test]
fn rewind_is_refused_while_a_writer_is_open_and_allowed_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("x").unwrap();
    w.log(loss(0)).unwrap();
    assert!(matches!(store.rewind("x", 0), Err(forklog::Error::RunBusy { .. })));
    drop(w);
    assert!(store.rewind("x", 0).is_ok());
}

#[test]
fn summary_of_a_fresh_fork_is_the_inherited_prefix_summary_and_config_is_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("a").unwrap();
    w.set_config(metrics! { "batch" => 32, "opt" => "adam" }).unwrap();
    for i in 0..10 {
        w.log(metrics! { "loss" => i as f64, "acc" => i as i64 }).unwrap();
    }
    w.set_summary(metrics! { "best" => 0.5 }).unwrap();
    w.log(metrics! { "loss" => 100.0 }).unwrap();
    drop(w);
    drop(store.fork("b", &ForkPoint::new("a", 4)).unwrap());
    let s = store.summary("b").unwrap();
    assert_eq!(s["loss"], Value::Float(4.0));
    assert_eq!(s["acc"], Value::Int(4));
    assert!(!s.contains_key("best"));
    assert_eq!(store.config("b").unwrap()["opt"], Value::Str("adam".into()));
    let s = store.summary("a").unwrap();
    assert_eq!((s["loss"].clone(), s["best"].clone()), (Value::Float(100.0), Value::Float(0.5)));
}

#[test]
fn fork_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never)).unwrap();
    base(&store, "a", 3);
    base(&store, "taken", 1);
    let e = |r: forklog::Result<forklog::RunWriter>| r.unwrap_err();
    assert!(matches!(e(store.fork("a", &ForkPoint::new("a", 1))), forklog::Error::ForkOntoItself { .. }));
    assert!(matches!(e(store.fork("taken", &ForkPoint::new("a", 1))), forklog::Error::RunExists { .. }));
    assert!(matches!(e(store.fork("new", &ForkPoint::new("nope", 1))), forklog::Error::RunNotFound { .. }));
    assert!(matches!(e(store.fork("new", &"a@v3?_step=1".parse().unwrap())), forklog::Error::RunNotFound { .. }));
    assert!(matches!(e(store.fork("bad/id", &ForkPoint::new("a", 1))), forklog::Error::InvalidRunId { .. }));
    assert!(store.info("new").is_err(), "a failed fork leaves nothing behind");
}

#[test]
fn the_row_visitor_sees_exactly_what_the_iterator_sees() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().buffer_size(300)).unwrap();
    base(&store, "a", 500);
    let mut f = store.fork("b", &ForkPoint::new("a", 250)).unwrap();
    let shared: forklog::Metrics = metrics! { "loss" => 0.5, "extra" => "x" };
    for _ in 0..100 {
        f.log_ref(&shared).unwrap();
    }
    drop(f);
    for opts in [
        HistoryOptions::new(),
        HistoryOptions::new().from_step(200).to_step(300),
        HistoryOptions::new().keys(["extra"]),
        HistoryOptions::new().own_only(true).keys(["loss", "i"]),
    ] {
        let via_iter: Vec<forklog::LogRow> = store.history_with("b", &opts).unwrap().map(Result::unwrap).collect();
        let mut via_visitor = Vec::new();
        store.history_with("b", &opts).unwrap().for_each_row(|r| via_visitor.push(r.to_row())).unwrap();
        assert_eq!(via_visitor, via_iter, "{opts:?}");
        assert!(!via_iter.is_empty());
    }
    let mut sum = 0.0;
    store.history("b").unwrap().for_each_row(|r| sum += r.get("loss").and_then(Value::as_f64).unwrap()).unwrap();
    let expected: f64 = (0..=250).map(|i| 1.0 / (i as f64 + 1.0)).sum::<f64>() + 50.0;
    assert!((sum - expected).abs() < 1e-9);
}

/// Step-index entries are written only once their frame is durable. A fork from a live writer of this process
/// (sync policy `Never`) makes the pinned bytes durable through that writer, so its pending index entries
/// reach the disk too and later lookups in the parent's active segment stay binary searches.
#[test]
fn a_fork_from_a_live_never_synced_writer_writes_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never)).unwrap();
    let mut w = store.create_run("live").unwrap();
    for i in 0..20_000u64 {
        w.log_floats(&[("loss", i as f64), ("acc", 0.5)]).unwrap();
    }
    w.flush().unwrap();
    let idx = dir.path().join("runs/live/v0-0.idx");
    let header_only = std::fs::metadata(&idx).unwrap().len();
    assert_eq!(header_only, 32, "no entry before the segment is synced");
    drop(store.fork("kid", &ForkPoint::new("live", 10_000)).unwrap());
    let with_entries = std::fs::metadata(&idx).unwrap().len();
    assert!(with_entries >= 32 + 64 * 4, "index after the fork: {with_entries} bytes");
    assert_eq!(w.durable_step(), Some(19_999));
    // The writer goes on; the fork reads what it pinned.
    w.log_floats(&[("loss", -1.0)]).unwrap();
    drop(w);
    assert_eq!(steps(&store, "kid"), (0..=10_000).collect::<Vec<_>>());
    assert_eq!(steps(&store, "live").len(), 20_001);
}

/// Regression (random SIGKILLs of `rewind`): a new version left with its header and a 0-byte first segment
/// (segment creation interrupted). A fork made from it afterwards must point only at bytes that exist and are
/// durable: its history reads, `verify` is clean, and the parent still resumes (recovery removes the empty
/// segment; the fork's pointer pins none of its bytes). The same for an empty newest segment after sealed ones.
#[test]
fn fork_after_an_interrupted_segment_creation_points_at_existing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().segment_size(4096)).unwrap();
    let mut w = store.create_run("r").unwrap();
    for i in 0..5 {
        w.log(metrics! { "x" => i as f64 }).unwrap();
    }
    w.finish(0).unwrap();
    drop(store.rewind("r", 3).unwrap());
    let run_dir = dir.path().join("runs/r");
    std::fs::write(run_dir.join("v1-0.seg"), b"").unwrap();
    let steps = |s: &Store, id: &str| -> Vec<u64> { s.history(id).unwrap().map(|r| r.unwrap().step).collect() };
    let store = Store::open_with(dir.path(), Options::default().segment_size(4096)).unwrap();
    drop(store.fork("f", &"r?_step=2".parse().unwrap()).unwrap());
    drop(store.fork("g", &"r?_step=9".parse().unwrap()).unwrap());
    assert_eq!(steps(&store, "f"), vec![0, 1, 2]);
    assert_eq!(steps(&store, "g"), vec![0, 1, 2, 3]);
    assert!(store.verify().unwrap().is_clean(), "{:?}", store.verify().unwrap().problems);
    let mut w = store.resume("r").unwrap();
    assert_eq!(w.recovery().cuts.len(), 1);
    w.log(metrics! { "x" => 9.0 }).unwrap();
    drop(w);
    assert_eq!(steps(&store, "g"), vec![0, 1, 2, 3]);
    assert_eq!(steps(&store, "r"), vec![0, 1, 2, 3, 4]);
    assert!(store.verify().unwrap().problems.is_empty(), "{:?}", store.verify().unwrap().problems);

    // An empty newest segment after sealed ones: the fork points at the end of the last sealed one.
    let mut w = store.create_run("s").unwrap();
    let mut n = 0u64;
    while !run_dir.with_file_name("s").join("v0-1.seg").exists() {
        w.log(metrics! { "x" => n as f64, "pad" => "p".repeat(300) }).unwrap();
        n += 1;
    }
    drop(w);
    let sdir = run_dir.with_file_name("s");
    let last_len = std::fs::metadata(sdir.join("v0-1.seg")).unwrap().len();
    assert!(last_len > 80);
    std::fs::write(sdir.join("v0-2.seg"), b"").unwrap();
    drop(store.fork("t", &format!("s?_step={}", n + 10).parse().unwrap()).unwrap());
    assert_eq!(steps(&store, "t").len() as u64, n);
    let mut w = store.resume("s").unwrap();
    w.log(metrics! { "x" => 0.5 }).unwrap();
    drop(w);
    assert_eq!(steps(&store, "t").len() as u64, n);
    assert_eq!(steps(&store, "s").len() as u64, n + 1);
    assert!(store.verify().unwrap().problems.is_empty(), "{:?}", store.verify().unwrap().problems);
}
