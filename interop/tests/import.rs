//! Importers on files written by the real clients (tests/fixtures/interop, see VERSIONS.md there): every
//! imported value is compared with what `generate.py` logged (`expected.json`): W&B, MLflow and trackio floats
//! exactly, TensorBoard's as the float32 the file holds, widened. Forks and rewinds in the sources must become
//! forklog forks and rewinds, with the rewound-away rows readable in the archived version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forklog::{Event, Store, Value};
use forklog_interop::import::{self, ImportError, ImportOptions, ImportReport, Location, SourceFormat};
use serde_json::Value as J;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/interop")
}

fn expected() -> J {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("s")).expect("store");
    (dir, store)
}

fn run_import(store: &Store, format: SourceFormat, src: &[PathBuf], opts: &ImportOptions) -> ImportReport {
    let r = import::import_sources(store, format, src, opts);
    assert!(r.is_ok(), "import failed: {:?}", r.failed.iter().map(ToString::to_string).collect::<Vec<_>>());
    r
}

/// A JSON value as the forklog value an importer should produce for it.
fn jv(v: &J) -> Value {
    forklog_interop::json::from_json(v.clone())
}

/// (step, time, metrics) of each row of `run`.
fn rows(store: &Store, run: &str) -> Vec<(u64, f64, BTreeMap<String, Value>)> {
    store
        .history(run)
        .expect("history")
        .map(|r| {
            let r = r.expect("row");
            (r.step, r.time, r.metrics.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
        })
        .collect()
}

fn events(store: &Store, run: &str) -> Vec<Event> {
    store.events(run).expect("events").map(|e| e.expect("event").event).collect()
}

fn finish_code(store: &Store, run: &str) -> Option<i32> {
    match events(store, run).last() {
        Some(Event::Finish { exit_code, .. }) => Some(*exit_code),
        _ => None,
    }
}

// ------------------------------------------------------------------------------------------------- W&B

/// The rows the W&B script logged for one session, as (step, metrics).
fn wandb_rows(run: &J) -> Vec<(u64, BTreeMap<String, Value>)> {
    run["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let step = r["_step"].as_u64().expect("step");
            let m = r
                .as_object()
                .expect("row")
                .iter()
                .filter(|(k, _)| *k != "_step")
                .map(|(k, v)| (k.clone(), jv(v)))
                .collect();
            (step, m)
        })
        .collect()
}

fn assert_wandb_rows(
    got: &[(u64, f64, BTreeMap<String, Value>)],
    want: &[(u64, BTreeMap<String, Value>)],
    window: (f64, f64),
) {
    assert_eq!(got.len(), want.len(), "row count");
    let mut last_time = 0.0;
    for ((step, time, m), (wstep, wm)) in got.iter().zip(want) {
        assert_eq!(step, wstep);
        let mut m = m.clone();
        // `_runtime` is an ordinary W&B history item: kept, checked for shape only.
        assert!(matches!(m.remove("_runtime"), Some(Value::Float(_) | Value::Int(_))), "step {step}: _runtime");
        // W&B's value_json does not keep int vs float for whole numbers (the client writes 1.0 as `1`): a
        // whole float may come back as an Int of the same value, anything else must be bit-exact.
        let m: BTreeMap<String, Value> = m
            .into_iter()
            .map(|(k, v)| match (&v, wm.get(&k)) {
                (Value::Int(i), Some(Value::Float(x))) if *i as f64 == *x => (k, Value::Float(*x)),
                _ => (k, v),
            })
            .collect();
        assert_eq!(&m, wm, "step {step}");
        assert!(*time >= window.0 && *time <= window.1, "step {step}: time {time} outside {window:?}");
        assert!(*time >= last_time);
        last_time = *time;
    }
}

#[test]
fn wandb_offline_runs_with_fork_and_rewind() {
    let exp = expected();
    let w = &exp["wandb"];
    let window = (w["t_start"].as_f64().unwrap(), w["t_end"].as_f64().unwrap());
    let (_d, store) = store();
    let report = run_import(&store, SourceFormat::Wandb, &[fixtures().join("wandb")], &ImportOptions::default());
    // One line per source run, in start order: base, its fork, then the rewind of base.
    let got: Vec<_> =
        report.imported.iter().map(|r| (r.run.as_str(), r.version, r.parent.as_deref(), r.fork_step)).collect();
    assert_eq!(
        got,
        vec![
            ("base-run-a", 0, None, None),
            ("fork-run-b", 0, Some("base-run-a@v0"), Some(20)),
            ("base-run-a", 1, None, None)
        ]
    );
    assert_eq!(report.imported[0].rows, 30);
    assert_eq!(report.imported[1].rows, 31);
    assert_eq!(report.imported[2].rows, 26);
    assert!(report.imported[0].source.ends_with("run-base-run-a.wandb"));

    let runs = w["runs"].as_array().unwrap();
    let base = wandb_rows(&runs[0]);
    let fork = wandb_rows(&runs[1]);
    let rewound = wandb_rows(&runs[2]);
    // The archived version holds every row of the first session.
    assert_wandb_rows(&rows(&store, "base-run-a@v0"), &base, window);
    // The fork: base's rows up to step 20 (inherited from base@v0), then its own.
    let want: Vec<_> = base.iter().filter(|r| r.0 <= 20).cloned().chain(fork.iter().cloned()).collect();
    assert_wandb_rows(&rows(&store, "fork-run-b"), &want, window);
    // The rewind at 15: base's rows up to 15, then the new session's.
    let want: Vec<_> = base.iter().filter(|r| r.0 <= 15).cloned().chain(rewound.iter().cloned()).collect();
    assert_wandb_rows(&rows(&store, "base-run-a"), &want, window);

    // Config: the run record's and the later update; summary: rebuilt in order, the removed key null.
    let cfg = store.config("base-run-a@v0").unwrap();
    for (k, v) in runs[0]["config"].as_object().unwrap() {
        assert_eq!(cfg.get(k.as_str()), Some(&jv(v)), "config {k}");
    }
    assert_eq!(store.config("fork-run-b").unwrap()["lr"], Value::Float(0.05));
    let summary = store.summary("base-run-a@v0").unwrap();
    assert_eq!(summary["best_loss"], Value::Float(0.015625));
    assert_eq!(summary["scratch"], Value::Null);
    // Exit records → Finish with the exit code.
    assert_eq!(finish_code(&store, "base-run-a@v0"), Some(0));
    assert_eq!(finish_code(&store, "fork-run-b"), Some(0));
    assert_eq!(finish_code(&store, "base-run-a"), Some(3));
    // Stats records → System samples with the client's sample times.
    let system: Vec<_> = store.system("base-run-a@v0").unwrap().map(|e| e.unwrap().event).collect();
    assert!(!system.is_empty());
    for e in &system {
        let Event::System { time, metrics, .. } = e else { panic!("not a system event: {e:?}") };
        assert!(*time >= window.0 && *time <= window.1);
        assert!(metrics.keys().any(|k| k.starts_with("proc.") || k.starts_with("memory") || k.starts_with("disk")));
    }
    // Display name, tags, notes, group → run metadata; other run-record fields as key=value tags.
    let meta = store.meta("base-run-a@v0").unwrap();
    assert_eq!(meta.name.as_deref(), runs[0]["display_name"].as_str());
    assert_eq!(meta.notes.as_deref(), runs[0]["notes"].as_str());
    assert_eq!(meta.group.as_deref(), runs[0]["group"].as_str());
    for t in runs[0]["tags"].as_array().unwrap() {
        assert!(meta.has_tag(t.as_str().unwrap()), "{t}");
    }
    assert!(meta.has_tag("wandb.project=forklog-fixture"), "{:?}", meta.tags);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn wandb_prefix_and_as() {
    let (_d, store) = store();
    let opts = ImportOptions { prefix: "old.".into(), as_id: None };
    let report = run_import(&store, SourceFormat::Wandb, &[fixtures().join("wandb")], &opts);
    assert_eq!(report.imported[1].run, "old.fork-run-b");
    assert_eq!(report.imported[1].parent.as_deref(), Some("old.base-run-a@v0"));
    // --as names one run: the fork's file alone, whose parent is already in the store under the prefix. The
    // fork was made before the parent's rewind (imported above): it forks the version it was made from.
    let fork_file = fixtures().join(exp_file(1));
    let opts = ImportOptions { prefix: "old.".into(), as_id: Some("renamed".into()) };
    let r = run_import(&store, SourceFormat::Wandb, &[fork_file], &opts);
    assert_eq!(r.imported[0].run, "renamed");
    assert_eq!(r.imported[0].parent.as_deref(), Some("old.base-run-a@v0"));
    // --as with several runs is refused and nothing is written.
    let r = import::import_sources(
        &store,
        SourceFormat::Wandb,
        &[fixtures().join("wandb")],
        &ImportOptions { prefix: String::new(), as_id: Some("x".into()) },
    );
    assert!(matches!(r.failed.as_slice(), [ImportError::Usage(_)]));
    assert!(store.info("x").is_err());
}

#[test]
fn wandb_fork_imported_after_its_parents_rewind_forks_the_version_it_was_made_from() {
    let exp = expected();
    let w = &exp["wandb"];
    let window = (w["t_start"].as_f64().unwrap(), w["t_end"].as_f64().unwrap());
    let runs = w["runs"].as_array().unwrap();
    let (base, fork, rewound) = (wandb_rows(&runs[0]), wandb_rows(&runs[1]), wandb_rows(&runs[2]));
    let (_d, store) = store();
    let opts = ImportOptions::default();
    // First call: the base run and its rewind at 15 (v0, then v1).
    let r =
        run_import(&store, SourceFormat::Wandb, &[fixtures().join(exp_file(0)), fixtures().join(exp_file(2))], &opts);
    let got: Vec<_> = r.imported.iter().map(|r| (r.run.as_str(), r.version)).collect();
    assert_eq!(got, vec![("base-run-a", 0), ("base-run-a", 1)]);
    // Second call: the fork, started before the rewind, forks base@v0 at 20 (v1's steps 16..20 differ).
    let r = run_import(&store, SourceFormat::Wandb, &[fixtures().join(exp_file(1))], &opts);
    assert_eq!(r.imported[0].parent.as_deref(), Some("base-run-a@v0"));
    assert_eq!(r.imported[0].fork_step, Some(20));
    let want: Vec<_> = base.iter().filter(|r| r.0 <= 20).cloned().chain(fork.iter().cloned()).collect();
    assert_wandb_rows(&rows(&store, "fork-run-b"), &want, window);
    assert_ne!(
        base.iter().filter(|r| r.0 > 15 && r.0 <= 20).collect::<Vec<_>>(),
        rewound.iter().filter(|r| r.0 <= 20).collect::<Vec<_>>(),
        "the fixture's versions must differ where the fork inherits"
    );
    // The same in three calls (base, fork, rewind): the fork keeps pointing at v0.
    let (_d2, store2) = crate::store();
    for i in [0, 1, 2] {
        run_import(&store2, SourceFormat::Wandb, &[fixtures().join(exp_file(i))], &opts);
    }
    assert_eq!(store2.info("fork-run-b").unwrap().parent.map(|p| p.to_string()).as_deref(), Some("base-run-a@v0"));
    assert_wandb_rows(&rows(&store2, "fork-run-b"), &want, window);
    // A fork started after the rewind forks the current version.
    let late = fixtures().join(exp_file(1));
    let mut plans = import::decode_sources(SourceFormat::Wandb, &[late]).plans;
    plans[0].start_time = f64::MAX;
    let r = import::apply_plans(&store, plans, &ImportOptions { prefix: String::new(), as_id: Some("late".into()) });
    assert!(r.is_ok());
    assert_eq!(r.imported[0].parent.as_deref(), Some("base-run-a@v1"));
    let want: Vec<_> = base
        .iter()
        .filter(|r| r.0 <= 15)
        .chain(rewound.iter().filter(|r| r.0 <= 20))
        .cloned()
        .chain(fork.iter().cloned())
        .collect();
    // (Its own rows were logged before the rewind's, so its row times are not increasing: values only.)
    let got: Vec<_> = rows(&store, "late").into_iter().map(|(s, _, m)| (s, window.0, m)).collect();
    assert_wandb_rows(&got, &want, window);
}

fn exp_file(i: usize) -> PathBuf {
    let exp = expected();
    Path::new("wandb").join(exp["wandb"]["files"][i].as_str().unwrap())
}

#[test]
fn wandb_truncated_tail_imports_complete_records_and_reports_dropped_bytes() {
    let src = fixtures().join(exp_file(0));
    let data = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the last record (the client was killed mid-write).
    let cut = data.len() - 5;
    let f = dir.path().join("run-base-run-a.wandb");
    std::fs::write(&f, &data[..cut]).unwrap();
    let (_d, store) = store();
    let r = run_import(&store, SourceFormat::Wandb, &[f], &ImportOptions::default());
    assert_eq!(r.imported.len(), 1);
    assert!(r.warnings.iter().any(|w| w.contains("bytes") && w.contains("truncated")), "{:?}", r.warnings);
    let full = import::wandb::read_records(&data).unwrap();
    let cut_recs = import::wandb::read_records(&data[..cut]).unwrap();
    assert_eq!(cut_recs.records.len(), full.records.len() - 1);
    assert_eq!(cut_recs.dropped, (cut as u64) - full.records.last().unwrap().0);
}

#[test]
fn wandb_damage_is_an_error_with_offset_and_nothing_is_imported() {
    let src = fixtures().join(exp_file(0));
    let mut data = std::fs::read(&src).unwrap();
    let at = 5000;
    data[at] ^= 0x40;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wandb");
    std::fs::write(&bad, &data).unwrap();
    let (_d, store) = store();
    // The damaged file fails alone; the other run of the call (the TB-free fork file would need its parent,
    // so use the rewind-free base file of another name) is kept.
    let good = fixtures().join(exp_file(1));
    let r = import::import_sources(&store, SourceFormat::Wandb, &[bad.clone(), good], &ImportOptions::default());
    assert_eq!(r.failed.len() + r.imported.len(), 2);
    let ImportError::Input(e) = &r.failed[0] else { panic!("{:?}", r.failed) };
    assert_eq!(e.file, bad);
    let Location::Offset(off) = e.at else { panic!() };
    assert!(off <= at as u64 && at as u64 - off < 32 * 1024, "offset {off}");
    assert!(e.reason.contains("checksum"));
    assert!(store.info("base-run-a").is_err(), "nothing of the damaged run is visible");
    // The fork's parent is missing: that run fails too, and leaves nothing behind.
    assert!(store.info("fork-run-b").is_err());
    assert!(store.runs_all().unwrap().is_empty());
}

// --------------------------------------------------------------------------------------------- TensorBoard

/// The expected visible history and archived version 0 of a run with sessions and rewinds.
fn sessions_view(
    sessions: &[Vec<(u64, BTreeMap<String, Value>)>],
    rewinds: &[u64],
) -> Vec<Vec<(u64, BTreeMap<String, Value>)>> {
    // versions[k] = the visible history of version k.
    let mut versions = vec![sessions[0].clone()];
    for (i, at) in rewinds.iter().enumerate() {
        let prev = versions.last().unwrap();
        let mut v: Vec<_> = prev.iter().filter(|r| r.0 <= *at).cloned().collect();
        v.extend(sessions[i + 1].iter().cloned());
        versions.push(v);
    }
    versions
}

fn check_versions(
    store: &Store,
    run: &str,
    versions: &[Vec<(u64, BTreeMap<String, Value>)>],
    time_ok: &dyn Fn(u64, f64) -> bool,
) {
    let last = versions.len() - 1;
    for (k, want) in versions.iter().enumerate() {
        let name = if k == last { run.to_string() } else { format!("{run}@v{k}") };
        let got = rows(store, &name);
        let got_sm: Vec<_> = got.iter().map(|(s, _, m)| (*s, m.clone())).collect();
        assert_eq!(&got_sm, want, "{name}");
        for (s, t, _) in &got {
            assert!(time_ok(*s, *t), "{name} step {s}: time {t}");
        }
    }
    assert_eq!(store.info(run).unwrap().version as usize, last);
}

#[test]
fn tensorboard_tensorboardx_and_native_writer_with_purges() {
    let exp = expected();
    let tb = &exp["tensorboard"];
    let window = (tb["t_start"].as_f64().unwrap(), tb["t_end"].as_f64().unwrap());
    let (_d, store) = store();
    let report =
        run_import(&store, SourceFormat::Tensorboard, &[fixtures().join("tensorboard")], &ImportOptions::default());
    let mut ids: Vec<_> = report.imported.iter().map(|r| (r.run.clone(), r.version)).collect();
    ids.sort();
    assert_eq!(ids, vec![("native".to_string(), 1), ("tbx.run1".to_string(), 1)]);
    for (id, run) in tb["runs"].as_object().unwrap() {
        let sessions: Vec<Vec<(u64, BTreeMap<String, Value>)>> = run["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let mut v: Vec<_> = s
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(step, m)| {
                        let m = m
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::Float(v.as_f64().unwrap())))
                            .collect();
                        (step.parse::<u64>().unwrap(), m)
                    })
                    .collect();
                v.sort_by_key(|r| r.0);
                v
            })
            .collect();
        let rewinds: Vec<u64> = run["rewinds"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect();
        let versions = sessions_view(&sessions, &rewinds);
        check_versions(&store, id, &versions, &|_, t| t >= window.0 && t <= window.1);
        let cfg = store.config(id).unwrap();
        for (k, v) in run["hparams"].as_object().unwrap() {
            assert_eq!(cfg.get(k.as_str()), Some(&jv(v)), "{id}: hparam {k}");
        }
        assert_eq!(cfg.len(), run["hparams"].as_object().unwrap().len());
    }
}

#[test]
fn tensorboard_damage_and_truncation_are_errors_with_offsets() {
    let run_dir = fixtures().join("tensorboard/tbx/run1");
    let mut files: Vec<_> = std::fs::read_dir(&run_dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let data = std::fs::read(&files[0]).unwrap();
    // Record offsets of the good file.
    let offsets: Vec<u64> = import::tfrecord::records(&data).map(|r| r.unwrap().0).collect();
    for (mode, bytes) in [("flip", 0usize), ("cut", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        std::fs::create_dir(&run).unwrap();
        let mut d = data.clone();
        let target = offsets[3] as usize + 20;
        if bytes == 0 {
            d[target] ^= 1;
        } else {
            d.truncate(target);
        }
        let f = run.join("events.out.tfevents.1.x");
        std::fs::write(&f, &d).unwrap();
        let (_s, store) = store();
        let r = import::import_sources(
            &store,
            SourceFormat::Tensorboard,
            &[dir.path().to_path_buf()],
            &ImportOptions::default(),
        );
        let [ImportError::Input(e)] = r.failed.as_slice() else { panic!("{mode}: {:?}", r.failed) };
        assert_eq!(e.file, f, "{mode}");
        assert_eq!(e.at, Location::Offset(offsets[3]), "{mode}: {e}");
        assert!(store.runs_all().unwrap().is_empty(), "{mode}");
    }
}

// ------------------------------------------------------------------------------------------------- MLflow

fn point_sessions(run: &J, skip: &[&str]) -> Vec<Vec<(u64, BTreeMap<String, Value>)>> {
    run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let o = r.as_object().unwrap();
                    let m = o
                        .iter()
                        .filter(|(k, _)| !skip.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), jv(v)))
                        .collect();
                    (o["step"].as_u64().unwrap(), m)
                })
                .collect()
        })
        .collect()
}

fn row_times(run: &J) -> BTreeMap<(usize, u64), f64> {
    let mut out = BTreeMap::new();
    for (i, s) in run["sessions"].as_array().unwrap().iter().enumerate() {
        for r in s.as_array().unwrap() {
            out.insert((i, r["step"].as_u64().unwrap()), r["timestamp_ms"].as_f64().unwrap() / 1000.0);
        }
    }
    out
}

#[test]
fn mlflow_file_store_and_sqlite_with_a_resumed_run() {
    let exp = expected();
    for backend in ["file", "sqlite"] {
        let e = &exp["mlflow"][backend];
        let src = fixtures().join("mlflow").join(e["uri"].as_str().unwrap());
        let (_d, store) = store();
        let report = run_import(&store, SourceFormat::Mlflow, &[src], &ImportOptions::default());
        assert_eq!(report.imported.len(), 2, "{backend}");
        for run in e["runs"].as_array().unwrap() {
            let id = run["run_id"].as_str().unwrap();
            let sessions = point_sessions(run, &["step", "timestamp_ms"]);
            let rewinds: Vec<u64> = run["rewinds"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect();
            let versions = sessions_view(&sessions, &rewinds);
            let times = row_times(run);
            let n = versions.len();
            check_versions(&store, id, &versions, &|s, t| (0..n).any(|i| times.get(&(i, s)) == Some(&t)));
            // Params stay the strings MLflow stores.
            let cfg = store.config(id).unwrap();
            let params: forklog::Metrics = run["params"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().into(), Value::Str(v.as_str().unwrap().into())))
                .collect();
            assert_eq!(cfg.into_iter().collect::<BTreeMap<_, _>>(), params, "{backend} {id}");
            let code = match run["status"].as_str().unwrap() {
                "FINISHED" => 0,
                _ => 1,
            };
            assert_eq!(finish_code(&store, id), Some(code), "{backend} {id}");
            // Run name → display name; every tag kept as key=value.
            let meta = store.meta(id).unwrap();
            assert_eq!(meta.name.as_deref(), run["name"].as_str(), "{backend} {id}");
            for (k, v) in run["tags"].as_object().unwrap() {
                assert!(meta.has_tag(&format!("{k}={}", v.as_str().unwrap())), "{backend} {id}: {:?}", meta.tags);
            }
            // The run's other facts as mlflow.run.<field> tags, the experiment's name included (both backends).
            assert!(meta.has_tag("mlflow.run.experiment_name=fixture"), "{backend} {id}: {:?}", meta.tags);
            assert!(meta.has_tag("mlflow.run.lifecycle_stage=active"), "{backend} {id}: {:?}", meta.tags);
            // system/* metrics → System samples (both sessions' samples stay in the archived version).
            let mut sys: Vec<f64> = Vec::new();
            for k in 0..n {
                let name = if k + 1 == n { id.to_string() } else { format!("{id}@v{k}") };
                for ev in store.system(&name).unwrap() {
                    if let Event::System { metrics, .. } = ev.unwrap().event {
                        sys.push(metrics["system/cpu_utilization_percentage"].as_f64().unwrap());
                    }
                }
            }
            sys.sort_by(f64::total_cmp);
            sys.dedup();
            let mut want: Vec<f64> = run["system"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(sys, want, "{backend} {id}");
        }
    }
}

#[test]
fn mlflow_bad_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("0/abc");
    std::fs::create_dir_all(run.join("metrics")).unwrap();
    std::fs::write(run.join("meta.yaml"), "run_id: abc\nrun_name: x\nstatus: 3\nstart_time: 1\n").unwrap();
    std::fs::write(run.join("metrics/loss"), "1 0.5 0\n2 zero 1\n").unwrap();
    let (_d, store) = store();
    let r =
        import::import_sources(&store, SourceFormat::Mlflow, &[dir.path().to_path_buf()], &ImportOptions::default());
    let [ImportError::Input(e)] = r.failed.as_slice() else { panic!("{:?}", r.failed) };
    assert_eq!(e.file, run.join("metrics/loss"));
    assert_eq!(e.at, Location::Line(2));
    assert!(store.runs_all().unwrap().is_empty());
}

// ------------------------------------------------------------------------------------------------ trackio

#[test]
fn trackio_project_with_a_resumed_run() {
    let exp = expected();
    let t = &exp["trackio"];
    let window = (t["t_start"].as_f64().unwrap() - 1.0, t["t_end"].as_f64().unwrap() + 1.0);
    let (_d, store) = store();
    let report = run_import(&store, SourceFormat::Trackio, &[fixtures().join("trackio")], &ImportOptions::default());
    assert_eq!(report.imported.len(), 1);
    let run = &t["runs"][0];
    let id = run["name"].as_str().unwrap();
    assert_eq!(report.imported[0].run, id);
    let sessions = point_sessions(run, &["step"]);
    let rewinds: Vec<u64> = run["rewinds"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect();
    check_versions(&store, id, &sessions_view(&sessions, &rewinds), &|_, t| t >= window.0 && t <= window.1);
    let cfg = store.config(id).unwrap();
    for (k, v) in run["config"].as_object().unwrap() {
        assert_eq!(cfg.get(k.as_str()), Some(&jv(v)), "config {k}");
    }
    assert_eq!(store.meta(id).unwrap().name.as_deref(), Some(id));
    assert!(store.meta(id).unwrap().has_tag("trackio.project=fixture"));
}

#[test]
fn failed_run_is_removed_and_others_are_kept() {
    let (_d, store) = store();
    // Pre-existing run with the id of one source run: that run fails (RunExists), the others are imported.
    store.create_run("native").unwrap().finish(0).unwrap();
    let before = rows(&store, "native");
    let r = import::import_sources(
        &store,
        SourceFormat::Tensorboard,
        &[fixtures().join("tensorboard")],
        &ImportOptions::default(),
    );
    assert_eq!(r.imported.len(), 1);
    assert_eq!(r.imported[0].run, "tbx.run1");
    assert!(matches!(&r.failed[..], [ImportError::Store { run, .. }] if run == "native"));
    assert_eq!(rows(&store, "native"), before);
    assert!(store.verify().unwrap().is_clean());
}

/// A synthetic W&B file (the client's framing and messages, built with the decoder's own structs).
fn wandb_file(run_id: &str, start: i64, resumed: bool, rows: &[(i64, f64)], typed: bool) -> Vec<u8> {
    use forklog_interop::import::wandb::*;
    use prost::Message;
    let mut recs = vec![Record {
        num: 1,
        run: Some(RunRecord {
            run_id: run_id.into(),
            start_time: Some(Timestamp { seconds: start, nanos: 0 }),
            resumed,
            ..RunRecord::default()
        }),
        ..Record::default()
    }];
    for (step, v) in rows {
        let item = |k: &str, json: String, typed_v: Option<Typed>| HistoryItem {
            key: if typed { k.into() } else { String::new() },
            nested_key: if typed { vec![] } else { vec![k.into()] },
            typed: typed_v.filter(|_| typed),
            value_json: if typed { String::new() } else { json },
        };
        recs.push(Record {
            history: Some(HistoryRecord {
                item: vec![
                    item("_step", step.to_string(), Some(Typed::Integer(*step))),
                    item("_timestamp", format!("{}", 1.7e9 + *step as f64), Some(Typed::Number(1.7e9 + *step as f64))),
                    item("loss", format!("{v:?}"), Some(Typed::Number(*v))),
                ],
                step: None,
            }),
            ..Record::default()
        });
    }
    write_records(&recs.iter().map(Message::encode_to_vec).collect::<Vec<_>>())
}

#[test]
fn wandb_resumed_run_appends_and_typed_items_decode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wandb"), wandb_file("r", 100, false, &[(0, 0.5), (1, 0.25)], true)).unwrap();
    std::fs::write(dir.path().join("b.wandb"), wandb_file("r", 200, true, &[(2, 0.125)], false)).unwrap();
    let (_d, store) = store();
    let r = run_import(&store, SourceFormat::Wandb, &[dir.path().to_path_buf()], &ImportOptions::default());
    assert_eq!(r.imported.len(), 2);
    assert_eq!((r.imported[1].run.as_str(), r.imported[1].version, r.imported[1].rows), ("r", 0, 3));
    let got: Vec<_> = rows(&store, "r").into_iter().map(|(s, t, m)| (s, t, m["loss"].clone())).collect();
    assert_eq!(
        got,
        vec![
            (0, 1.7e9, Value::Float(0.5)),
            (1, 1.7e9 + 1.0, Value::Float(0.25)),
            (2, 1.7e9 + 2.0, Value::Float(0.125))
        ]
    );
    // A continuation that would go back in steps is refused before anything is written.
    std::fs::write(dir.path().join("c.wandb"), wandb_file("r", 300, true, &[(1, 9.0)], false)).unwrap();
    let r =
        import::import_sources(&store, SourceFormat::Wandb, &[dir.path().join("c.wandb")], &ImportOptions::default());
    assert_eq!(r.failed.len(), 1);
    assert_eq!(rows(&store, "r").len(), 3);
}
