//! Exporters: forklog runs as files analysis tools read.
//!
//! - [`ExportFormat::Parquet`] and [`ExportFormat::Arrow`] (IPC file): one table with columns `_run`
//!   (dictionary-encoded string: the row's origin `ID@vK`, or the exported run's id with `flat`), `_step`
//!   (int64), `_timestamp` (timestamp µs, UTC), then one column per metric in key order: float64 for floats
//!   (and for a key holding both ints and floats), int64, string, bool; any other value (lists, maps, bytes,
//!   mixed types) as its JSON text.
//! - [`ExportFormat::Jsonl`] and [`ExportFormat::Csv`]: the same rows as `forklog history` prints them,
//!   plus `_run`.
//! - [`ExportFormat::Tensorboard`]: one event-file folder per run under the output folder (named by the run,
//!   its whole visible history, inherited rows included), numeric metrics as float32 `simple_value` scalars,
//!   so `tensorboard --logdir OUT` shows forklog runs and their forks side by side.
//!
//! Without `flat`, rows are labelled by where they are stored and each stored row is written once: a fork
//! exported with its parent does not repeat the parent's rows it inherits (they are the same rows, with the
//! same `_run`). With `flat`, each run's whole visible history is written, labelled with the run's id.
//!
//! Parquet and Arrow are written in one pass over the rows when the column types can be known beforehand
//! (see `columnar.rs`). The Python package does not wrap the exporters yet (the CLI's `forklog export` does).

#[cfg(feature = "columnar")]
mod columnar;
mod tensorboard;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use forklog::{HistoryOptions, RowRef, Store, Value};

pub use tensorboard::export_tensorboard;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON Lines (one row per line, `_run` added).
    Jsonl,
    /// CSV with a header (`_run,_step,_timestamp,<keys>`).
    Csv,
    /// Apache Parquet (snappy).
    Parquet,
    /// Apache Arrow IPC file (Feather v2).
    Arrow,
    /// TensorBoard event files, one folder per run.
    Tensorboard,
}

/// Options of an export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Label rows with the exported run's id and write each run's whole history (see the module docs).
    pub flat: bool,
    /// How JSON Lines exports spell non-finite floats (as `forklog history --json-nonfinite`).
    pub nonfinite: crate::json::NonFinite,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Runs exported.
    pub runs: usize,
    /// Rows written.
    pub rows: u64,
}

/// Why an export failed (the partial output is removed).
#[derive(Debug)]
pub enum ExportError {
    /// Reading the store failed.
    Store(forklog::Error),
    /// Writing the output failed.
    Io {
        /// The file being written.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The Arrow/Parquet library refused.
    Encode(String),
    /// The request is wrong (no runs, an output that exists where it must not).
    Usage(String),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Store(e) => write!(f, "{e}"),
            ExportError::Io { path, error } => write!(f, "writing {}: {error}", path.display()),
            ExportError::Encode(m) => write!(f, "encoding: {m}"),
            ExportError::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<forklog::Error> for ExportError {
    fn from(e: forklog::Error) -> ExportError {
        ExportError::Store(e)
    }
}

/// `run` and every live run forked from it (from any of its versions), recursively, parents first.
pub fn tree(store: &Store, run: &str) -> Result<Vec<String>, ExportError> {
    let info = store.info(run)?;
    let mut out = vec![run.to_string()];
    let mut queue = vec![info.id];
    let mut seen = std::collections::HashSet::new();
    while let Some(id) = queue.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for child in store.children(&id)? {
            if seen.contains(&child.id) {
                continue;
            }
            out.push(child.id.clone());
            queue.insert(0, child.id);
        }
    }
    Ok(out)
}

/// Writes `runs` to `out` in `format` (see the module docs). The output is replaced whole: it is written to a
/// temporary name, synced and renamed; a failed export leaves no partial file.
pub fn export_runs(
    store: &Store,
    runs: &[String],
    format: ExportFormat,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    if runs.is_empty() {
        return Err(ExportError::Usage("no runs to export".into()));
    }
    for r in runs {
        store.info(r)?;
    }
    match format {
        ExportFormat::Tensorboard => export_tensorboard(store, runs, out),
        #[cfg(feature = "columnar")]
        ExportFormat::Parquet | ExportFormat::Arrow => columnar::export(store, runs, opts, format, out),
        #[cfg(not(feature = "columnar"))]
        ExportFormat::Parquet | ExportFormat::Arrow => {
            Err(ExportError::Usage("Parquet and Arrow exports need the `columnar` feature".into()))
        }
        ExportFormat::Jsonl | ExportFormat::Csv => {
            let schema = if format == ExportFormat::Csv { Some(scan_schema(store, runs, opts)?) } else { None };
            atomic_write(out, |w| text::write(store, runs, opts, schema.as_ref(), format, w))
        }
    }
}

/// Writes `runs` as Parquet to `out` (see [`export_runs`]).
pub fn export_parquet(
    store: &Store,
    runs: &[String],
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    export_runs(store, runs, ExportFormat::Parquet, out, opts)
}

/// Writes `runs` as an Arrow IPC file to `out` (see [`export_runs`]).
pub fn export_arrow(
    store: &Store,
    runs: &[String],
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    export_runs(store, runs, ExportFormat::Arrow, out, opts)
}

/// The type a metric column gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only nulls so far.
    Null,
    /// float64 (floats, or ints and floats mixed).
    Float,
    /// int64.
    Int,
    /// UTF-8 string.
    Str,
    /// Boolean.
    Bool,
    /// Anything else, as JSON text.
    Json,
}

impl Kind {
    fn of(v: &Value) -> Kind {
        match v {
            Value::Null => Kind::Null,
            Value::Float(_) => Kind::Float,
            Value::Int(_) => Kind::Int,
            Value::Str(_) => Kind::Str,
            Value::Bool(_) => Kind::Bool,
            _ => Kind::Json,
        }
    }

    fn merge(self, other: Kind) -> Kind {
        match (self, other) {
            (a, b) if a == b => a,
            (Kind::Null, b) => b,
            (a, Kind::Null) => a,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            _ => Kind::Json,
        }
    }
}

/// The columns of an export and the `_run` labels it will write (from a first pass over the rows, or guessed).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Metric columns in key order, with their kinds.
    pub columns: Vec<(String, Kind)>,
    /// Every `_run` label, in first-seen order.
    pub labels: Vec<String>,
    /// Rows that will be written.
    pub rows: u64,
}

/// Reserved column names.
pub(crate) const RESERVED: [&str; 3] = ["_run", "_step", "_timestamp"];

/// First pass: column kinds and labels.
pub(crate) fn scan_schema(store: &Store, runs: &[String], opts: &ExportOptions) -> Result<Schema, ExportError> {
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    let mut labels: Vec<String> = Vec::new();
    let mut label_set = std::collections::HashSet::new();
    let mut rows = 0u64;
    // Kind per key of the previous row, to skip the map lookup when keys repeat (the common case).
    let mut last: Vec<(String, Kind)> = Vec::new();
    for_each_row(store, runs, opts, |label, row| {
        rows += 1;
        if !label_set.contains(label) {
            label_set.insert(label.to_string());
            labels.push(label.to_string());
        }
        for (i, (k, v)) in row.metrics().enumerate() {
            let kv = Kind::of(v);
            if let Some((lk, lkind)) = last.get_mut(i) {
                if lk == k && (*lkind == kv || kv == Kind::Null) {
                    continue;
                }
                if lk == k {
                    *lkind = lkind.merge(kv);
                } else {
                    *lk = k.to_string();
                    *lkind = kv;
                }
            } else {
                last.push((k.to_string(), kv));
            }
            let e = kinds.entry(k.to_string()).or_insert(Kind::Null);
            *e = e.merge(kv);
        }
    })?;
    for k in kinds.keys() {
        if RESERVED.contains(&k.as_str()) {
            return Err(ExportError::Usage(format!("a metric is named {k:?}, a column name the export reserves")));
        }
    }
    Ok(Schema { columns: kinds.into_iter().collect(), labels, rows })
}

/// Calls `f(label, row)` for every row to export: each run's history in order, labelled by origin (each
/// stored row once) or, with `flat`, by the run.
pub fn for_each_row(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    mut f: impl FnMut(&str, &RowRef<'_>),
) -> Result<(), ExportError> {
    // Highest step written per origin (a run inherits a prefix of each origin's own rows).
    let mut written: HashMap<String, u64> = HashMap::new();
    for run in runs {
        let mut origin_label = String::new();
        let mut origin_ref: Option<forklog::RunRef> = None;
        let mut skip_upto: Option<u64> = None;
        let mut max_here: Option<u64> = None;
        store.history_with(run, &HistoryOptions::new())?.for_each_row(|row| {
            if opts.flat {
                f(run, row);
                return;
            }
            if origin_ref.as_ref() != Some(row.origin) {
                if let (Some(o), Some(m)) = (&origin_ref, max_here) {
                    let e = written.entry(o.to_string()).or_insert(m);
                    *e = (*e).max(m);
                }
                origin_ref = Some(row.origin.clone());
                origin_label = row.origin.to_string();
                skip_upto = written.get(&origin_label).copied();
            }
            max_here = Some(row.step);
            if skip_upto.is_some_and(|s| row.step <= s) {
                return;
            }
            f(&origin_label, row);
        })?;
        if let (Some(o), Some(m)) = (&origin_ref, max_here) {
            let e = written.entry(o.to_string()).or_insert(m);
            *e = (*e).max(m);
        }
    }
    Ok(())
}

/// Writes `out` through a temporary file in the same folder, synced and renamed into place.
fn atomic_write(
    out: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<ExportSummary, ExportError>,
) -> Result<ExportSummary, ExportError> {
    atomic_write_if(out, |w| write(w).map(Some))?.ok_or_else(|| ExportError::Encode("the export was abandoned".into()))
}

/// [`atomic_write`] whose writer may abandon the file (`Ok(None)`): the temporary file is removed and
/// `out` left as it was.
pub(crate) fn atomic_write_if(
    out: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<Option<ExportSummary>, ExportError>,
) -> Result<Option<ExportSummary>, ExportError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let io = |path: &Path, error: std::io::Error| ExportError::Io { path: path.to_path_buf(), error };
    let res = (|| {
        let f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let Some(summary) = write(&mut w)? else { return Ok(None) };
        let f = w.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, out).map_err(|e| io(out, e))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(Some(summary))
    })();
    if !matches!(res, Ok(Some(_))) {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Flushes a writer, as an [`ExportError`].
fn flush(w: &mut impl Write, path: &str) -> Result<(), ExportError> {
    w.flush().map_err(|error| ExportError::Io { path: PathBuf::from(path), error })
}

/// Microseconds since the epoch of a time in seconds.
#[cfg_attr(not(feature = "columnar"), allow(dead_code))]
pub(crate) fn micros(t: f64) -> i64 {
    if t.is_finite() {
        (t * 1e6).round() as i64
    } else {
        0
    }
}
