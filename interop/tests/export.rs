//! Exporters: Parquet and Arrow files read back (with the parquet/arrow crates' readers) equal `history`,
//! value for value, with origins or flat labels; the TensorBoard export decodes back to every numeric row.
//! (python/tests cross-check the same files with pyarrow, pandas, DuckDB and TensorBoard's EventAccumulator.)

use std::collections::BTreeMap;
use std::fs::File;

use arrow_array::{Array, RecordBatch};
use forklog::{metrics, Store, Value};
use forklog_interop::export::{self, ExportFormat, ExportOptions};

/// base (ints, floats, strings, a map, a null, NaN), a fork at 4, then base rewound at 2.
fn sample() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let mut w = store.create_run("base").unwrap();
    for s in 0..8u32 {
        let mut m = metrics! { "loss" => 1.0 / f64::from(s + 1), "epoch" => i64::from(s / 3) };
        if s % 2 == 0 {
            m.insert("note".into(), Value::Str(format!("s,{s}\"")));
        }
        if s == 3 {
            m.insert("blob".into(), Value::Map(BTreeMap::from([(forklog::Key::from("a"), Value::Int(1))])));
            m.insert("loss".into(), Value::Float(f64::NAN));
            m.insert("flag".into(), Value::Bool(true));
        }
        w.log_with_time(Some(u64::from(s) * 2), 1_700_000_000.25 + f64::from(s), m).unwrap();
    }
    w.finish(0).unwrap();
    let mut f = store.fork("fork", &"base?_step=4".parse().unwrap()).unwrap();
    f.log_with_time(Some(5), 1_700_000_100.5, metrics! { "loss" => 0.5, "mixed" => 1i64 }).unwrap();
    f.log_with_time(Some(6), 1_700_000_101.5, metrics! { "loss" => 0.25, "mixed" => 2.5 }).unwrap();
    drop(f);
    let mut r = store.rewind("base", 2).unwrap();
    r.log_with_time(Some(3), 1_700_000_200.0, metrics! { "loss" => 0.125 }).unwrap();
    drop(r);
    (dir, store)
}

/// The record batches of a Parquet file, read with the parquet crate's Arrow reader.
fn read_parquet(path: &std::path::Path) -> Vec<RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every exported row as (label, step, µs, metrics), from record batches.
fn rows_of(batches: &[RecordBatch]) -> Vec<(String, u64, i64, BTreeMap<String, Value>)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
    let mut out = Vec::new();
    for b in batches {
        let run = b.column(0).as_dictionary::<Int32Type>();
        let labels = run.values().as_string::<i32>();
        let step = b.column(1).as_primitive::<Int64Type>();
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let label = labels.value(run.keys().value(i) as usize).to_string();
            let mut m = BTreeMap::new();
            for (c, field) in b.schema().fields().iter().enumerate().skip(3) {
                let col = b.column(c);
                if col.is_null(i) {
                    continue;
                }
                let v = match field.data_type() {
                    arrow_schema::DataType::Float64 => Value::Float(col.as_primitive::<Float64Type>().value(i)),
                    arrow_schema::DataType::Int64 => Value::Int(col.as_primitive::<Int64Type>().value(i)),
                    arrow_schema::DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
                    arrow_schema::DataType::Utf8 => Value::Str(col.as_string::<i32>().value(i).to_string()),
                    other => panic!("unexpected type {other}"),
                };
                m.insert(field.name().clone(), v);
            }
            out.push((label, step.value(i) as u64, ts.value(i), m));
        }
    }
    out
}

/// What an export of `runs` must hold, from `history` (the column typing rules applied).
fn want(store: &Store, runs: &[&str], flat: bool) -> Vec<(String, u64, i64, BTreeMap<String, Value>)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for run in runs {
        for row in store.history(run).unwrap() {
            let row = row.unwrap();
            let label = if flat { run.to_string() } else { row.origin.to_string() };
            if !flat && !seen.insert((label.clone(), row.step)) {
                continue;
            }
            let m = row
                .metrics
                .iter()
                .map(|(k, v)| {
                    let v = match (&**k, v) {
                        // mixed ints and floats → float64; maps → JSON text
                        ("mixed", Value::Int(i)) => Value::Float(*i as f64),
                        (_, Value::Map(_)) => {
                            Value::Str(forklog_interop::json::to_line(&forklog_interop::json::Json(v)))
                        }
                        _ => v.clone(),
                    };
                    (k.to_string(), v)
                })
                .collect();
            out.push((label, row.step, (row.time * 1e6).round() as i64, m));
        }
    }
    out
}

#[test]
fn parquet_and_arrow_equal_history() {
    let (dir, store) = sample();
    let runs = vec!["base".to_string(), "fork".to_string(), "base@v0".to_string()];
    for flat in [false, true] {
        let opts = ExportOptions { flat, ..Default::default() };
        let pq = dir.path().join(format!("out-{flat}.parquet"));
        let summary = export::export_parquet(&store, &runs, &pq, &opts).unwrap();
        let batches = read_parquet(&pq);
        let got = rows_of(&batches);
        let expect = want(&store, &["base", "fork", "base@v0"], flat);
        assert_eq!(got.len(), expect.len());
        assert_eq!(summary.rows as usize, expect.len());
        for (g, w) in got.iter().zip(&expect) {
            assert_eq!(g, w);
        }

        let ar = dir.path().join(format!("out-{flat}.arrow"));
        export::export_arrow(&store, &runs, &ar, &opts).unwrap();
        let reader = arrow_ipc::reader::FileReader::try_new(File::open(&ar).unwrap(), None).unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(rows_of(&batches), expect);
    }
    // Without --flat, each stored row once: base@v0's rows 0..=8 are not repeated by the fork or the rewind.
    let labels: Vec<_> = want(&store, &["base", "fork", "base@v0"], false).into_iter().map(|r| (r.0, r.1)).collect();
    let mut dedup = labels.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), labels.len());
}

#[test]
fn failed_export_leaves_no_file() {
    let (dir, store) = sample();
    let out = dir.path().join("x.parquet");
    assert!(
        export::export_runs(&store, &["nope".into()], ExportFormat::Parquet, &out, &ExportOptions::default()).is_err()
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn tensorboard_export_holds_every_numeric_row() {
    use forklog_interop::import::{tensorboard, PlanEvent};
    let (dir, store) = sample();
    let out = dir.path().join("tb");
    export::export_tensorboard(&store, &["base".into(), "fork".into()], &out).unwrap();
    for run in ["base", "fork"] {
        let files: Vec<_> = std::fs::read_dir(out.join(run)).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        let plan = tensorboard::plan_bytes(&files[0], &std::fs::read(&files[0]).unwrap()).unwrap();
        assert_eq!(plan.parts.len(), 1);
        let got: Vec<(u64, f64, BTreeMap<String, Value>)> = plan.parts[0]
            .events
            .iter()
            .filter_map(|e| match e {
                PlanEvent::Log { step, time, metrics } => {
                    Some((*step, *time, metrics.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()))
                }
                _ => None,
            })
            .collect();
        let want: Vec<_> = store
            .history(run)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let m = r
                    .metrics
                    .iter()
                    .filter_map(|(k, v)| {
                        let x = match v {
                            Value::Float(x) => *x as f32,
                            Value::Int(i) => *i as f32,
                            Value::Bool(b) => f32::from(u8::from(*b)),
                            _ => return None,
                        };
                        Some((k.to_string(), Value::Float(f64::from(x))))
                    })
                    .collect();
                (r.step, r.time, m)
            })
            .collect();
        assert_eq!(got, want, "{run}");
    }
}

#[test]
fn float_only_fast_path_equals_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let mut a = store.create_run("a").unwrap();
    let steps: Vec<u64> = (0..5000).collect();
    let x: Vec<f64> = steps.iter().map(|s| 1.0 / (*s as f64 + 1.0)).collect();
    let y: Vec<f64> = steps.iter().map(|s| *s as f64 * 0.5).collect();
    a.log_columns(&steps, &[("x", &x), ("y", &y)]).unwrap();
    a.log_with_time(Some(6000), 1_700_000_000.5, metrics! { "x" => f64::NAN }).unwrap(); // y missing: null
    drop(a);
    let mut b = store.create_run("b").unwrap();
    b.log_with_time(Some(3), 1_700_000_001.0, metrics! { "z" => 2.5 }).unwrap();
    drop(b);
    let mut f = store.fork("f", &"a?_step=10".parse().unwrap()).unwrap();
    f.log_with_time(Some(11), 1_700_000_002.0, metrics! { "x" => 0.1 }).unwrap();
    drop(f);
    for (runs, flat) in [(vec!["a", "b"], false), (vec!["a", "f", "b"], true)] {
        let names: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
        let pq = dir.path().join(format!("fast-{flat}.parquet"));
        export::export_parquet(&store, &names, &pq, &ExportOptions { flat, ..Default::default() }).unwrap();
        let batches = read_parquet(&pq);
        assert_eq!(rows_of(&batches), want(&store, &runs, flat), "flat {flat}");
    }
}

/// The single pass guesses the columns from the runs' summaries and checks every value against the guess;
/// each way the guess can be wrong must end in the file a first pass over the rows would have given.
#[test]
fn guessed_columns_are_checked_and_corrected() {
    use arrow_schema::DataType;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let t = 1_700_000_000.0;
    // "late": more than one batch of floats, then a string at the very end (the guess, from the summary's
    // last value, is Utf8, but the column holds floats and a string: JSON text).
    let mut w = store.create_run("late").unwrap();
    let n = 64 * 1024 + 10; // more than one batch of the encoder (64Ki rows)
    let steps: Vec<u64> = (0..n).collect();
    let x: Vec<f64> = steps.iter().map(|s| *s as f64 + 0.5).collect();
    w.log_columns(&steps, &[("x", &x)]).unwrap();
    w.log_with_time(Some(n), t, metrics! { "x" => "done" }).unwrap();
    drop(w);
    // "ints": a float among ints, the last value an int (guess int64, truth float64); a bool among floats
    // (truth: JSON text); a summary-only key (no column); a summary that overrides a logged key's type.
    let mut w = store.create_run("ints").unwrap();
    w.log_with_time(Some(0), t, metrics! { "i" => 1i64, "b" => 0.5, "s" => 1.5 }).unwrap();
    w.log_with_time(Some(1), t + 1.0, metrics! { "i" => 2.5, "b" => true, "s" => 2.5 }).unwrap();
    w.log_with_time(Some(2), t + 2.0, metrics! { "i" => 3i64, "b" => 1.5 }).unwrap();
    w.set_summary(metrics! { "best" => 0.25, "s" => "tagged" }).unwrap();
    drop(w);
    // "empty": no rows (no label, no columns).
    drop(store.create_run("empty").unwrap());
    let json = |v: &Value| Value::Str(forklog_interop::json::to_line(&forklog_interop::json::Json(v)));
    for (run, flat) in [("late", true), ("late", false), ("ints", true), ("ints", false)] {
        let names = vec![run.to_string(), "empty".to_string()];
        let pq = dir.path().join(format!("{run}-{flat}.parquet"));
        let summary =
            export::export_parquet(&store, &names, &pq, &ExportOptions { flat, ..Default::default() }).unwrap();
        let batches = read_parquet(&pq);
        let schema = batches[0].schema();
        let types: Vec<(String, DataType)> =
            schema.fields().iter().skip(3).map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let got = rows_of(&batches);
        assert_eq!(summary.rows as usize, got.len());
        let label = if flat { run.to_string() } else { format!("{run}@v0") };
        assert!(got.iter().all(|r| r.0 == label), "{run}: only the run's label");
        if run == "late" {
            assert_eq!(types, vec![("x".to_string(), DataType::Utf8)]);
            assert_eq!(got.len() as u64, n + 1);
            for (i, r) in got.iter().enumerate().take(n as usize) {
                assert_eq!(r.3["x"], json(&Value::Float(i as f64 + 0.5)), "row {i}");
            }
            assert_eq!(got[n as usize].3["x"], json(&Value::Str("done".into())));
        } else {
            assert_eq!(
                types,
                vec![
                    ("b".to_string(), DataType::Utf8),
                    ("i".to_string(), DataType::Float64),
                    ("s".to_string(), DataType::Float64)
                ]
            );
            let col = |k: &str| got.iter().map(|r| r.3.get(k).cloned()).collect::<Vec<_>>();
            assert_eq!(col("i"), vec![Some(Value::Float(1.0)), Some(Value::Float(2.5)), Some(Value::Float(3.0))]);
            assert_eq!(
                col("b"),
                vec![Some(json(&Value::Float(0.5))), Some(json(&Value::Bool(true))), Some(json(&Value::Float(1.5)))]
            );
            assert_eq!(col("s"), vec![Some(Value::Float(1.5)), Some(Value::Float(2.5)), None]);
        }
        // And it is what the rows say, row for row.
        let mut expect = want(&store, &[run], flat);
        for r in &mut expect {
            for (k, v) in r.3.iter_mut() {
                let ty = &types.iter().find(|(n, _)| n == k).unwrap().1;
                *v = match (ty, &*v) {
                    // Both text columns here hold mixed types: JSON text.
                    (DataType::Utf8, _) => json(v),
                    (DataType::Float64, Value::Int(i)) => Value::Float(*i as f64),
                    _ => v.clone(),
                };
            }
        }
        assert_eq!(got, expect, "{run} flat {flat}");
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| { e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp") })
                .count(),
            0,
            "no temporary file left"
        );
    }
}

/// A guess of float64 columns is read with the columnar scan while another thread checks every value: a
/// string in the middle, or ints whose summary was overridden with a float, must end in the exact types.
#[test]
fn float_guess_checked_while_scanning() {
    use arrow_schema::DataType;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let n = 3 * 1024u64;
    let mut w = store.create_run("mid").unwrap();
    for s in 0..n {
        let x = if s == 100 { Value::Str("oops".into()) } else { Value::Float(s as f64 + 0.25) };
        w.log_with_time(Some(s), 1_700_000_000.0 + s as f64, metrics! { "x" => x, "k" => 1.5 }).unwrap();
    }
    drop(w);
    let mut w = store.create_run("ints").unwrap();
    for s in 0..10u32 {
        w.log_with_time(Some(u64::from(s)), 1_700_000_000.0, metrics! { "n" => i64::from(s) }).unwrap();
    }
    w.set_summary(metrics! { "n" => 0.5 }).unwrap();
    drop(w);
    let json = |v: &Value| Value::Str(forklog_interop::json::to_line(&forklog_interop::json::Json(v)));
    for flat in [true, false] {
        for (run, types) in
            [("mid", vec![("k", DataType::Float64), ("x", DataType::Utf8)]), ("ints", vec![("n", DataType::Int64)])]
        {
            let pq = dir.path().join(format!("{run}-{flat}.parquet"));
            export::export_parquet(&store, &[run.to_string()], &pq, &ExportOptions { flat, ..Default::default() })
                .unwrap();
            let batches = read_parquet(&pq);
            let got_types: Vec<(String, DataType)> = batches[0]
                .schema()
                .fields()
                .iter()
                .skip(3)
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect();
            let types: Vec<(String, DataType)> = types.into_iter().map(|(k, t)| (k.to_string(), t)).collect();
            assert_eq!(got_types, types, "{run}");
            let mut expect = want(&store, &[run], flat);
            for r in &mut expect {
                if let Some(x) = r.3.get_mut("x") {
                    *x = json(x);
                }
            }
            assert_eq!(rows_of(&batches), expect, "{run} flat {flat}");
        }
    }
}

/// A guess of float64 columns only is read with the columnar scan, whose chunks say which kinds of value
/// each column held: every way such a guess can be wrong ends in the file a first pass would have given.
#[test]
fn float_guesses_are_checked_with_the_scans_value_kinds() {
    use arrow_schema::DataType;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let t = 1_700_000_000.0;
    let floats = |w: &mut forklog::RunWriter, from: u64, to: u64| {
        let steps: Vec<u64> = (from..to).collect();
        let x: Vec<f64> = steps.iter().map(|s| *s as f64 * 0.5).collect();
        w.log_columns(&steps, &[("x", &x)]).unwrap();
    };
    // (run, the column's true type, the value at step 3000)
    let cases: [(&str, DataType, Value); 3] = [
        // Floats, a bool in the middle (a later chunk), floats again: JSON text.
        ("mid", DataType::Utf8, Value::Bool(true)),
        // Ints only, a float summary: int64.
        ("ints", DataType::Int64, Value::Int(3000)),
        // Ints, then floats: float64, the ints converted.
        ("mixed", DataType::Float64, Value::Float(3000.0)),
    ];
    for (run, _, _) in &cases {
        let mut w = store.create_run(run).unwrap();
        match *run {
            "mid" => {
                floats(&mut w, 0, 3000);
                w.flush().unwrap();
                w.log_with_time(Some(3000), t, metrics! { "x" => true }).unwrap();
                floats(&mut w, 3001, 5000);
            }
            "ints" => {
                for s in 0..5000u64 {
                    w.log_with_time(Some(s), t, metrics! { "x" => s as i64 }).unwrap();
                }
                w.set_summary(metrics! { "x" => 0.5 }).unwrap();
            }
            _ => {
                for s in 0..=3000u64 {
                    w.log_with_time(Some(s), t, metrics! { "x" => s as i64 }).unwrap();
                }
                w.flush().unwrap();
                floats(&mut w, 3001, 5000);
            }
        }
        drop(w);
        assert_eq!(store.summary(run).unwrap().get("x").map(|v| matches!(v, Value::Float(_))), Some(true));
    }
    for (run, ty, at3000) in cases {
        let pq = dir.path().join(format!("{run}.parquet"));
        let names = vec![run.to_string()];
        let summary =
            export::export_parquet(&store, &names, &pq, &ExportOptions { flat: true, ..Default::default() }).unwrap();
        assert_eq!(summary.rows, 5000, "{run}");
        let batches = read_parquet(&pq);
        assert_eq!(batches[0].schema().field(3).data_type(), &ty, "{run}");
        let got = rows_of(&batches);
        let expect = match &ty {
            DataType::Utf8 => Value::Str(forklog_interop::json::to_line(&forklog_interop::json::Json(&at3000))),
            _ => at3000,
        };
        assert_eq!(got[3000].3["x"], expect, "{run}");
        // Every other row as the rows say.
        let want_rows = want(&store, &[run], true);
        assert_eq!(got.len(), want_rows.len());
        for (g, w) in got.iter().zip(&want_rows) {
            assert_eq!(g.1, w.1, "{run}: step");
            let v = &w.3["x"];
            let v = match (&ty, v) {
                (DataType::Utf8, v) => Value::Str(forklog_interop::json::to_line(&forklog_interop::json::Json(v))),
                (DataType::Float64, Value::Int(i)) => Value::Float(*i as f64),
                (_, v) => v.clone(),
            };
            assert_eq!(g.3["x"], v, "{run} at step {}", g.1);
        }
    }
}
