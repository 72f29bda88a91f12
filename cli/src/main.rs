//! The `forklog` command-line tool: log, fork, rewind, replay, inspect and verify a store from the
//! shell. See `forklog --help` and the README for the contract; the commands live in the
//! `forklog_cli` library (shared with the Python package's `python -m forklog`).

use std::process::ExitCode;

/// Runs the command line and maps the outcome to the exit status
/// (0 success, 1 corruption found by `verify`, 2 any other error, reported on one stderr line).
fn main() -> ExitCode {
    ExitCode::from(forklog_cli::run_from_args(std::env::args_os()))
}
