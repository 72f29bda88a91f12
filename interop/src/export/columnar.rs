//! Parquet and Arrow IPC (see the parent module for the columns).
//!
//! One pass over the store when the column types can be known beforehand: for distinct root runs never
//! rewound, or a `flat` export, the columns and their types are guessed from each run's summary (the last
//! value of every key, kept in the zone maps' snapshots: no row is read) and the `_run` labels from the runs
//! themselves; every value is checked against the guess, and in the rare case it was wrong (a key whose type
//! changed over the run, a summary-only key) the output is thrown away and written again with the exact
//! types from a first pass over the rows ([`super::scan_schema`]). When the guess is float64 columns only,
//! the values are read with the columnar scan ([`Store::scan_columns`]: floats exactly, no value per row),
//! whose chunks say which kinds of value each column held ([`forklog::Column::kinds`]: the scan stops at the
//! first chunk that does not fit);
//! otherwise the rows are decoded once, checked and written together. Forks
//! and rewinds exported with their origins (rows labelled by the version that stores them) always take the
//! two passes, as their labels depend on which rows each run inherits.
//!
//! Rows are read on the calling thread and gathered into record batches of [`BATCH_ROWS`] rows. Parquet: each
//! column of a row group ([`ROW_GROUP_ROWS`] rows) is encoded by its own thread, fed one batch's column at a
//! time, and a finished row group is appended to the file by another thread while the next is encoded; Arrow
//! IPC: batches are written by one thread.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::ScopedJoinHandle;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use forklog::{Columns, HistoryOptions, RowRef, Store, Value, ValueKinds};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowLeafColumn};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::{
    atomic_write_if, for_each_row, micros, scan_schema, ExportError, ExportFormat, ExportOptions, ExportSummary, Kind,
    Schema, RESERVED,
};
use crate::json::{to_line, Json};

/// Rows per record batch handed to the encoder.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Rows per Parquet row group (pyarrow's default too): a multiple of [`BATCH_ROWS`].
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Writes `runs` to `out` as Parquet or Arrow IPC: in one pass when the types can be guessed (see the module
/// docs), else after a first pass that learns them.
pub(super) fn export(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    format: ExportFormat,
    out: &Path,
) -> Result<ExportSummary, ExportError> {
    export_sized(store, runs, opts, format, out, Sizes::DEFAULT)
}

/// Batch and row-group sizes (rows).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: usize,
    group: usize,
}

impl Sizes {
    const DEFAULT: Sizes = Sizes { batch: BATCH_ROWS, group: ROW_GROUP_ROWS };
}

/// [`export`] with other batch and row-group sizes (the tests use small ones).
fn export_sized(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    format: ExportFormat,
    out: &Path,
    sizes: Sizes,
) -> Result<ExportSummary, ExportError> {
    if let Some(guess) = guess_schema(store, runs, opts)? {
        if let Some(done) = atomic_write_if(out, |w| write(store, runs, opts, &guess, true, format, sizes, w))? {
            return Ok(done);
        }
    }
    let schema = scan_schema(store, runs, opts)?;
    atomic_write_if(out, |w| write(store, runs, opts, &schema, false, format, sizes, w))?
        .ok_or_else(|| ExportError::Encode("the rows changed while they were exported".into()))
}

/// The schema an export will have, without reading rows, when every run's rows get one label (`flat`, or
/// distinct root runs never rewound, whose rows are all stored in `ID@v0`): columns and types from the
/// runs' summaries, labels from the runs with rows. `None` otherwise.
fn guess_schema(store: &Store, runs: &[String], opts: &ExportOptions) -> Result<Option<Schema>, ExportError> {
    let mut ids = std::collections::HashSet::new();
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    let mut labels: Vec<String> = Vec::new();
    let mut rows = 0u64;
    for r in runs {
        let info = store.info(r)?;
        if !opts.flat && (info.parent.is_some() || info.version != 0 || !ids.insert(info.id.clone())) {
            return Ok(None);
        }
        let label = if opts.flat { r.clone() } else { format!("{}@v0", info.id) };
        if info.rows > 0 && !labels.contains(&label) {
            labels.push(label);
        }
        rows += info.rows;
        for (k, v) in store.summary(r)? {
            let e = kinds.entry(k.to_string()).or_insert(Kind::Null);
            *e = e.merge(Kind::of(&v));
        }
    }
    if kinds.keys().any(|k| RESERVED.contains(&k.as_str())) {
        // The first pass reports it.
        return Ok(None);
    }
    Ok(Some(Schema { columns: kinds.into_iter().collect(), labels, rows }))
}

/// A column's values and validity, filled row by row (a row without the value is padded as null).
struct Nullable<T> {
    values: Vec<T>,
    valid: Vec<bool>,
}

impl<T: Clone + Default> Nullable<T> {
    fn new() -> Self {
        Nullable { values: Vec::with_capacity(BATCH_ROWS), valid: Vec::with_capacity(BATCH_ROWS) }
    }

    /// Sets row `row` (rows before it that got no value become nulls).
    fn push(&mut self, row: usize, v: T) {
        self.pad(row);
        self.values.push(v);
        self.valid.push(true);
    }

    fn pad(&mut self, rows: usize) {
        if self.values.len() < rows {
            self.values.resize(rows, T::default());
            self.valid.resize(rows, false);
        }
    }

    /// The first `rows` values and their null buffer (`None`: no nulls); the column is left empty.
    fn take(&mut self, rows: usize) -> (Vec<T>, Option<NullBuffer>) {
        self.pad(rows);
        let nulls = if self.valid.iter().all(|&b| b) { None } else { Some(NullBuffer::from(self.valid.as_slice())) };
        self.valid.clear();
        let mut values = std::mem::replace(&mut self.values, Vec::with_capacity(BATCH_ROWS));
        values.truncate(rows);
        (values, nulls)
    }
}

/// One metric column being filled.
enum Col {
    F(Nullable<f64>),
    I(Nullable<i64>),
    B(Nullable<bool>),
    /// Strings (`Kind::Str`), or any value as its JSON text (`Kind::Json`, `Kind::Null`).
    S(Nullable<String>, Kind),
}

impl Col {
    fn new(kind: Kind) -> Col {
        match kind {
            Kind::Float => Col::F(Nullable::new()),
            Kind::Int => Col::I(Nullable::new()),
            Kind::Bool => Col::B(Nullable::new()),
            Kind::Str | Kind::Json | Kind::Null => Col::S(Nullable::new(), kind),
        }
    }

    /// Sets row `row`'s value; false when the value does not fit the column's type.
    fn set(&mut self, row: usize, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Col::F(c), Value::Float(x)) => {
                c.push(row, *x);
                true
            }
            (Col::F(c), Value::Int(i)) => {
                c.push(row, *i as f64);
                true
            }
            (Col::I(c), Value::Int(i)) => {
                c.push(row, *i);
                true
            }
            (Col::B(c), Value::Bool(b)) => {
                c.push(row, *b);
                true
            }
            (Col::S(c, Kind::Str), Value::Str(s)) => {
                c.push(row, s.clone());
                true
            }
            (Col::S(c, Kind::Json), other) => {
                c.push(row, to_line(&Json(other)));
                true
            }
            _ => false,
        }
    }

    /// The first `rows` values as an Arrow array; the column is left empty.
    fn take(&mut self, rows: usize) -> ArrayRef {
        match self {
            Col::F(c) => {
                let (v, n) = c.take(rows);
                Arc::new(Float64Array::new(v.into(), n))
            }
            Col::I(c) => {
                let (v, n) = c.take(rows);
                Arc::new(Int64Array::new(v.into(), n))
            }
            Col::B(c) => {
                let (v, n) = c.take(rows);
                Arc::new(BooleanArray::new(v.into(), n))
            }
            Col::S(c, _) => {
                let (v, n) = c.take(rows);
                let valid = n.as_ref();
                Arc::new(
                    v.into_iter()
                        .enumerate()
                        .map(|(i, s)| valid.is_none_or(|n| n.is_valid(i)).then_some(s))
                        .collect::<StringArray>(),
                )
            }
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

/// Writer properties for Parquet: snappy; dictionary encoding only for `_run` (metric values rarely repeat);
/// row groups of [`ROW_GROUP_ROWS`] rows; the library's defaults otherwise (1 MiB data pages, statistics).
fn parquet_props(group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("_run"), true)
        .set_max_row_group_row_count(Some(group_rows))
        .build()
}

/// Fills record batches row by row.
struct Batcher<'s> {
    arrow: SchemaRef,
    dict_values: ArrayRef,
    label_index: HashMap<&'s str, i32>,
    col_index: HashMap<&'s str, usize>,
    /// Check every value against the schema (a guess): what was met, per column.
    verify: bool,
    seen: Vec<Option<Kind>>,
    used_labels: Vec<bool>,
    /// Set when a value or a label does not fit the schema (only when verifying).
    mismatch: bool,
    cols: Vec<Col>,
    run_keys: Vec<i32>,
    steps: Vec<i64>,
    times: Vec<i64>,
    last_label: (String, i32),
    /// Column of the i-th key of the previous row, to skip hashing when rows repeat their keys.
    last_keys: Vec<(String, usize)>,
    rows: u64,
    /// Rows per batch.
    batch_rows: usize,
    /// False: only check the rows against the schema (the columns are read elsewhere).
    fill: bool,
}

impl<'s> Batcher<'s> {
    fn new(schema: &'s Schema, arrow: SchemaRef, verify: bool, batch_rows: usize) -> Batcher<'s> {
        Batcher {
            batch_rows,
            fill: true,
            arrow,
            dict_values: Arc::new(StringArray::from(schema.labels.clone())),
            label_index: schema.labels.iter().enumerate().map(|(i, l)| (l.as_str(), i as i32)).collect(),
            col_index: schema.columns.iter().enumerate().map(|(i, (k, _))| (k.as_str(), i)).collect(),
            verify,
            seen: vec![None; schema.columns.len()],
            used_labels: vec![false; schema.labels.len()],
            mismatch: false,
            cols: schema.columns.iter().map(|(_, k)| Col::new(*k)).collect(),
            run_keys: Vec::with_capacity(BATCH_ROWS),
            steps: Vec::with_capacity(BATCH_ROWS),
            times: Vec::with_capacity(BATCH_ROWS),
            last_label: (String::new(), -1),
            last_keys: Vec::new(),
            rows: 0,
        }
    }

    /// Adds a row; a full batch is returned.
    fn row(&mut self, label: &str, row: &RowRef<'_>) -> Result<Option<RecordBatch>, ExportError> {
        if self.last_label.1 < 0 || self.last_label.0 != label {
            let Some(&li) = self.label_index.get(label) else {
                self.mismatch = true;
                return Ok(None);
            };
            self.last_label = (label.to_string(), li);
            self.used_labels[li as usize] = true;
        }
        let n = self.steps.len();
        for (i, (k, v)) in row.metrics().enumerate() {
            let ci = match self.last_keys.get(i) {
                Some((lk, ci)) if lk.as_str() == k => *ci,
                _ => {
                    let Some(&ci) = self.col_index.get(k) else {
                        self.mismatch = true;
                        return Ok(None);
                    };
                    let entry = (k.to_string(), ci);
                    if i < self.last_keys.len() {
                        self.last_keys[i] = entry;
                    } else {
                        self.last_keys.push(entry);
                    }
                    ci
                }
            };
            if self.verify {
                let kv = Kind::of(v);
                let seen = &mut self.seen[ci];
                if *seen != Some(kv) {
                    *seen = Some(seen.map_or(kv, |s| s.merge(kv)));
                }
            }
            if !self.fill {
                // What was met so far must still fit the column (ints in a float64 column do).
                let k = self.kind(ci);
                if self.seen[ci].is_some_and(|seen| seen.merge(k) != k) {
                    self.mismatch = true;
                    return Ok(None);
                }
                continue;
            }
            if !self.cols[ci].set(n, v) {
                self.mismatch = true;
                return Ok(None);
            }
        }
        if !self.fill {
            self.rows += 1;
            return Ok(None);
        }
        self.run_keys.push(self.last_label.1);
        self.steps.push(i64::try_from(row.step).unwrap_or(i64::MAX));
        self.times.push(micros(row.time));
        self.rows += 1;
        if self.steps.len() >= self.batch_rows {
            return self.batch().map(Some);
        }
        Ok(None)
    }

    /// The type of column `ci`.
    fn kind(&self, ci: usize) -> Kind {
        match &self.cols[ci] {
            Col::F(_) => Kind::Float,
            Col::I(_) => Kind::Int,
            Col::B(_) => Kind::Bool,
            Col::S(_, k) => *k,
        }
    }

    /// Notes that column `ci` met values of `kinds` (a columnar chunk's); false when they do not fit its type.
    fn saw_kinds(&mut self, ci: usize, kinds: ValueKinds) -> bool {
        const KINDS: [(ValueKinds, Kind); 5] = [
            (ValueKinds::NULL, Kind::Null),
            (ValueKinds::BOOL, Kind::Bool),
            (ValueKinds::INT, Kind::Int),
            (ValueKinds::FLOAT, Kind::Float),
            (ValueKinds::OTHER, Kind::Json),
        ];
        let col = self.kind(ci);
        for (flag, kind) in KINDS {
            if kinds.contains(flag) {
                let seen = &mut self.seen[ci];
                let merged = seen.map_or(kind, |s| s.merge(kind));
                *seen = Some(merged);
                if merged.merge(col) != col {
                    return false;
                }
            }
        }
        true
    }

    /// Appends rows `range` of a columnar chunk, all labelled `label` (every schema column is float64: what
    /// the chunk holds); `slots[ci]` is the chunk column of schema column `ci`.
    fn extend_floats(&mut self, label: i32, chunk: &Columns, range: std::ops::Range<usize>, slots: &[Option<usize>]) {
        let n = range.len();
        let end = self.steps.len() + n;
        self.run_keys.extend(std::iter::repeat_n(label, n));
        self.steps.extend(chunk.steps[range.clone()].iter().map(|s| i64::try_from(*s).unwrap_or(i64::MAX)));
        self.times.extend(chunk.times[range.clone()].iter().map(|t| micros(*t)));
        for (col, slot) in self.cols.iter_mut().zip(slots) {
            let (Col::F(c), Some(j)) = (col, slot) else { continue };
            let src = &chunk.columns[*j].values[range.clone()];
            c.values.extend(src.iter().map(|x| x.unwrap_or(0.0)));
            c.valid.extend(src.iter().map(Option::is_some));
        }
        for col in &mut self.cols {
            if let Col::F(c) = col {
                c.pad(end);
            }
        }
        self.rows += n as u64;
    }

    /// The rows gathered so far as a record batch.
    fn batch(&mut self) -> Result<RecordBatch, ExportError> {
        let n = self.steps.len();
        let keys = Int32Array::from(std::mem::replace(&mut self.run_keys, Vec::with_capacity(BATCH_ROWS)));
        let dict = DictionaryArray::<Int32Type>::try_new(keys, self.dict_values.clone())
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(dict),
            Arc::new(Int64Array::from(std::mem::replace(&mut self.steps, Vec::with_capacity(BATCH_ROWS)))),
            Arc::new(
                TimestampMicrosecondArray::from(std::mem::replace(&mut self.times, Vec::with_capacity(BATCH_ROWS)))
                    .with_timezone("UTC"),
            ),
        ];
        arrays.extend(self.cols.iter_mut().map(|c| c.take(n)));
        RecordBatch::try_new(self.arrow.clone(), arrays).map_err(|e| ExportError::Encode(e.to_string()))
    }

    /// True when every row fitted the schema and the schema is exactly what the rows hold (each column met
    /// with exactly its type, each label used): what a first pass over the rows would have found.
    fn schema_holds(&self, schema: &Schema) -> bool {
        !self.mismatch
            && self.used_labels.iter().all(|&u| u)
            && self.seen.iter().zip(&schema.columns).all(|(s, (_, k))| *s == Some(*k))
    }
}

/// One pass: reads the rows on this thread and encodes them on others. With `verify`, `schema` is a guess:
/// `None` when the rows do not fit it (the caller discards the output).
#[allow(clippy::too_many_arguments)]
fn write(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    schema: &Schema,
    verify: bool,
    format: ExportFormat,
    sizes: Sizes,
    w: &mut BufWriter<File>,
) -> Result<Option<ExportSummary>, ExportError> {
    let arrow = arrow_schema(schema);
    let mut b = Batcher::new(schema, arrow.clone(), verify, sizes.batch);
    // A guess of float64 columns only: values are read with the columnar scan (floats exactly, no per-row
    // values), whose chunks say which kinds of value each column's floats came from: the scan stops at the
    // first that does not fit the guess.
    let scan = verify && schema.columns.iter().all(|(_, k)| *k == Kind::Float);
    std::thread::scope(|s| {
        let mut read = |b: &mut Batcher<'_>, sink: &mut BatchSink<'_>| {
            if scan {
                scan_rows(store, runs, opts, b, sink)
            } else {
                read_rows(store, runs, opts, b, sink)
            }
        };
        match format {
            ExportFormat::Parquet => write_parquet(s, &mut read, &mut b, &arrow, sizes.group, w),
            _ => {
                let (tx, rx) = sync_channel::<RecordBatch>(2);
                let ipc_schema = arrow.clone();
                let encoder = s.spawn(move || encode_ipc(w, ipc_schema, rx));
                let res = read(&mut b, &mut |batch| tx.send(batch).is_ok());
                drop(tx);
                // A failed encoder closes the channel, which stops the reader: its error is the one to report.
                encoder.join().map_err(|_| panicked())?.and(res)
            }
        }
    })?;
    if verify && !b.schema_holds(schema) {
        return Ok(None);
    }
    if b.mismatch {
        // The schema came from a first pass over these same rows: they changed in between.
        return Err(ExportError::Encode("the rows changed while they were exported".into()));
    }
    Ok(Some(ExportSummary { runs: runs.len(), rows: b.rows }))
}

/// The rows of a `flat` export or of distinct root runs never rewound (one label per run), read with the
/// columnar scan into `b` (whose columns are all float64); full batches go to `sink`. Stops early, setting
/// `b.mismatch`, when a run or a key is not in the schema or a chunk's column held values that a float64
/// column cannot (strings, booleans, ...).
fn scan_rows(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    b: &mut Batcher<'_>,
    sink: &mut BatchSink<'_>,
) -> Result<(), ExportError> {
    let mut err: Option<ExportError> = None;
    let mut closed = false;
    let mut slots: Vec<Option<usize>> = Vec::new();
    for run in runs {
        let info = store.info(run)?;
        if info.rows == 0 {
            continue;
        }
        let label = if opts.flat { run.clone() } else { format!("{}@v0", info.id) };
        let Some(&li) = b.label_index.get(label.as_str()) else {
            b.mismatch = true;
            return Ok(());
        };
        store.scan_columns(run, &HistoryOptions::new(), |chunk| {
            if err.is_some() || closed || b.mismatch {
                return;
            }
            slots.clear();
            slots.resize(b.cols.len(), None);
            b.used_labels[li as usize] = true;
            for (j, c) in chunk.columns.iter().enumerate() {
                match b.col_index.get(&*c.key).copied() {
                    // The chunk says which kinds of value its floats came from: they must fit a float64 column.
                    Some(ci) if b.saw_kinds(ci, c.kinds) => slots[ci] = Some(j),
                    _ => {
                        b.mismatch = true;
                        return;
                    }
                }
            }
            let mut start = 0;
            while start < chunk.len() && !closed {
                let take = (b.batch_rows - b.steps.len()).min(chunk.len() - start);
                b.extend_floats(li, chunk, start..start + take, &slots);
                start += take;
                if b.steps.len() >= b.batch_rows {
                    match b.batch() {
                        Ok(batch) => closed = !sink(batch),
                        Err(e) => {
                            err = Some(e);
                            return;
                        }
                    }
                }
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if closed || b.mismatch {
            return Ok(());
        }
    }
    if !b.steps.is_empty() {
        let batch = b.batch()?;
        sink(batch);
    }
    Ok(())
}

/// Feeds every row to the batcher and each full batch to `sink` (which returns false once it takes no more).
fn read_rows(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    b: &mut Batcher<'_>,
    sink: &mut BatchSink<'_>,
) -> Result<(), ExportError> {
    let mut err: Option<ExportError> = None;
    let mut closed = false;
    for_each_row(store, runs, opts, |label, row| {
        if err.is_some() || closed || b.mismatch {
            return;
        }
        match b.row(label, row) {
            Ok(Some(batch)) => closed = !sink(batch),
            Ok(None) => {}
            Err(e) => err = Some(e),
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if !closed && !b.mismatch && !b.steps.is_empty() {
        let batch = b.batch()?;
        sink(batch);
    }
    Ok(())
}

fn encode_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Encode(e.to_string())
}

fn panicked() -> ExportError {
    ExportError::Encode("an encoding thread panicked".into())
}

/// Arrow IPC file: batches as they come.
fn encode_ipc(w: &mut BufWriter<File>, arrow: SchemaRef, rx: Receiver<RecordBatch>) -> Result<(), ExportError> {
    let mut f = arrow_ipc::writer::FileWriter::try_new(w, &arrow).map_err(encode_err)?;
    for batch in rx {
        f.write(&batch).map_err(encode_err)?;
    }
    f.finish().map_err(encode_err)
}

/// Where full batches go: false once it takes no more.
type BatchSink<'a> = dyn FnMut(RecordBatch) -> bool + 'a;

/// Reads the export's rows into a batcher, handing full batches to a sink.
type RowReader<'a, 'b> = dyn FnMut(&mut Batcher<'b>, &mut BatchSink<'_>) -> Result<(), ExportError> + 'a;

/// A column chunk being encoded by its own thread.
type ChunkThread<'scope> = ScopedJoinHandle<'scope, Result<ArrowColumnChunk, ExportError>>;

/// Parquet: each column of the current row group is encoded by its own thread, fed a batch's column at a
/// time (no barrier between batches); a full row group's threads are handed to an appending thread, which
/// waits for them in column order and appends the row group to the file, while the next group is encoded.
fn write_parquet<'scope, 'b>(
    s: &'scope std::thread::Scope<'scope, '_>,
    read: &mut RowReader<'_, 'b>,
    b: &mut Batcher<'b>,
    arrow: &SchemaRef,
    group_rows: usize,
    w: &'scope mut BufWriter<File>,
) -> Result<(), ExportError> {
    let writer = ArrowWriter::try_new(w, arrow.clone(), Some(parquet_props(group_rows))).map_err(encode_err)?;
    // The file writer (schema, Arrow schema metadata, footer) and per-column writers for each row group.
    let (file, factory) = writer.into_serialized_writer().map_err(encode_err)?;
    let (gtx, grx) = sync_channel::<Vec<ChunkThread<'scope>>>(1);
    let appender = s.spawn(move || append_groups(file, grx));
    let mut group: Option<(Vec<SyncSender<ArrowLeafColumn>>, Vec<ChunkThread<'scope>>)> = None;
    let (mut in_group, mut groups) = (0usize, 0usize);
    let mut failed: Option<ExportError> = None;
    let mut push = |batch: RecordBatch| -> Result<bool, ExportError> {
        let (txs, _) = match &mut group {
            Some(g) => g,
            None => {
                let mut txs = Vec::new();
                let mut threads = Vec::new();
                for mut cw in factory.create_column_writers(groups).map_err(encode_err)? {
                    let (tx, rx) = sync_channel::<ArrowLeafColumn>(2);
                    threads.push(s.spawn(move || {
                        for leaf in rx {
                            cw.write(&leaf).map_err(encode_err)?;
                        }
                        cw.close().map_err(encode_err)
                    }));
                    txs.push(tx);
                }
                group.insert((txs, threads))
            }
        };
        let mut i = 0;
        for (field, array) in arrow.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, array).map_err(encode_err)? {
                // A column thread that failed has dropped its receiver: its error comes out of the appender.
                let Some(tx) = txs.get(i) else { return Err(ExportError::Encode("more leaves than columns".into())) };
                if tx.send(leaf).is_err() {
                    return Ok(false);
                }
                i += 1;
            }
        }
        in_group += batch.num_rows();
        if in_group >= group_rows {
            if let Some((txs, threads)) = group.take() {
                drop(txs);
                if gtx.send(threads).is_err() {
                    return Ok(false);
                }
            }
            (in_group, groups) = (0, groups + 1);
        }
        Ok(true)
    };
    let read = read(b, &mut |batch| {
        push(batch).unwrap_or_else(|e| {
            failed = Some(e);
            false
        })
    });
    if let Some((txs, threads)) = group.take() {
        drop(txs);
        let _ = gtx.send(threads);
    }
    drop(gtx);
    let appended = appender.join().map_err(|_| panicked())?;
    if let Some(e) = failed {
        return Err(e);
    }
    appended?;
    read
}

/// Appends each row group, its column chunks in order, then closes the file (footer). Each appended group is
/// flushed and synced here, while the next is encoded, so the sync that makes the file durable before its
/// rename has only the last group and the footer left to write.
fn append_groups(
    mut file: parquet::file::writer::SerializedFileWriter<&mut BufWriter<File>>,
    groups: Receiver<Vec<ChunkThread<'_>>>,
) -> Result<(), ExportError> {
    let synced = |e: std::io::Error| ExportError::Encode(format!("syncing the Parquet file: {e}"));
    for threads in groups {
        let mut rg = file.next_row_group().map_err(encode_err)?;
        for t in threads {
            let chunk = t.join().map_err(|_| panicked())??;
            chunk.append_to_row_group(&mut rg).map_err(encode_err)?;
        }
        rg.close().map_err(encode_err)?;
        file.flush().map_err(synced)?;
        file.inner().get_ref().sync_data().map_err(synced)?;
    }
    file.close().map(|_| ()).map_err(encode_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forklog::metrics;

    /// The batches of an export of 23 rows with batches of 5 and row groups of 10: Parquet row groups of 10,
    /// 10 and 3 rows; Arrow IPC batches of 5, 5, 5, 5 and 3.
    fn read_back(out: &Path, format: ExportFormat) -> Vec<RecordBatch> {
        if format == ExportFormat::Parquet {
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(out).unwrap())
                .unwrap();
            let groups: Vec<i64> = b.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
            assert_eq!(groups, vec![10, 10, 3]);
            b.build().unwrap().collect::<Result<_, _>>().unwrap()
        } else {
            let r = arrow_ipc::reader::FileReader::try_new(File::open(out).unwrap(), None).unwrap();
            let b: Vec<RecordBatch> = r.collect::<Result<_, _>>().unwrap();
            assert_eq!(b.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![5, 5, 5, 5, 3]);
            b
        }
    }

    /// Small batches and row groups: every batch and row-group boundary, with nulls and a column that starts
    /// late, reads back as `history` (Parquet: one row group per `group` rows; Arrow IPC: every batch).
    #[test]
    fn batches_and_row_groups_split_rows_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let mut w = store.create_run("r").unwrap();
        for s in 0..23u32 {
            let mut m = metrics! { "x" => f64::from(s) + 0.5 };
            if s % 3 == 0 {
                m.insert("i".into(), Value::Int(i64::from(s)));
            }
            if s >= 17 {
                m.insert("late".into(), Value::Str(format!("s{s}")));
            }
            w.log_with_time(Some(u64::from(s)), 1_700_000_000.0 + f64::from(s), m).unwrap();
        }
        drop(w);
        type Row = (i64, Option<f64>, Option<i64>, Option<String>);
        let want: Vec<Row> = store
            .history("r")
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let get = |k: &str| r.metrics.get(k).cloned();
                let f = get("x").and_then(|v| v.as_f64());
                let i = match get("i") {
                    Some(Value::Int(i)) => Some(i),
                    _ => None,
                };
                let s = match get("late") {
                    Some(Value::Str(s)) => Some(s),
                    _ => None,
                };
                (r.step as i64, f, i, s)
            })
            .collect();
        // "f": floats only (read by the columnar scan, checked by its chunks' value kinds), the same shape.
        let mut w = store.create_run("f").unwrap();
        for s in 0..23u32 {
            let mut m = metrics! { "x" => f64::from(s) + 0.5 };
            if s % 3 == 0 {
                m.insert("y".into(), Value::Float(f64::from(s)));
            }
            w.log_with_time(Some(u64::from(s)), 1_700_000_000.0 + f64::from(s), m).unwrap();
        }
        drop(w);
        let want_f: Vec<(i64, Option<f64>, Option<f64>)> = store
            .history("f")
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let get = |k: &str| r.metrics.get(k).and_then(Value::as_f64);
                (r.step as i64, get("x"), get("y"))
            })
            .collect();
        for flat in [true, false] {
            for format in [ExportFormat::Parquet, ExportFormat::Arrow] {
                let out = dir.path().join(format!("f-{flat}-{format:?}"));
                let opts = ExportOptions { flat, ..Default::default() };
                let sum =
                    export_sized(&store, &["f".into()], &opts, format, &out, Sizes { batch: 5, group: 10 }).unwrap();
                assert_eq!(sum.rows, 23);
                let batches = read_back(&out, format);
                use arrow_array::cast::AsArray;
                use arrow_array::types::{Float64Type, Int64Type};
                use arrow_array::Array;
                let mut got = Vec::new();
                for b in &batches {
                    let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
                    let (step, x, y) = (col("_step"), col("x"), col("y"));
                    for r in 0..b.num_rows() {
                        got.push((
                            step.as_primitive::<Int64Type>().value(r),
                            x.is_valid(r).then(|| x.as_primitive::<Float64Type>().value(r)),
                            y.is_valid(r).then(|| y.as_primitive::<Float64Type>().value(r)),
                        ));
                    }
                }
                assert_eq!(got, want_f, "f flat {flat} {format:?}");
            }
        }
        for flat in [true, false] {
            for format in [ExportFormat::Parquet, ExportFormat::Arrow] {
                let out = dir.path().join(format!("o-{flat}-{format:?}"));
                let opts = ExportOptions { flat, ..Default::default() };
                let sizes = Sizes { batch: 5, group: 10 };
                let sum = export_sized(&store, &["r".into()], &opts, format, &out, sizes).unwrap();
                assert_eq!(sum.rows, 23);
                let batches = read_back(&out, format);
                use arrow_array::cast::AsArray;
                use arrow_array::types::{Float64Type, Int64Type};
                use arrow_array::Array;
                let mut got = Vec::new();
                for b in &batches {
                    let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
                    let (step, x, i, late) = (col("_step"), col("x"), col("i"), col("late"));
                    for r in 0..b.num_rows() {
                        got.push((
                            step.as_primitive::<Int64Type>().value(r),
                            x.is_valid(r).then(|| x.as_primitive::<Float64Type>().value(r)),
                            i.is_valid(r).then(|| i.as_primitive::<Int64Type>().value(r)),
                            late.is_valid(r).then(|| late.as_string::<i32>().value(r).to_string()),
                        ));
                    }
                }
                assert_eq!(got, want, "flat {flat} {format:?}");
            }
        }
    }
}
