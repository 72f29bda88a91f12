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

/// The native part of forklog; import `forklog` instead.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<store::HistoryIter>()?;
    m.add_class::<run::Run>()?;
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    Ok(())
}
