//! `forklog.Run`: the writer of one run.
//!
//! Locking: the writer sits behind a mutex that is only taken with the GIL released (inside
//! `py.detach`), so a thread waiting for the writer never holds the GIL that the writer's holder needs
//! back. Python values are converted before the GIL is released.

use std::sync::{Mutex, MutexGuard};

use forklog::RunWriter;
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{self, Row, RESERVED};
use crate::errors::{self, type_error, value_error, PyResultExt};

/// A run being written: returned by `Store.init`. Log rows with `log`, patch config and summary through
/// `run.config` and `run.summary`, and end it with `finish` (or use it as a context manager).
#[pyclass(frozen, weakref, module = "forklog._native")]
pub struct Run {
    writer: Mutex<Option<RunWriter>>,
    id: String,
    version: u32,
    store: Py<crate::store::Store>,
}

/// What an operation on a finished run reports.
fn finished_err(py: Python<'_>, id: &str) -> PyErr {
    let run = id.into_pyobject(py).map(|o| o.into_any()).unwrap_or_else(|_| py.None().into_bound(py));
    errors::make(
        py,
        "RunFinished",
        &format!("run {id} is finished: init it again with resume=\"must\" to append"),
        &[("run", run)],
    )
}

/// A step argument: a non-negative int that fits int64.
pub fn step_arg(step: &Bound<'_, PyAny>) -> PyResult<u64> {
    if step.is_instance_of::<pyo3::types::PyBool>() {
        return Err(type_error("step must be an int, got bool"));
    }
    let i: i64 = step.extract().map_err(|_| {
        if step.is_instance_of::<pyo3::types::PyInt>() {
            value_error(format!("step {} is out of range (0 to 2**63 - 1)", convert::repr(step)))
        } else {
            type_error(format!("step must be an int, got {}", convert::repr(step)))
        }
    })?;
    u64::try_from(i).map_err(|_| value_error(format!("step must be a non-negative int, got {i}")))
}

impl Run {
    /// Wraps a fresh writer.
    pub fn new(writer: RunWriter, store: Py<crate::store::Store>) -> Run {
        Run { id: writer.id().to_string(), version: writer.version(), writer: Mutex::new(Some(writer)), store }
    }

    fn lock(&self) -> MutexGuard<'_, Option<RunWriter>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the writer with the GIL released.
    fn with_writer<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RunWriter) -> forklog::Result<T> + Send,
    ) -> PyResult<T> {
        let out = py.detach(|| self.lock().as_mut().map(f));
        match out {
            Some(r) => r.py_err(py),
            None => Err(finished_err(py, &self.id)),
        }
    }
}

#[pymethods]
impl Run {
    /// The run id.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// The run's version (0 for a new run; each rewind adds one).
    #[getter]
    fn version(&self) -> u32 {
        self.version
    }

    /// The step the next `log` without `step=` uses: 0 for a new run, else the last step + 1
    /// (the fork step + 1 for a fresh fork).
    #[getter]
    fn step(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_writer(py, |w| Ok(w.next_step()))
    }

    /// The last step known to be durable (fsynced), or None.
    #[getter]
    fn durable_step(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.with_writer(py, |w| Ok(w.durable_step()))
    }

    /// True once `finish` was called.
    #[getter]
    fn finished(&self, py: Python<'_>) -> bool {
        py.detach(|| self.lock().is_none())
    }

    /// The store this run belongs to.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<crate::store::Store> {
        self.store.clone_ref(py)
    }

    /// The run's config: `run.config.update({...})` and `run.config[key] = value` append config patches;
    /// reading returns the merged config.
    #[getter]
    fn config<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        errors::class(slf.py(), "Config").and_then(|c| c.call1((slf,)))
    }

    /// The run's summary: `run.summary[key] = value` and `run.summary.update({...})` set explicit summary
    /// values; reading returns the last value of every logged key, overridden by explicit ones.
    #[getter]
    fn summary<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        errors::class(slf.py(), "Summary").and_then(|c| c.call1((slf,)))
    }

    /// Logs one history row: `data` is a dict of metric names to values. Without `step` it goes at
    /// `run.step`; with `step` that step must be greater than the last one (`StepNotIncreasing`
    /// otherwise). A value of an unsupported type is a `TypeError` naming its key; on any error nothing
    /// of the row is written.
    #[pyo3(signature = (data, step=None))]
    fn log(&self, py: Python<'_>, data: &Bound<'_, PyAny>, step: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let step = step.map(step_arg).transpose()?;
        match convert::log_row(data)? {
            Row::Floats(row) => self.with_writer(py, move |w| {
                let refs: Vec<(&str, f64)> = row.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                match step {
                    Some(s) => w.log_floats_at(s, &refs),
                    None => w.log_floats(&refs).map(|_| ()),
                }
            }),
            Row::General(m) => self.with_writer(py, move |w| match step {
                Some(s) => w.log_at(s, m),
                None => w.log(m).map(|_| ()),
            }),
        }
    }

    /// Logs many rows at once from NumPy: `steps` is a 1-d array (or sequence) of increasing ints and
    /// `columns` maps metric names to 1-d float arrays of the same length (row `i` is at `steps[i]`). The
    /// arrays are read in place (float64, C-contiguous; others are converted once); nothing is written
    /// unless every check passes. Returns the last step written, or None for no rows.
    fn log_columns(
        &self,
        py: Python<'_>,
        steps: &Bound<'_, PyAny>,
        columns: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let np = py.import("numpy")?;
        let kw = PyDict::new(py);
        kw.set_item("dtype", "int64")?;
        let steps_arr = np.call_method("ascontiguousarray", (steps,), Some(&kw)).map_err(|e| {
            type_error(format!("log_columns: steps must be a 1-d array of ints ({e}); nothing was written"))
        })?;
        let steps_arr: PyReadonlyArray1<'_, i64> = steps_arr
            .extract()
            .map_err(|_| type_error("log_columns: steps must be a 1-d array of ints; nothing was written"))?;
        let steps_i = steps_arr.as_slice().map_err(|e| type_error(e.to_string()))?;
        if let Some(bad) = steps_i.iter().find(|s| **s < 0) {
            return Err(value_error(format!("log_columns: step {bad} is negative; nothing was written")));
        }
        let steps_u: Vec<u64> = steps_i.iter().map(|s| *s as u64).collect();
        let dict = columns
            .cast::<PyDict>()
            .map_err(|_| type_error("log_columns: columns must be a dict of str to 1-d float arrays"))?;
        let kw = PyDict::new(py);
        kw.set_item("dtype", "float64")?;
        let mut keys = Vec::with_capacity(dict.len());
        let mut arrays: Vec<PyReadonlyArray1<'_, f64>> = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let key: String = k
                .extract()
                .map_err(|_| type_error(format!("log_columns: column names must be str, got {}", convert::repr(&k))))?;
            if RESERVED.contains(&key.as_str()) {
                return Err(value_error(format!("metric key {key:?} is reserved; nothing was written")));
            }
            let arr = np.call_method("ascontiguousarray", (&v,), Some(&kw)).map_err(|e| {
                type_error(format!("log_columns: column {key:?} is not a float array ({e}); nothing was written"))
            })?;
            let arr: PyReadonlyArray1<'_, f64> = arr.extract().map_err(|_| {
                type_error(format!("log_columns: column {key:?} must be 1-dimensional; nothing was written"))
            })?;
            keys.push(key);
            arrays.push(arr);
        }
        let mut cols: Vec<(&str, &[f64])> = Vec::with_capacity(keys.len());
        for (k, a) in keys.iter().zip(&arrays) {
            cols.push((k.as_str(), a.as_slice().map_err(|e| type_error(e.to_string()))?));
        }
        self.with_writer(py, |w| w.log_columns(&steps_u, &cols))
    }

    /// Appends a config patch (what `run.config.update` calls).
    fn _set_config(&self, py: Python<'_>, patch: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = convert::patch("config", patch)?;
        self.with_writer(py, move |w| w.set_config(m))
    }

    /// Appends a summary patch (what `run.summary[...] = ...` calls).
    fn _set_summary(&self, py: Python<'_>, patch: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = convert::patch("summary", patch)?;
        self.with_writer(py, move |w| w.set_summary(m))
    }

    /// Makes everything logged so far durable (fsync) before returning.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        self.with_writer(py, |w| w.sync())
    }

    /// Ends the run with `exit_code` (0: finished; anything else marks a failed run) and releases it.
    /// Calling it again does nothing.
    #[pyo3(signature = (exit_code=0))]
    fn finish(&self, py: Python<'_>, exit_code: i32) -> PyResult<()> {
        let out = py.detach(|| self.lock().take().map(|w| w.finish(exit_code)));
        match out {
            Some(r) => r.py_err(py),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Finishes the run: exit code 0, or 1 when the block raised. Exceptions propagate.
    #[pyo3(signature = (*args))]
    fn __exit__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let raised = args.get_item(0).map(|t| !t.is_none()).unwrap_or(false);
        self.finish(py, i32::from(raised))?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.finished(py) { ", finished" } else { "" };
        format!("<forklog.Run {}@v{}{state}>", self.id, self.version)
    }
}
