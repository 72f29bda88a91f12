//! The native module of the `forklog` Python package (`forklog._native`): the engine's stores and
//! writers as Python classes, values converted both ways, engine errors as `forklog.Error` subclasses,
//! and the command-line tool (`python -m forklog`). The pure-Python part (python/forklog/) re-exports
//! these and adds the exception classes, report types, `to_arrow`/`to_pandas` and the type stubs.

mod convert;
mod errors;
mod run;
mod store;

use pyo3::prelude::*;

/// Runs the forklog command-line tool with `args` (without the program name) and returns its exit
/// status, exactly as the `forklog` binary would (output on this process's stdout/stderr).
#[pyfunction]
fn _cli_main(py: Python<'_>, args: Vec<std::ffi::OsString>) -> u8 {
    let argv: Vec<std::ffi::OsString> = std::iter::once("forklog".into()).chain(args).collect();
    py.detach(|| forklog_cli::run_from_args(argv))
}

/// What `_import` returns: the imported runs (one dict each), failure messages, warnings.
type ImportOutcome = (Vec<Py<pyo3::types::PyDict>>, Vec<String>, Vec<String>);

/// Imports runs a tracker wrote (`format`: `wandb`, `tensorboard`, `mlflow` or `trackio`) into `store`, as
/// `forklog import --format FORMAT` does. Returns `(imported, failures, warnings)`: one dict per imported run
/// (`source, run, version, rows, parent, fork_step`), one message per run or source that failed (nothing of
/// it stays in the store), and notes such as a dropped truncated tail. The GIL is released meanwhile.
#[pyfunction]
#[pyo3(signature = (store, format, sources, prefix = String::new(), as_id = None))]
fn _import(
    py: Python<'_>,
    store: PyRef<'_, store::Store>,
    format: &str,
    sources: Vec<std::path::PathBuf>,
    prefix: String,
    as_id: Option<String>,
) -> PyResult<ImportOutcome> {
    use forklog_interop::import::{import_sources, ImportOptions, SourceFormat};
    let format = match format {
        "wandb" => SourceFormat::Wandb,
        "tensorboard" => SourceFormat::Tensorboard,
        "mlflow" => SourceFormat::Mlflow,
        "trackio" => SourceFormat::Trackio,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown import format {other:?} (wandb, tensorboard, mlflow or trackio)"
            )))
        }
    };
    let engine = store.engine().clone();
    let opts = ImportOptions { prefix, as_id };
    let report = py.detach(|| import_sources(&engine, format, &sources, &opts));
    let mut imported = Vec::with_capacity(report.imported.len());
    for run in &report.imported {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("source", &run.source)?;
        d.set_item("run", &run.run)?;
        d.set_item("version", run.version)?;
        d.set_item("rows", run.rows)?;
        d.set_item("parent", &run.parent)?;
        d.set_item("fork_step", run.fork_step)?;
        imported.push(d.unbind());
    }
    let failures = report.failed.iter().map(|e| e.to_string()).collect();
    Ok((imported, failures, report.warnings))
}

/// The native part of forklog; import `forklog` instead.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<store::HistoryIter>()?;
    m.add_class::<run::Run>()?;
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(_import, m)?)?;
    Ok(())
}
