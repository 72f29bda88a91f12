//! Engine errors as Python exceptions: one class per [`forklog::Error`] variant, defined in
//! `forklog/_types.py` under `forklog.Error`, carrying the variant's fields as attributes.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

/// The `forklog._types` module, imported once.
static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The exception class `name` of `forklog._types`.
pub fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let module = ERRORS.get_or_try_init(py, || py.import("forklog._types").map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// Builds exception `name` with message `message` and `fields` as attributes.
pub fn make(py: Python<'_>, name: &str, message: &str, fields: &[(&str, Bound<'_, PyAny>)]) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        for (k, v) in fields {
            kwargs.set_item(*k, v)?;
        }
        let exc = class(py, name)?.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// Converts an engine error into its Python exception.
pub fn to_py(py: Python<'_>, e: forklog::Error) -> PyErr {
    use forklog::Error as E;
    let message = e.to_string();
    let s = |x: &str| x.into_pyobject(py).map(|o| o.into_any()).unwrap_or_else(|_| py.None().into_bound(py));
    let n = |x: u64| x.into_pyobject(py).map(|o| o.into_any()).unwrap_or_else(|_| py.None().into_bound(py));
    let p = |x: &std::path::Path| s(&x.to_string_lossy());
    let (name, fields): (&str, Vec<(&str, Bound<'_, PyAny>)>) = match &e {
        E::InvalidRunId { id, reason } => ("InvalidRunId", vec![("id", s(id)), ("reason", s(reason))]),
        E::InvalidSpec { spec, reason } => ("InvalidSpec", vec![("spec", s(spec)), ("reason", s(reason))]),
        E::RunNotFound { run } => ("RunNotFound", vec![("run", s(run))]),
        E::RunExists { run } => ("RunExists", vec![("run", s(run))]),
        E::RunBusy { run } => ("RunBusy", vec![("run", s(run))]),
        E::StepNotIncreasing { run, last, got } => {
            ("StepNotIncreasing", vec![("run", s(run)), ("last", n(*last)), ("got", n(*got))])
        }
        E::ForkOntoItself { run } => ("ForkOntoItself", vec![("run", s(run))]),
        E::ReadOnlyVersion { run } => ("ReadOnlyVersion", vec![("run", s(run))]),
        E::NotAStore { path } => ("NotAStore", vec![("path", p(path))]),
        E::NoStore { path } => ("NoStore", vec![("path", p(path))]),
        E::ReadOnlyStore { path } => ("ReadOnlyStore", vec![("path", p(path))]),
        E::Corrupt { file, offset, reason } => {
            ("Corrupt", vec![("file", p(file)), ("offset", n(*offset)), ("reason", s(reason))])
        }
        E::UnsupportedFormat { file, found, supported } => (
            "UnsupportedFormat",
            vec![("file", p(file)), ("found", n(u64::from(*found))), ("supported", n(u64::from(*supported)))],
        ),
        E::Poisoned { run } => ("Poisoned", vec![("run", s(run))]),
        E::Value { reason } => ("InvalidValue", vec![("reason", s(reason))]),
        E::TooLarge { what, size, limit } => {
            ("TooLarge", vec![("what", s(what)), ("size", n(*size)), ("limit", n(*limit))])
        }
        E::Io { op, path, source } => {
            let errno = match source.raw_os_error() {
                Some(code) => code.into_pyobject(py).map(|o| o.into_any()).unwrap_or_else(|_| py.None().into_bound(py)),
                None => py.None().into_bound(py),
            };
            ("IoError", vec![("op", s(op)), ("path", p(path)), ("errno", errno)])
        }
        // A variant added to the engine later: the base class, with the engine's message.
        _ => ("Error", vec![]),
    };
    make(py, name, &message, &fields)
}

/// `TypeError(message)`.
pub fn type_error(message: impl Into<String>) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(message.into())
}

/// `ValueError(message)`.
pub fn value_error(message: impl Into<String>) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(message.into())
}

/// Extension: `.py_err(py)` on engine results.
pub trait PyResultExt<T> {
    /// Maps an engine error to its Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> PyResultExt<T> for forklog::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
