//! The `forklog` command-line tool as a library: [`run_from_args`] runs one command line with the
//! binary's contract (output, exit statuses). The `forklog` binary and the Python package's
//! `python -m forklog` both call it. The commands live in [`cli`].

pub mod cli;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

/// Parses `args` (the program name first, as in `std::env::args_os()`), runs the command, and
/// returns the exit status: 0 success, 1 corruption found by `verify`, 2 any other error (reported
/// on one stderr line). Standard output is flushed before it returns.
pub fn run_from_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = match cli::args::Cli::try_parse_from(args) {
        Ok(parsed) => match cli::run(parsed) {
            Ok(code) => code,
            Err(e) => e.print(),
        },
        Err(e) => cli::parse_failure(e),
    };
    // A caller that outlives this call (the Python package) must see everything printed.
    let _ = std::io::stdout().flush();
    code
}
