//! Parquet and Arrow IPC: rows gathered into Arrow record batches of [`BATCH_ROWS`] rows (see the parent
//! module for the columns).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use forklog::{HistoryOptions, Store, Value};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::{for_each_row, micros, ExportError, ExportFormat, ExportOptions, ExportSummary, Kind, Schema};
use crate::json::{to_line, Json};

/// Rows per record batch.
pub const BATCH_ROWS: usize = 64 * 1024;

/// One metric column being filled.
enum Col {
    F(Vec<f64>, Vec<bool>),
    I(Vec<i64>, Vec<bool>),
    B(Vec<bool>, Vec<bool>),
    S(Vec<Option<String>>),
}

impl Col {
    fn new(kind: Kind) -> Col {
        match kind {
            Kind::Float => Col::F(Vec::with_capacity(BATCH_ROWS), Vec::with_capacity(BATCH_ROWS)),
            Kind::Int => Col::I(Vec::with_capacity(BATCH_ROWS), Vec::with_capacity(BATCH_ROWS)),
            Kind::Bool => Col::B(Vec::with_capacity(BATCH_ROWS), Vec::with_capacity(BATCH_ROWS)),
            Kind::Str | Kind::Json | Kind::Null => Col::S(Vec::with_capacity(BATCH_ROWS)),
        }
    }

    /// Appends a null (the row's value, if any, is set next).
    fn push_null(&mut self) {
        match self {
            Col::F(v, ok) => {
                v.push(0.0);
                ok.push(false);
            }
            Col::I(v, ok) => {
                v.push(0);
                ok.push(false);
            }
            Col::B(v, ok) => {
                v.push(false);
                ok.push(false);
            }
            Col::S(v) => v.push(None),
        }
    }

    /// Sets the last row's value.
    fn set(&mut self, kind: Kind, value: &Value) {
        match (self, value) {
            (_, Value::Null) => {}
            (Col::F(v, ok), Value::Float(x)) => {
                *v.last_mut().expect("pushed") = *x;
                *ok.last_mut().expect("pushed") = true;
            }
            (Col::F(v, ok), Value::Int(i)) => {
                *v.last_mut().expect("pushed") = *i as f64;
                *ok.last_mut().expect("pushed") = true;
            }
            (Col::I(v, ok), Value::Int(i)) => {
                *v.last_mut().expect("pushed") = *i;
                *ok.last_mut().expect("pushed") = true;
            }
            (Col::B(v, ok), Value::Bool(b)) => {
                *v.last_mut().expect("pushed") = *b;
                *ok.last_mut().expect("pushed") = true;
            }
            (Col::S(v), Value::Str(s)) if kind == Kind::Str => *v.last_mut().expect("pushed") = Some(s.clone()),
            (Col::S(v), other) => *v.last_mut().expect("pushed") = Some(to_line(&Json(other))),
            // The schema pass saw every value: other combinations do not occur.
            _ => {}
        }
    }

    fn take(&mut self) -> ArrayRef {
        fn nulls(ok: &[bool]) -> Option<arrow_buffer::NullBuffer> {
            if ok.iter().all(|&b| b) {
                None
            } else {
                Some(arrow_buffer::NullBuffer::from(ok.to_vec()))
            }
        }
        match self {
            Col::F(v, ok) => {
                let n = nulls(ok);
                ok.clear();
                Arc::new(Float64Array::new(std::mem::take(v).into(), n))
            }
            Col::I(v, ok) => {
                let n = nulls(ok);
                ok.clear();
                Arc::new(Int64Array::new(std::mem::take(v).into(), n))
            }
            Col::B(v, ok) => {
                let n = nulls(ok);
                ok.clear();
                let vals = std::mem::take(v);
                Arc::new(BooleanArray::new(vals.into(), n))
            }
            Col::S(v) => Arc::new(StringArray::from(std::mem::take(v))),
        }
    }
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Float => DataType::Float64,
        Kind::Int => DataType::Int64,
        Kind::Bool => DataType::Boolean,
        Kind::Str | Kind::Json | Kind::Null => DataType::Utf8,
    }
}

/// The Arrow schema of an export.
pub fn arrow_schema(schema: &Schema) -> Arc<ArrowSchema> {
    let mut fields = vec![
        Field::new("_run", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
        Field::new("_step", DataType::Int64, false),
        Field::new("_timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ];
    for (k, kind) in &schema.columns {
        fields.push(Field::new(k, data_type(*kind), true));
    }
    Arc::new(ArrowSchema::new(fields))
}

enum Sink<'a> {
    Parquet(ArrowWriter<&'a mut BufWriter<File>>),
    Arrow(arrow_ipc::writer::FileWriter<&'a mut BufWriter<File>>),
}

impl Sink<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), ExportError> {
        match self {
            Sink::Parquet(w) => w.write(batch).map_err(|e| ExportError::Encode(e.to_string())),
            Sink::Arrow(w) => w.write(batch).map_err(|e| ExportError::Encode(e.to_string())),
        }
    }

    fn close(self) -> Result<(), ExportError> {
        match self {
            Sink::Parquet(w) => w.close().map(|_| ()).map_err(|e| ExportError::Encode(e.to_string())),
            Sink::Arrow(mut w) => w.finish().map_err(|e| ExportError::Encode(e.to_string())),
        }
    }
}

/// Writer properties for Parquet: snappy; dictionary encoding only for `_run` (metric values rarely repeat).
fn parquet_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("_run"), true)
        .set_max_row_group_row_count(Some(1024 * 1024))
        .build()
}

/// True when every row of each run gets the same `_run` label: `flat`, or distinct root runs never rewound
/// (every row is stored in `ID@v0`).
fn simple_runs(store: &Store, runs: &[String], opts: &ExportOptions) -> Result<bool, ExportError> {
    if opts.flat {
        return Ok(true);
    }
    let mut ids = std::collections::HashSet::new();
    for r in runs {
        let info = store.info(r)?;
        if info.parent.is_some() || info.version != 0 || !ids.insert(info.id) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Second pass: writes every row as record batches to `w`.
pub fn write(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    schema: &Schema,
    format: ExportFormat,
    w: &mut BufWriter<File>,
) -> Result<ExportSummary, ExportError> {
    let arrow = arrow_schema(schema);
    let mut sink = match format {
        ExportFormat::Parquet => Sink::Parquet(
            ArrowWriter::try_new(w, arrow.clone(), Some(parquet_props()))
                .map_err(|e| ExportError::Encode(e.to_string()))?,
        ),
        _ => Sink::Arrow(
            arrow_ipc::writer::FileWriter::try_new(w, &arrow).map_err(|e| ExportError::Encode(e.to_string()))?,
        ),
    };
    // One dictionary for every batch (the IPC file format allows no replacement).
    let dict_values: ArrayRef = Arc::new(StringArray::from(schema.labels.clone()));
    let label_index: HashMap<&str, i32> =
        schema.labels.iter().enumerate().map(|(i, l)| (l.as_str(), i as i32)).collect();
    let col_index: HashMap<&str, usize> =
        schema.columns.iter().enumerate().map(|(i, (k, _))| (k.as_str(), i)).collect();
    let kinds: Vec<Kind> = schema.columns.iter().map(|c| c.1).collect();
    let mut cols: Vec<Col> = kinds.iter().map(|k| Col::new(*k)).collect();
    let mut run_keys: Vec<i32> = Vec::with_capacity(BATCH_ROWS);
    let mut steps: Vec<i64> = Vec::with_capacity(BATCH_ROWS);
    let mut times: Vec<i64> = Vec::with_capacity(BATCH_ROWS);
    let mut last_label: (String, i32) = (String::new(), -1);
    // Column of the i-th key of the previous row, to skip hashing when rows repeat their keys.
    let mut last_keys: Vec<(String, usize)> = Vec::new();
    let mut rows = 0u64;
    let mut err: Option<ExportError> = None;
    let flush_batch = |run_keys: &mut Vec<i32>,
                       steps: &mut Vec<i64>,
                       times: &mut Vec<i64>,
                       cols: &mut Vec<Col>,
                       sink: &mut Sink<'_>|
     -> Result<(), ExportError> {
        if steps.is_empty() {
            return Ok(());
        }
        let keys = Int32Array::from(std::mem::take(run_keys));
        let dict = DictionaryArray::<Int32Type>::try_new(keys, dict_values.clone())
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(dict),
            Arc::new(Int64Array::from(std::mem::take(steps))),
            Arc::new(TimestampMicrosecondArray::from(std::mem::take(times)).with_timezone("UTC")),
        ];
        arrays.extend(cols.iter_mut().map(Col::take));
        let batch = RecordBatch::try_new(arrow.clone(), arrays).map_err(|e| ExportError::Encode(e.to_string()))?;
        sink.write(&batch)
    };
    // Fast path: only float metrics, and rows whose label is known per run (flat, or root runs never
    // rewound): read columns straight from the frames (`scan_columns`), no per-row values.
    if kinds.iter().all(|k| *k == Kind::Float) && simple_runs(store, runs, opts)? {
        for run in runs {
            let label = if opts.flat { run.clone() } else { format!("{}@v0", store.info(run)?.id) };
            let li = label_index.get(label.as_str()).copied().unwrap_or(0);
            let mut slots: Vec<Option<usize>> = Vec::new();
            store.scan_columns(run, &HistoryOptions::new(), |chunk| {
                if err.is_some() {
                    return;
                }
                let n = chunk.len();
                run_keys.extend(std::iter::repeat_n(li, n));
                steps.extend(chunk.steps.iter().map(|s| i64::try_from(*s).unwrap_or(i64::MAX)));
                times.extend(chunk.times.iter().map(|t| micros(*t)));
                // Which chunk column feeds each schema column.
                slots.clear();
                slots.resize(cols.len(), None);
                for (j, c) in chunk.columns.iter().enumerate() {
                    if let Some(&ci) = col_index.get(&*c.key) {
                        slots[ci] = Some(j);
                    }
                }
                for (ci, col) in cols.iter_mut().enumerate() {
                    let Col::F(v, ok) = col else { continue };
                    match slots[ci] {
                        Some(j) => {
                            let src = &chunk.columns[j].values;
                            v.extend(src.iter().map(|x| x.unwrap_or(0.0)));
                            ok.extend(src.iter().map(Option::is_some));
                        }
                        None => {
                            v.extend(std::iter::repeat_n(0.0, n));
                            ok.extend(std::iter::repeat_n(false, n));
                        }
                    }
                }
                rows += n as u64;
                if steps.len() >= BATCH_ROWS {
                    if let Err(e) = flush_batch(&mut run_keys, &mut steps, &mut times, &mut cols, &mut sink) {
                        err = Some(e);
                    }
                }
            })?;
        }
        if let Some(e) = err {
            return Err(e);
        }
        flush_batch(&mut run_keys, &mut steps, &mut times, &mut cols, &mut sink)?;
        sink.close()?;
        return Ok(ExportSummary { runs: runs.len(), rows });
    }
    for_each_row(store, runs, opts, |label, row| {
        if err.is_some() {
            return;
        }
        if last_label.0 != label {
            last_label = (label.to_string(), label_index.get(label).copied().unwrap_or(0));
        }
        run_keys.push(last_label.1);
        steps.push(i64::try_from(row.step).unwrap_or(i64::MAX));
        times.push(micros(row.time));
        for c in cols.iter_mut() {
            c.push_null();
        }
        for (i, (k, v)) in row.metrics().enumerate() {
            let ci = match last_keys.get(i) {
                Some((lk, ci)) if lk.as_str() == k => *ci,
                _ => {
                    let Some(&ci) = col_index.get(k) else { continue };
                    if i < last_keys.len() {
                        last_keys[i] = (k.to_string(), ci);
                    } else {
                        last_keys.push((k.to_string(), ci));
                    }
                    ci
                }
            };
            cols[ci].set(kinds[ci], v);
        }
        rows += 1;
        if steps.len() >= BATCH_ROWS {
            if let Err(e) = flush_batch(&mut run_keys, &mut steps, &mut times, &mut cols, &mut sink) {
                err = Some(e);
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    flush_batch(&mut run_keys, &mut steps, &mut times, &mut cols, &mut sink)?;
    sink.close()?;
    Ok(ExportSummary { runs: runs.len(), rows })
}
