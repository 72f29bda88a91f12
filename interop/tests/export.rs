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
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(&pq).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
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
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(&pq).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(rows_of(&batches), want(&store, &runs, flat), "flat {flat}");
    }
}
