//! `forklog.Store`: a directory of runs, and the reads over it (history, columns, tables, listings).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use forklog::{ForkPoint, History, HistoryOptions, LogRow, Options, RunInfo, SyncPolicy, Value};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert;
use crate::errors::{self, type_error, value_error, PyResultExt};
use crate::run::{step_arg, Run};

/// Where `Store()` opens when given no path and `$FORKLOG_STORE` is unset.
const DEFAULT_DIR: &str = "./forklog-store";

/// A forklog store: a directory of runs. `Store(path)` opens (creating if missing) the store at `path`;
/// `Store()` uses `$FORKLOG_STORE`, else `./forklog-store`. `sync` sets the durability of its writers:
/// milliseconds between background fsyncs (default 1000), `"always"` (fsync before every write
/// returns) or `"never"`. Safe to share between threads.
#[pyclass(frozen, subclass, module = "forklog._native")]
pub struct Store {
    inner: forklog::Store,
}

impl Store {
    /// The engine's store (for the import functions of `lib.rs`).
    pub(crate) fn engine(&self) -> &forklog::Store {
        &self.inner
    }
}

/// A fresh run id: 8 characters of `[a-z0-9]`, as W&B makes them.
fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    let mut x = h.finish();
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| {
            let c = alphabet[(x % 36) as usize] as char;
            x /= 36;
            c
        })
        .collect()
}

/// Parses the `sync=` argument.
fn sync_policy(sync: &Bound<'_, PyAny>) -> PyResult<SyncPolicy> {
    if let Ok(s) = sync.cast::<PyString>() {
        return match s.to_cow()?.as_ref() {
            "always" => Ok(SyncPolicy::Always),
            "never" => Ok(SyncPolicy::Never),
            other => Err(value_error(format!("sync must be \"always\", \"never\" or milliseconds, got {other:?}"))),
        };
    }
    if sync.is_instance_of::<pyo3::types::PyBool>() {
        return Err(type_error("sync must be \"always\", \"never\" or milliseconds (an int)"));
    }
    let ms: u64 = sync
        .extract()
        .map_err(|_| type_error("sync must be \"always\", \"never\" or milliseconds (a non-negative int)"))?;
    Ok(SyncPolicy::EveryMillis(ms))
}

/// `HistoryOptions` from the read methods' keyword arguments.
fn history_options(
    keys: Option<Vec<String>>,
    from_step: Option<&Bound<'_, PyAny>>,
    to_step: Option<&Bound<'_, PyAny>>,
    own: bool,
) -> PyResult<HistoryOptions> {
    let mut opts = HistoryOptions::new().own_only(own);
    if let Some(k) = keys {
        opts = opts.keys(k);
    }
    if let Some(s) = from_step {
        opts = opts.from_step(step_arg(s)?);
    }
    if let Some(s) = to_step {
        opts = opts.to_step(step_arg(s)?);
    }
    Ok(opts)
}

/// A `keys=` argument: None or a list/tuple of str (a bare str is refused, not split into letters).
fn keys_arg(keys: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    match keys {
        None => Ok(None),
        Some(k) if k.is_none() => Ok(None),
        Some(k) if k.is_instance_of::<PyString>() => Err(type_error("keys must be a list of str, not a str")),
        Some(k) => k.extract().map(Some).map_err(|_| type_error("keys must be a list of str")),
    }
}

/// A metric's name and its values, NaN where a row has none.
type NamedColumn = (String, Vec<f64>);

/// The run's columns as `_step` and one NaN-filled float vector per metric, built from the engine's
/// column chunks (`scan_columns`) straight into the vectors NumPy takes over. Metrics are sorted by name,
/// or in the order of `keys` (each wanted key present, even if never logged); without `keys`, a metric that
/// never had a numeric value is left out.
fn gather_columns(
    store: &forklog::Store,
    run: &str,
    opts: &HistoryOptions,
    keys: Option<&[String]>,
) -> forklog::Result<(Vec<i64>, Vec<NamedColumn>)> {
    let mut steps: Vec<i64> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut cols: Vec<NamedColumn> = Vec::new();
    // Whether a column got a number (a metric with only strings, lists, ... is no float column).
    let mut numeric: Vec<bool> = Vec::new();
    for k in keys.unwrap_or_default() {
        if !index.contains_key(k) {
            index.insert(k.clone(), cols.len());
            cols.push((k.clone(), Vec::new()));
            numeric.push(true);
        }
    }
    store.scan_columns(run, opts, |chunk| {
        let base = steps.len();
        steps.extend(chunk.steps.iter().map(|s| *s as i64));
        for col in &chunk.columns {
            let i = match index.get(&*col.key) {
                Some(i) => *i,
                None => {
                    index.insert(col.key.to_string(), cols.len());
                    cols.push((col.key.to_string(), Vec::new()));
                    numeric.push(false);
                    cols.len() - 1
                }
            };
            let v = &mut cols[i].1;
            v.resize(base, f64::NAN);
            v.extend(col.values.iter().map(|x| x.unwrap_or(f64::NAN)));
            numeric[i] |= col.values.iter().any(Option::is_some);
        }
    })?;
    let mut numeric = numeric.into_iter();
    cols.retain(|_| numeric.next().unwrap_or(true));
    for (_, v) in &mut cols {
        v.resize(steps.len(), f64::NAN);
    }
    if keys.is_none() {
        cols.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok((steps, cols))
}

/// A forklog `RunInfo` as a `forklog.RunInfo`.
fn info_to_py<'py>(py: Python<'py>, r: &RunInfo) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(py);
    kw.set_item("id", &r.id)?;
    kw.set_item("version", r.version)?;
    kw.set_item("parent", r.parent.as_ref().map(ToString::to_string))?;
    kw.set_item("fork_step", r.fork_step)?;
    kw.set_item("rewind_step", r.rewind_step)?;
    kw.set_item("first_step", r.first_step)?;
    kw.set_item("last_step", r.last_step)?;
    kw.set_item("rows", r.rows)?;
    kw.set_item("events", r.events)?;
    kw.set_item("state", r.state.as_str())?;
    kw.set_item("created", r.created)?;
    kw.set_item("archived", r.archived)?;
    kw.set_item("deleted", r.deleted)?;
    errors::class(py, "RunInfo")?.call((), Some(&kw))
}

fn infos_to_py<'py>(py: Python<'py>, runs: &[RunInfo]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for r in runs {
        list.append(info_to_py(py, r)?)?;
    }
    Ok(list)
}

/// A history row as a dict: `_step`, `_timestamp`, the metrics, and `_run` when `origin`.
fn row_to_py<'py>(py: Python<'py>, row: &LogRow, origin: bool) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(pyo3::intern!(py, "_step"), row.step)?;
    d.set_item(pyo3::intern!(py, "_timestamp"), row.time)?;
    for (k, v) in &row.metrics {
        d.set_item(&**k, convert::to_py(py, v)?)?;
    }
    if origin {
        d.set_item(pyo3::intern!(py, "_run"), row.origin.to_string())?;
    }
    Ok(d)
}

impl Store {
    fn open(py: Python<'_>, path: PathBuf, sync: Option<&Bound<'_, PyAny>>) -> PyResult<Store> {
        let mut opts = Options::default();
        if let Some(s) = sync.filter(|s| !s.is_none()) {
            opts = opts.sync(sync_policy(s)?);
        }
        let inner = py.detach(|| forklog::Store::open_with(&path, opts)).py_err(py)?;
        Ok(Store { inner })
    }
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (path=None, *, sync=None))]
    fn new(py: Python<'_>, path: Option<PathBuf>, sync: Option<&Bound<'_, PyAny>>) -> PyResult<Store> {
        let path = path
            .or_else(|| std::env::var_os("FORKLOG_STORE").filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Store::open(py, path, sync)
    }

    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    /// Starts writing a run and returns its `Run`.
    ///
    /// - `init(id)`: a new run (`RunExists` if the id is taken); `id=None` makes a random id.
    /// - `fork_from="PARENT?_step=N"`: a new run inheriting PARENT's steps <= N without copying them;
    ///   it continues at N + 1.
    /// - `resume_from="ID?_step=N"`: rewinds run ID (the current version is archived as `ID@vK`); the new
    ///   version continues at N + 1.
    /// - `resume="must"`: appends to an existing run (`RunNotFound` if missing); `"allow"`: appends, or
    ///   creates the run when missing.
    ///
    /// `config` (a dict) is appended as a config patch. A bad config is refused before anything is written.
    #[pyo3(signature = (id=None, *, config=None, fork_from=None, resume_from=None, resume=None))]
    fn init(
        slf: &Bound<'_, Self>,
        id: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
        fork_from: Option<&str>,
        resume_from: Option<&str>,
        resume: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Run> {
        let py = slf.py();
        let this = slf.get();
        let patch = match config.filter(|c| !c.is_none()) {
            Some(c) => Some(convert::patch("config", c)?),
            None => None,
        };
        let mode = match resume {
            None => None,
            Some(r) if r.is_none() => None,
            Some(r) => match r.extract::<String>() {
                Ok(s) if s == "must" || s == "allow" => Some(s),
                Ok(s) if s == "never" => None,
                _ => match r.extract::<bool>() {
                    Ok(true) => Some("allow".to_string()),
                    Ok(false) => None,
                    Err(_) => {
                        return Err(value_error(format!(
                            "resume must be \"must\", \"allow\" or \"never\", got {}",
                            convert::repr(r)
                        )))
                    }
                },
            },
        };
        let chosen = [fork_from.is_some(), resume_from.is_some(), mode.is_some()].iter().filter(|b| **b).count();
        if chosen > 1 {
            return Err(value_error("init takes at most one of fork_from, resume_from and resume"));
        }
        let writer = if let Some(spec) = fork_from {
            let point: ForkPoint = spec.parse().py_err(py)?;
            let id = id.unwrap_or_else(random_id);
            py.detach(|| this.inner.fork(&id, &point)).py_err(py)?
        } else if let Some(spec) = resume_from {
            let point: ForkPoint = spec.parse().py_err(py)?;
            if let Some(id) = id.as_ref().filter(|id| **id != point.run.id) {
                let spec_obj = spec.into_pyobject(py)?.into_any();
                let reason = format!("resume_from names run {:?} but init was given id {id:?}", point.run.id);
                let reason_obj = reason.as_str().into_pyobject(py)?.into_any();
                return Err(errors::make(
                    py,
                    "InvalidSpec",
                    &format!("invalid run spec {spec:?}: {reason}"),
                    &[("spec", spec_obj), ("reason", reason_obj)],
                ));
            }
            py.detach(|| this.inner.rewind_to(&point)).py_err(py)?
        } else {
            let id = id.unwrap_or_else(random_id);
            match mode.as_deref() {
                Some("must") => py.detach(|| this.inner.resume(&id)).py_err(py)?,
                Some(_) => py
                    .detach(|| match this.inner.resume(&id) {
                        Err(forklog::Error::RunNotFound { .. }) => match this.inner.create_run(&id) {
                            // Created by someone else in between: append to it.
                            Err(forklog::Error::RunExists { .. }) => this.inner.resume(&id),
                            other => other,
                        },
                        other => other,
                    })
                    .py_err(py)?,
                None => py.detach(|| this.inner.create_run(&id)).py_err(py)?,
            }
        };
        let mut writer = writer;
        if let Some(m) = patch {
            py.detach(|| writer.set_config(m)).py_err(py)?;
        }
        Ok(Run::new(writer, slf.clone().unbind()))
    }

    /// The run's history rows in step order (inherited rows included) as an iterator of dicts
    /// `{"_step": int, "_timestamp": float, ...metrics}`. `run` is `ID` or `ID@vK`. `keys` keeps only those
    /// metrics (rows with none of them are skipped); `from_step`/`to_step` bound the steps (inclusive);
    /// `own=True` leaves out the inherited prefix; `origin=True` adds `"_run": "ID@vK"`, the version each
    /// row is stored in.
    #[pyo3(signature = (run, keys=None, from_step=None, to_step=None, own=false, origin=false))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn history(
        &self,
        py: Python<'_>,
        run: &str,
        keys: Option<&Bound<'_, PyAny>>,
        from_step: Option<&Bound<'_, PyAny>>,
        to_step: Option<&Bound<'_, PyAny>>,
        own: bool,
        origin: bool,
    ) -> PyResult<HistoryIter> {
        let opts = history_options(keys_arg(keys)?, from_step, to_step, own)?;
        let iter = py.detach(|| self.inner.history_with(run, &opts)).py_err(py)?;
        Ok(HistoryIter { state: Mutex::new(IterState { iter: Some(iter), buf: VecDeque::new() }), origin })
    }

    /// The run's history as NumPy columns: `"_step"` (int64) and one float64 array per float metric, with
    /// NaN where a row has no value for it. `keys` keeps only those metrics (and the rows that have any).
    #[pyo3(signature = (run, keys=None))]
    fn columns<'py>(
        &self,
        py: Python<'py>,
        run: &str,
        keys: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let keys = keys_arg(keys)?;
        let opts = history_options(keys.clone(), None, None, false)?;
        let cols = py.detach(|| gather_columns(&self.inner, run, &opts, keys.as_deref())).py_err(py)?;
        let out = PyDict::new(py);
        out.set_item("_step", PyArray1::from_vec(py, cols.0))?;
        for (k, v) in cols.1 {
            out.set_item(k, PyArray1::from_vec(py, v))?;
        }
        Ok(out)
    }

    /// The run's exact downsampled history (M4), for charts: `from_step..=to_step` (default: the run's first
    /// to last logged step, inherited rows included) split into `buckets` equal buckets; per bucket and key
    /// the first, last, minimum and maximum value with their steps, and the number of values. A line chart of
    /// `buckets` pixels drawn from it is the chart of every row. `keys`: a list of metric names (None: every
    /// numeric metric). Returns `{key: {"bucket", "start", "end", "count", "first_step", "first", "last_step",
    /// "last", "min_step", "min", "max_step", "max"}}`: one NumPy array each (int64; the values float64),
    /// one element per non-empty bucket in bucket order (`bucket`: its number, `start`/`end`: its step range,
    /// inclusive). A requested key without values has empty arrays. Values are floats as logged, ints
    /// converted, bools 0/1; `min`/`max` skip NaN (a bucket of NaNs has `min` = `max` = `first`).
    #[pyo3(signature = (run, keys, buckets, from_step=None, to_step=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        run: &str,
        keys: Option<&Bound<'_, PyAny>>,
        buckets: &Bound<'_, PyAny>,
        from_step: Option<&Bound<'_, PyAny>>,
        to_step: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let keys = keys_arg(keys)?.unwrap_or_default();
        if buckets.is_instance_of::<pyo3::types::PyBool>() || !buckets.is_instance_of::<pyo3::types::PyInt>() {
            return Err(type_error(format!("buckets must be an int, got {}", convert::repr(buckets))));
        }
        let n: u32 =
            buckets.extract::<i64>().ok().and_then(|n| u32::try_from(n).ok()).filter(|n| *n >= 1).ok_or_else(|| {
                value_error(format!("buckets must be 1 to 2**32 - 1, got {}", convert::repr(buckets)))
            })?;
        let from = from_step.filter(|s| !s.is_none()).map(step_arg).transpose()?;
        let to = to_step.filter(|s| !s.is_none()).map(step_arg).transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(value_error(format!("from_step {f} is after to_step {t}")));
            }
        }
        let sample = py.detach(|| self.inner.sample(run, &keys, n, from, to)).py_err(py)?;
        let out = PyDict::new(py);
        for series in &sample.series {
            let b = &series.buckets;
            let ints = |f: &dyn Fn(&forklog::Bucket) -> u64| b.iter().map(|x| f(x) as i64).collect::<Vec<i64>>();
            let floats = |f: &dyn Fn(&forklog::Bucket) -> f64| b.iter().map(f).collect::<Vec<f64>>();
            let d = PyDict::new(py);
            d.set_item("bucket", PyArray1::from_vec(py, ints(&|x| u64::from(x.index))))?;
            d.set_item("start", PyArray1::from_vec(py, ints(&|x| x.start)))?;
            d.set_item("end", PyArray1::from_vec(py, ints(&|x| x.end)))?;
            d.set_item("count", PyArray1::from_vec(py, ints(&|x| x.count)))?;
            d.set_item("first_step", PyArray1::from_vec(py, ints(&|x| x.first.step)))?;
            d.set_item("first", PyArray1::from_vec(py, floats(&|x| x.first.value)))?;
            d.set_item("last_step", PyArray1::from_vec(py, ints(&|x| x.last.step)))?;
            d.set_item("last", PyArray1::from_vec(py, floats(&|x| x.last.value)))?;
            d.set_item("min_step", PyArray1::from_vec(py, ints(&|x| x.min.step)))?;
            d.set_item("min", PyArray1::from_vec(py, floats(&|x| x.min.value)))?;
            d.set_item("max_step", PyArray1::from_vec(py, ints(&|x| x.max.step)))?;
            d.set_item("max", PyArray1::from_vec(py, floats(&|x| x.max.value)))?;
            out.set_item(&*series.key, d)?;
        }
        Ok(out)
    }

    /// The history as typed columns for `to_arrow`/`to_pandas`: `(steps, timestamps, [(key, kind, values,
    /// present)])` with kind "float"/"int"/"bool" (NumPy values and a bool mask) or "object" (a list with
    /// None where absent).
    #[pyo3(signature = (run, keys=None, from_step=None, to_step=None, own=false))]
    fn _table<'py>(
        &self,
        py: Python<'py>,
        run: &str,
        keys: Option<&Bound<'_, PyAny>>,
        from_step: Option<&Bound<'_, PyAny>>,
        to_step: Option<&Bound<'_, PyAny>>,
        own: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = history_options(keys_arg(keys)?, from_step, to_step, own)?;
        let rows: Vec<LogRow> =
            py.detach(|| self.inner.history_with(run, &opts).and_then(|h| h.collect())).py_err(py)?;
        let n = rows.len();
        let mut by_key: BTreeMap<&str, Vec<(usize, &Value)>> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            for (k, v) in &row.metrics {
                by_key.entry(&**k).or_default().push((i, v));
            }
        }
        let steps: Vec<i64> = rows.iter().map(|r| r.step as i64).collect();
        let times: Vec<f64> = rows.iter().map(|r| r.time).collect();
        let cols = PyList::empty(py);
        for (key, vals) in by_key {
            let mut present = vec![false; n];
            for (i, _) in &vals {
                present[*i] = true;
            }
            let present = PyArray1::from_vec(py, present);
            let all = |f: fn(&Value) -> bool| vals.iter().all(|(_, v)| f(v));
            let (kind, data): (&str, Bound<'py, PyAny>) = if all(|v| matches!(v, Value::Float(_))) {
                let mut d = vec![f64::NAN; n];
                for (i, v) in &vals {
                    d[*i] = v.as_f64().unwrap_or(f64::NAN);
                }
                ("float", PyArray1::from_vec(py, d).into_any())
            } else if all(|v| matches!(v, Value::Int(_))) {
                let mut d = vec![0i64; n];
                for (i, v) in &vals {
                    d[*i] = v.as_i64().unwrap_or(0);
                }
                ("int", PyArray1::from_vec(py, d).into_any())
            } else if all(|v| matches!(v, Value::Bool(_))) {
                let mut d = vec![false; n];
                for (i, v) in &vals {
                    d[*i] = matches!(v, Value::Bool(true));
                }
                ("bool", PyArray1::from_vec(py, d).into_any())
            } else {
                let list = PyList::new(py, (0..n).map(|_| py.None()))?;
                for (i, v) in &vals {
                    list.set_item(*i, convert::to_py(py, v)?)?;
                }
                ("object", list.into_any())
            };
            cols.append((key, kind, data, present))?;
        }
        Ok((PyArray1::from_vec(py, steps), PyArray1::from_vec(py, times), cols).into_pyobject(py)?.into_any())
    }

    /// Live runs sorted by id, as `RunInfo`s; `all=True` adds archived versions and deleted runs kept for
    /// their forks.
    #[pyo3(signature = (all=false))]
    fn runs<'py>(&self, py: Python<'py>, all: bool) -> PyResult<Bound<'py, PyList>> {
        let runs = py.detach(|| if all { self.inner.runs_all() } else { self.inner.runs() }).py_err(py)?;
        infos_to_py(py, &runs)
    }

    /// Facts about a run (or `ID@vK`): lineage, steps, counts, state.
    fn info<'py>(&self, py: Python<'py>, run: &str) -> PyResult<Bound<'py, PyAny>> {
        let info = py.detach(|| self.inner.info(run)).py_err(py)?;
        info_to_py(py, &info)
    }

    /// The run's summary: the last value of every logged key, overridden by explicit summary values.
    fn summary<'py>(&self, py: Python<'py>, run: &str) -> PyResult<Bound<'py, PyDict>> {
        let m = py.detach(|| self.inner.summary(run)).py_err(py)?;
        convert::map_to_py(py, m.iter().map(|(k, v)| (&**k, v)))
    }

    /// The run's config: every config patch merged in order (inherited ones included).
    fn config<'py>(&self, py: Python<'py>, run: &str) -> PyResult<Bound<'py, PyDict>> {
        let m = py.detach(|| self.inner.config(run)).py_err(py)?;
        convert::map_to_py(py, m.iter().map(|(k, v)| (&**k, v)))
    }

    /// The run's ancestry, root first, the run itself last: `LineageEntry(run="ID@vK", fork_step=N|None)`.
    fn lineage<'py>(&self, py: Python<'py>, run: &str) -> PyResult<Bound<'py, PyList>> {
        let entries = py.detach(|| self.inner.lineage(run)).py_err(py)?;
        let cls = errors::class(py, "LineageEntry")?;
        let list = PyList::empty(py);
        for e in &entries {
            list.append(cls.call1((e.run.to_string(), e.fork_step))?)?;
        }
        Ok(list)
    }

    /// Live runs forked from any version of `run`, sorted by id, as `RunInfo`s.
    fn children<'py>(&self, py: Python<'py>, run: &str) -> PyResult<Bound<'py, PyList>> {
        let runs = py.detach(|| self.inner.children(run)).py_err(py)?;
        infos_to_py(py, &runs)
    }

    /// Deletes a run: it leaves listings and reads; files its forks inherit stay until `gc` finds no live
    /// run reaching them. `RunBusy` while a writer has it open.
    fn delete(&self, py: Python<'_>, run: &str) -> PyResult<()> {
        py.detach(|| self.inner.delete_run(run)).py_err(py)
    }

    /// Removes every file no live run reaches; returns a `GcReport`.
    fn gc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = py.detach(|| self.inner.gc()).py_err(py)?;
        let kw = PyDict::new(py);
        kw.set_item("files_removed", r.files_removed)?;
        kw.set_item("bytes_freed", r.bytes_freed)?;
        kw.set_item("runs_removed", r.runs_removed.clone())?;
        errors::class(py, "GcReport")?.call((), Some(&kw))
    }

    /// Checks every byte of every file; returns a `VerifyReport` (`.clean`, `.problems`).
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = py.detach(|| self.inner.verify()).py_err(py)?;
        let problem = errors::class(py, "Problem")?;
        let problems = PyList::empty(py);
        for p in &r.problems {
            let kind = match p.kind {
                forklog::ProblemKind::TornTail => "torn tail",
                _ => "corrupt",
            };
            problems.append(problem.call1((
                p.file.to_string_lossy().to_string(),
                p.offset,
                kind,
                p.message.clone(),
            ))?)?;
        }
        let kw = PyDict::new(py);
        kw.set_item("files", r.files)?;
        kw.set_item("bytes", r.bytes)?;
        kw.set_item("problems", problems)?;
        kw.set_item("clean", r.is_clean())?;
        errors::class(py, "VerifyReport")?.call((), Some(&kw))
    }

    fn __repr__(&self) -> String {
        format!("forklog.Store({:?})", self.inner.path().display().to_string())
    }
}

/// Rows pulled per trip with the GIL released.
const BATCH: usize = 256;

struct IterState {
    iter: Option<History>,
    buf: VecDeque<LogRow>,
}

/// An iterator of history rows (dicts), as returned by `Store.history`. Rows are read in batches with
/// the GIL released.
#[pyclass(frozen, module = "forklog._native")]
pub struct HistoryIter {
    state: Mutex<IterState>,
    origin: bool,
}

#[pymethods]
impl HistoryIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let next = py.detach(|| -> forklog::Result<Option<LogRow>> {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.buf.is_empty() {
                if let Some(iter) = s.iter.as_mut() {
                    let mut batch = VecDeque::with_capacity(BATCH);
                    let mut ended = false;
                    for _ in 0..BATCH {
                        match iter.next() {
                            Some(Ok(row)) => batch.push_back(row),
                            Some(Err(e)) => {
                                s.iter = None;
                                return Err(e);
                            }
                            None => {
                                ended = true;
                                break;
                            }
                        }
                    }
                    if ended {
                        s.iter = None;
                    }
                    s.buf = batch;
                }
            }
            Ok(s.buf.pop_front())
        });
        match next.py_err(py)? {
            Some(row) => row_to_py(py, &row, self.origin).map(Some),
            None => Ok(None),
        }
    }
}
