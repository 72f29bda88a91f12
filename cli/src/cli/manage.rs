//! Commands that change a store without logging rows: `forklog fork`, `rewind`, `delete` and `gc`.

use std::io::{self, Write};
use std::path::Path;

use forklog::ForkPoint;

use super::{open_existing_writable as open_existing, stdout_error, CliError, EXIT_OK};

/// `forklog fork NEW_RUN SPEC`: creates a fork with no rows of its own, durable on return. Like every
/// command that writes a run, it ends its session cleanly (a Finish event), so the run reads `finished`.
pub fn fork(dir: &Path, new_run: &str, spec: &str) -> Result<u8, CliError> {
    let point: ForkPoint = spec.parse()?;
    let store = open_existing(dir)?;
    store.fork(new_run, &point)?.finish(0)?;
    Ok(EXIT_OK)
}

/// `forklog rewind RUN?_step=N`: rewinds a run in place (its current version is archived); the new
/// version ends with a Finish event, as after `log`.
pub fn rewind(dir: &Path, spec: &str) -> Result<u8, CliError> {
    let point: ForkPoint = spec.parse()?;
    let store = open_existing(dir)?;
    store.rewind_to(&point)?.finish(0)?;
    Ok(EXIT_OK)
}

/// `forklog delete RUN`.
pub fn delete(dir: &Path, run: &str) -> Result<u8, CliError> {
    open_existing(dir)?.delete_run(run)?;
    Ok(EXIT_OK)
}

/// `forklog gc`: frees what no live run needs and prints what was freed.
pub fn gc(dir: &Path) -> Result<u8, CliError> {
    let report = open_existing(dir)?.gc()?;
    let runs = if report.runs_removed.is_empty() { "none".to_string() } else { report.runs_removed.join(", ") };
    let mut out = io::stdout().lock();
    writeln!(out, "freed {} files, {} bytes; runs removed: {runs}", report.files_removed, report.bytes_freed)
        .map_err(stdout_error)?;
    out.flush().map_err(stdout_error)?;
    Ok(EXIT_OK)
}
