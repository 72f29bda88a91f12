//! The `forklog` command-line tool: log, fork, rewind, replay, inspect and verify a store from the
//! shell. See `forklog --help` and the README for the contract; the commands live in [`cli`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command, and maps the outcome to the exit status
/// (0 success, 1 corruption found by `verify`, 2 any other error, reported on one stderr line).
fn main() -> ExitCode {
    let parsed = match cli::args::Cli::try_parse() {
        Ok(parsed) => parsed,
        Err(e) => return cli::parse_failure(e),
    };
    match cli::run(parsed) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(),
    }
}
