//! The public API's shape (issue 14): one key type everywhere, and the types embedders see.

use forklog::{metrics, HistoryOptions, Key, Metrics, Store, Value};

/// `Metrics`, `Value::Map`, `summary`/`config` and `HistoryOptions::keys` share one key type, so a result can be
/// fed back without conversion: a summary is a `Value::Map`, its keys are a key filter, a `Value::Map` is a patch.
#[test]
fn one_key_type_across_metrics_maps_results_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let nested: Metrics = metrics! { "a" => 1, "b" => "x" };
    w.set_config(metrics! { "opt" => Value::Map(nested.clone()), "lr" => 0.5 }).unwrap();
    w.log(metrics! { "loss" => 1.0, "acc" => 0.25 }).unwrap();
    w.log(metrics! { "loss" => 0.5 }).unwrap();
    w.set_summary(metrics! { "best" => 0.5 }).unwrap();
    drop(w);

    let summary: Metrics = store.summary("r").unwrap();
    let config: Metrics = store.config("r").unwrap();
    assert_eq!(config["opt"], Value::Map(nested.clone()));
    let Value::Map(inner) = &config["opt"] else { panic!("opt is a map: {:?}", config["opt"]) };
    let inner_keys: Vec<&Key> = inner.keys().collect();
    assert_eq!(inner_keys, [&Key::from("a"), &Key::from("b")]);
    assert_eq!(summary, metrics! { "loss" => 0.5, "acc" => 0.25, "best" => 0.5 });

    // A summary's keys, as they are, filter a history.
    let keys: Vec<Key> = summary.keys().filter(|k| &***k == "acc").cloned().collect();
    let rows: Vec<_> =
        store.history_with("r", &HistoryOptions::new().keys(keys)).unwrap().collect::<forklog::Result<_>>().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].metrics, metrics! { "acc" => 0.25 });

    // A result is a map value, and a row's metrics are a map value, with no key conversion.
    let whole = Value::Map(summary.clone());
    assert_eq!(whole, Value::Map(store.summary_by_replay("r").unwrap()));
    assert_eq!(Value::Map(rows[0].metrics.clone()), Value::Map(metrics! { "acc" => 0.25 }));
    // `&str`, `String` and `Key` all name keys in a filter.
    let by_str = HistoryOptions::new().keys(["acc"]);
    let by_string = HistoryOptions::new().keys([String::from("acc")]);
    let by_key = HistoryOptions::new().keys([Key::from("acc")]);
    assert_eq!(by_str, by_string);
    assert_eq!(by_str, by_key);
}

/// Serde conversion of a map-shaped value yields `Key`-keyed maps (the one key type), and back.
#[test]
fn serde_maps_use_the_key_type() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Opt {
        lr: f64,
        layers: Vec<u32>,
    }
    let v = forklog::to_value(&Opt { lr: 0.1, layers: vec![2, 3] }).unwrap();
    let Value::Map(m) = &v else { panic!("a struct is a map: {v:?}") };
    assert_eq!(m.get("lr"), Some(&Value::Float(0.1)));
    let back: Opt = forklog::from_value(v).unwrap();
    assert_eq!(back, Opt { lr: 0.1, layers: vec![2, 3] });
    let as_metrics: Metrics = forklog::to_metrics(&back).unwrap();
    assert_eq!(as_metrics.keys().map(|k| &**k).collect::<Vec<_>>(), ["layers", "lr"]);
}

/// `Options` is built with its builder and read with its getters (its fields are private; the `compile_fail`
/// doctest on `Options` checks that a struct literal does not compile).
#[test]
fn options_are_built_and_read_through_methods() {
    use forklog::{Options, SyncPolicy};
    let d = Options::default();
    assert_eq!(d.sync_policy(), SyncPolicy::EveryMillis(1000));
    assert_eq!(d.segment_bytes(), forklog::DEFAULT_SEGMENT_SIZE);
    assert_eq!(d.buffer_bytes(), forklog::DEFAULT_BUFFER_SIZE);
    assert!(!d.is_read_only());
    assert!(d.creates_missing());
    let o = d.sync(SyncPolicy::Never).segment_size(1).buffer_size(0).read_only(true).create(false);
    assert_eq!((o.sync_policy(), o.segment_bytes(), o.buffer_bytes()), (SyncPolicy::Never, 4096, 1));
    assert!(o.is_read_only() && !o.creates_missing());
    let fs: std::sync::Arc<dyn forklog::vfs::Vfs> = std::sync::Arc::new(forklog::vfs::StdFs);
    let o = o.vfs(fs.clone());
    assert!(std::sync::Arc::ptr_eq(o.backend(), &fs));
}

/// Replay iterators can be printed, and a problem kind names itself as `verify` prints it.
#[test]
fn iterators_are_debug_and_problem_kinds_have_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_run("r").unwrap().log(metrics! { "x" => 1 }).unwrap();
    let h = store.history_with("r", &HistoryOptions::new().keys(["x"])).unwrap();
    assert!(format!("{h:?}").starts_with("History"), "{h:?}");
    let e = store.events("r").unwrap();
    assert!(format!("{e:?}").starts_with("Events"), "{e:?}");
    assert_eq!(forklog::ProblemKind::Corrupt.as_str(), "corrupt");
    assert_eq!(forklog::ProblemKind::TornTail.as_str(), "torn tail");
}
