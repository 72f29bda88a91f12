//! Writer promises: step rules (nothing written on a rejected step), batches are all-or-nothing, one
//! writer per run (RunBusy across handles), values round-trip bit-exactly, reopen after drop, segment
//! rolling, run states, and the on-disk size of a typical row (<= 64 bytes for 5 floats).

use forklog::{metrics, Error, Event, HistoryOptions, Metrics, Options, RunState, Store, SyncPolicy, Value};

fn rows(store: &Store, run: &str) -> Vec<(u64, Metrics)> {
    store.history(run).unwrap().map(|r| r.map(|r| (r.step, r.metrics)).unwrap()).collect()
}

#[test]
fn steps_default_to_next_and_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    assert_eq!(w.next_step(), 0);
    assert_eq!(w.log(metrics! { "a" => 1 }).unwrap(), 0);
    w.log_at(10, metrics! { "a" => 2 }).unwrap();
    assert_eq!(w.log(metrics! { "a" => 3 }).unwrap(), 11);
    for bad in [11, 5, 0] {
        match w.log_at(bad, metrics! { "a" => 4 }) {
            Err(Error::StepNotIncreasing { run, last, got }) => assert_eq!((run.as_str(), last, got), ("r", 11, bad)),
            other => panic!("{other:?}"),
        }
    }
    // A batch with one bad step writes nothing at all.
    let batch =
        vec![(Some(12), metrics! { "a" => 5 }), (Some(13), metrics! { "a" => 6 }), (Some(13), metrics! { "a" => 7 })];
    assert!(matches!(w.log_batch(batch), Err(Error::StepNotIncreasing { last: 13, got: 13, .. })));
    assert_eq!(w.next_step(), 12);
    let ok = vec![(None, metrics! { "a" => 8 }), (Some(20), metrics! { "a" => 9 }), (None, metrics! { "a" => 10 })];
    assert_eq!(w.log_batch(ok).unwrap(), Some(21));
    drop(w);
    let got: Vec<u64> = rows(&store, "r").iter().map(|r| r.0).collect();
    assert_eq!(got, [0, 10, 11, 12, 20, 21]);
    // Resume continues after the last step.
    let mut w = store.resume("r").unwrap();
    assert_eq!(w.last_step(), Some(21));
    assert_eq!(w.log(Metrics::new()).unwrap(), 22);
}

#[test]
fn one_writer_per_run_across_handles() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path()).unwrap();
    let b = Store::open(dir.path()).unwrap();
    let w = a.create_run("r").unwrap();
    assert!(matches!(b.resume("r"), Err(Error::RunBusy { .. })));
    assert!(matches!(a.resume("r"), Err(Error::RunBusy { .. })));
    assert!(matches!(b.delete_run("r"), Err(Error::RunBusy { .. })));
    assert!(matches!(b.create_run("r"), Err(Error::RunExists { .. })));
    assert_eq!(b.info("r").unwrap().state, RunState::Running);
    drop(w);
    assert_eq!(b.info("r").unwrap().state, RunState::Crashed);
    let w = b.resume("r").unwrap();
    w.finish(0).unwrap();
    assert_eq!(a.info("r").unwrap().state, RunState::Finished);
}

#[test]
fn values_round_trip_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let nan = f64::from_bits(0x7ff8_dead_beef_0001);
    let nested = Value::Map(
        [
            (forklog::Key::from("bins"), Value::List(vec![Value::Int(-3), Value::Float(f64::INFINITY), Value::Null])),
            ("raw".into(), Value::Bytes(vec![0, 255, 7])),
            ("ok".into(), Value::Bool(true)),
        ]
        .into(),
    );
    let m = metrics! {
        "nan" => nan, "negzero" => -0.0, "inf" => f64::NEG_INFINITY, "tiny" => f64::MIN_POSITIVE,
        "int" => i64::MIN, "s" => "héllo", "nested" => nested.clone(),
    };
    let mut w = store.create_run("v").unwrap();
    w.log(m.clone()).unwrap();
    w.set_config(metrics! { "nested" => nested.clone() }).unwrap();
    drop(w);
    let back = &rows(&store, "v")[0].1;
    assert_eq!(back, &m);
    match &back["nan"] {
        Value::Float(x) => assert_eq!(x.to_bits(), nan.to_bits()),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.config("v").unwrap()["nested"], nested);
}

#[test]
fn serde_structs_log_and_read_back() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Row {
        loss: f64,
        epoch: u32,
        tag: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("s").unwrap();
    let row = Row { loss: 0.25, epoch: 3, tag: "warm".into() };
    w.log_serde(&row).unwrap();
    assert!(matches!(w.log_serde(&5u32), Err(Error::Value { .. })));
    drop(w);
    let back: Row = store.history("s").unwrap().next().unwrap().unwrap().decode().unwrap();
    assert_eq!(back, row);
}

#[test]
fn reopen_after_drop_and_segments_roll() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options::default().segment_size(8192).buffer_size(512).sync(SyncPolicy::Never);
    {
        let store = Store::open_with(dir.path(), opts()).unwrap();
        let mut w = store.create_run("big").unwrap();
        for i in 0..5000u64 {
            w.log(metrics! { "x" => i as f64, "k" => format!("key{}", i % 7) }).unwrap();
        }
    }
    let segs = std::fs::read_dir(dir.path().join("runs/big"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"));
    assert!(segs.count() > 10);
    let store = Store::open_with(dir.path(), opts()).unwrap();
    let got = rows(&store, "big");
    assert_eq!(got.len(), 5000);
    assert!(got.iter().enumerate().all(|(i, (s, m))| *s == i as u64 && m["x"] == Value::Float(i as f64)));
    // Seeks land exactly, across segment boundaries.
    for from in [0u64, 1, 777, 2500, 4999, 5000] {
        let first = store.history_with("big", &HistoryOptions::new().from_step(from)).unwrap().next();
        assert_eq!(first.map(|r| r.unwrap().step), (from < 5000).then_some(from));
    }
    let mid: Vec<u64> = store
        .history_with("big", &HistoryOptions::new().from_step(1234).to_step(1240).keys(["x"]))
        .unwrap()
        .map(|r| r.unwrap().step)
        .collect();
    assert_eq!(mid, (1234..=1240).collect::<Vec<_>>());
    let mut w = store.resume("big").unwrap();
    assert_eq!(w.log(Metrics::new()).unwrap(), 5000);
    drop(w);
    assert!(store.verify().unwrap().is_clean());
    let info = store.info("big").unwrap();
    assert_eq!((info.rows, info.last_step), (5001, Some(5000)));
}

#[test]
fn five_float_rows_take_at_most_64_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never)).unwrap();
    let mut w = store.create_run("r").unwrap();
    let n = 200_000u64;
    for i in 0..n {
        let x = i as f64;
        w.log(metrics! { "loss" => 1.0 / (x + 1.0), "acc" => x.sin(), "lr" => 1e-3 * x.cos(), "grad_norm" => x.sqrt(), "throughput" => 1000.0 + x })
            .unwrap();
    }
    drop(w);
    let bytes: u64 =
        std::fs::read_dir(dir.path().join("runs/r")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let per_row = bytes as f64 / n as f64;
    assert!(per_row <= 64.0, "{per_row} bytes per row");
}

#[test]
fn other_events_sit_at_the_current_step_and_are_replayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("e").unwrap();
    w.set_config(metrics! { "a" => 1 }).unwrap();
    w.log(metrics! { "m" => 1.0 }).unwrap();
    w.log_system(metrics! { "gpu" => 0.5 }).unwrap();
    w.log_at(5, metrics! { "m" => 2.0 }).unwrap();
    w.set_summary(metrics! { "m" => 9.0 }).unwrap();
    w.finish(3).unwrap();
    let ev: Vec<(String, u64)> =
        store.events("e").unwrap().map(|r| r.unwrap().event).map(|e| (e.kind().to_string(), e.step())).collect();
    let expect = [("config", 0), ("log", 0), ("system", 0), ("log", 5), ("summary", 5), ("finish", 5)];
    assert_eq!(ev, expect.map(|(k, s)| (k.to_string(), s)));
    let sys: Vec<_> = store.system("e").unwrap().map(|r| r.unwrap().event).collect();
    assert!(matches!(&sys[..], [Event::System { step: 0, .. }]));
    assert_eq!(store.summary("e").unwrap()["m"], Value::Float(9.0));
    let info = store.info("e").unwrap();
    assert_eq!((info.state, info.events, info.rows), (RunState::Finished, 6, 2));
}

#[test]
fn invalid_input_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
        assert!(matches!(store.create_run(bad), Err(Error::InvalidRunId { .. })), "{bad:?}");
    }
    assert!(matches!(store.resume("missing"), Err(Error::RunNotFound { .. })));
    assert!(matches!(store.history("missing").err(), Some(Error::RunNotFound { .. })));
    assert!(matches!(store.info("x@vq"), Err(Error::InvalidRunId { .. })));
    for spec in ["a", "a?_step=-1", "a?_step=x", "?_step=1", "a?_steps=1"] {
        assert!(matches!(spec.parse::<forklog::ForkPoint>(), Err(Error::InvalidSpec { .. })), "{spec}");
    }
}

#[test]
fn policies_always_and_explicit_sync_report_durable_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Always)).unwrap();
    let mut w = store.create_run("d").unwrap();
    w.log(metrics! { "a" => 1 }).unwrap();
    assert_eq!(w.durable_step(), Some(0));
    w.set_sync_policy(SyncPolicy::Never);
    w.log(metrics! { "a" => 2 }).unwrap();
    assert_eq!(w.durable_step(), Some(0));
    w.sync().unwrap();
    assert_eq!(w.durable_step(), Some(1));
    w.set_sync_policy(SyncPolicy::EveryMillis(10));
    w.log(metrics! { "a" => 3 }).unwrap();
    let t = std::time::Instant::now();
    while w.durable_step() != Some(2) && t.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(w.durable_step(), Some(2), "the background syncer makes idle writers durable");
}

/// Zero sizes are clamped: a zero segment size does not make a segment per frame (3 small rows once made 8
/// files when a struct literal bypassed the builder; `Options`' fields are private now, see its
/// `compile_fail` doctest, so the builder is the only way in).
#[test]
fn zero_sizes_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let opts = forklog::Options::default().segment_size(0).buffer_size(0);
    assert_eq!((opts.segment_bytes(), opts.buffer_bytes()), (4096, 1));
    let store = forklog::Store::open_with(dir.path(), opts).unwrap();
    let mut w = store.create_run("r").unwrap();
    for i in 0..3 {
        w.log(forklog::metrics! { "x" => i as f64 }).unwrap();
    }
    w.finish(0).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("runs/r"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, vec!["v0-0.idx", "v0-0.seg", "v0-0.zmap", "v0.head", "v0.keys"]);
    assert_eq!(store.history("r").unwrap().count(), 3);
}

/// The background syncer lives as long as the writers it syncs, not only as long as the `Store` handle: a writer
/// that outlives its store handle still becomes durable under `EveryMillis` without calling `sync`.
#[test]
fn writer_outliving_its_store_handle_is_still_synced() {
    let dir = tempfile::tempdir().unwrap();
    let opts = forklog::Options::default().sync(forklog::SyncPolicy::EveryMillis(10));
    let store = forklog::Store::open_with(dir.path(), opts).unwrap();
    let mut w = store.create_run("r").unwrap();
    drop(store);
    w.log(forklog::metrics! { "x" => 1.0 }).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.durable_step() != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(w.durable_step(), Some(0), "the syncer made the idle writer durable after the store handle was dropped");
}
