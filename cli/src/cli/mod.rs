//! The `forklog` command-line tool: argument parsing, dispatch, and what every command shares
//! (the error type and exit statuses, opening the store, stdout handling, progress bars).
//!
//! Exit statuses: 0 on success, 1 when `verify` finds corruption, 2 on any other error, reported
//! as exactly one line on stderr starting with `error: `.

pub mod args;
mod demo;
mod history;
mod ingest;
mod inspect;
mod interop;

mod log;
mod manage;
pub mod plot;
mod remote;
mod runs;
mod set;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use forklog::Store;
use indicatif::{ProgressBar, ProgressStyle};

use args::{Cli, Command};

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status when `verify` finds corruption.
pub const EXIT_CORRUPT: u8 = 1;
/// Exit status for every other error.
pub const EXIT_ERROR: u8 = 2;

/// Why a command stopped early: the exit status and, unless the failure is silent, the message.
#[derive(Debug)]
pub struct CliError {
    /// The process exit status.
    pub code: u8,
    /// The message printed after `error: `; `None` exits silently (e.g. stdout was closed).
    pub message: Option<String>,
}

impl CliError {
    /// An error that exits with status 2 and prints `message`.
    pub fn new(message: impl fmt::Display) -> CliError {
        CliError { code: EXIT_ERROR, message: Some(message.to_string()) }
    }

    /// Prefixes the message with where it happened (`line 3: ...`).
    pub fn context(self, prefix: impl fmt::Display) -> CliError {
        CliError { code: self.code, message: self.message.map(|m| format!("{prefix}: {m}")) }
    }

    /// Appends a second failure's message: `first; second` (keeping the first one's status).
    pub fn also(self, other: CliError) -> CliError {
        let message = match (self.message, other.message) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        CliError { code: self.code, message }
    }

    /// Prints the message (one line on stderr) and returns the exit status.
    pub fn report(self) -> ExitCode {
        ExitCode::from(self.print())
    }

    /// Prints the message (one line on stderr) and returns the exit status as a number.
    pub fn print(self) -> u8 {
        if let Some(message) = self.message {
            let one_line = message.replace(['\r', '\n'], " ");
            // If stderr itself is gone there is nobody left to tell.
            let _ = writeln!(io::stderr().lock(), "error: {one_line}");
        }
        self.code
    }
}

impl From<forklog::Error> for CliError {
    fn from(e: forklog::Error) -> CliError {
        CliError::new(remote::name_object(e))
    }
}

/// Maps a failed write to stdout: a closed pipe (`forklog history r | head`) ends the command
/// quietly with status 0; any other failure is an error.
pub fn stdout_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError { code: EXIT_OK, message: None }
    } else {
        CliError::new(format!("writing to stdout: {e}"))
    }
}

/// The message for a directory that holds no store.
fn no_store(dir: &Path) -> CliError {
    CliError::new(format!(
        "no store at {} (pass --store DIR or set FORKLOG_STORE; `forklog log` creates one)",
        dir.display()
    ))
}

/// Maps the library's open errors to the tool's messages.
fn open_error(dir: &Path, e: forklog::Error) -> CliError {
    match e {
        forklog::Error::NoStore { .. } => no_store(dir),
        e => CliError::from(e),
    }
}

/// Opens the store for a command that writes runs (`log`, `import`): creates it in a missing or
/// empty directory; a directory holding other files is refused (`DIR is not a forklog store`).
pub fn open_store(dir: &Path) -> Result<Store, CliError> {
    open_with(dir, forklog::Options::default()).map_err(|e| open_error(dir, e))
}

/// Opens the store in `dir` with `opts`, through the remote tier when `--store` named a remote store.
pub fn open_with(dir: &Path, opts: forklog::Options) -> Result<Store, forklog::Error> {
    remote::open_with(dir, opts)
}

/// Opens an existing store read-only, for commands that only read: nothing in `dir` is created or
/// changed, and a directory that is not a store is an error.
pub fn open_existing(dir: &Path) -> Result<Store, CliError> {
    open_with(dir, forklog::Options::default().read_only(true)).map_err(|e| open_error(dir, e))
}

/// Opens an existing store to change it (`fork`, `rewind`, `set`, `delete`, `gc`): never creates one.
pub fn open_existing_writable(dir: &Path) -> Result<Store, CliError> {
    open_with(dir, forklog::Options::default().create(false)).map_err(|e| open_error(dir, e))
}

/// A progress bar on stderr counting `len` units (bytes when `bytes`, else rows), or a hidden one
/// when stderr is not a terminal, so scripts and logs never see progress output.
pub fn progress_bar(len: u64, bytes: bool) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
    } else {
        "{bar:40} {pos}/{len} rows ({per_sec}, eta {eta})"
    };
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style)
}

/// Turns a clap parse failure into the tool's conventions: `--help` and `--version` print and exit
/// 0; every other failure is one `error: ` line on stderr (with the usage line) and exit status 2.
pub fn parse_failure(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Printing help to a closed stdout is not worth a panic or an error.
            let _ = e.print();
            EXIT_OK
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            CliError::new("no command given; run `forklog --help` for the list").print()
        }
        _ => {
            let text = e.to_string();
            let mut paragraphs = text.split("\n\n");
            let first = paragraphs.next().unwrap_or_default();
            let mut message: String =
                first.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
            if let Some(stripped) = message.strip_prefix("error: ") {
                message = stripped.to_string();
            }
            if let Some(usage) = text.lines().find_map(|l| l.strip_prefix("Usage: ")) {
                message = format!("{message}; usage: {}", usage.trim());
            }
            CliError::new(message).print()
        }
    }
}

/// Runs the parsed command and returns its exit status.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    let _remote = remote::connect(&cli.store, cli.cache.as_deref())?;
    let store = _remote.dir();
    let store = store.as_path();
    let nf = cli.json_nonfinite.mode();
    let code = run_command(cli.command, store, nf)?;
    _remote.finish()?;
    Ok(code)
}

fn run_command(command: Command, store: &Path, nf: forklog_interop::json::NonFinite) -> Result<u8, CliError> {
    match command {
        Command::Log(a) => log::log(store, a),
        Command::Fork { new_run, spec } => manage::fork(store, &new_run, &spec),
        Command::Rewind { spec } => manage::rewind(store, &spec),
        Command::History(a) => history::history(store, a, nf),
        Command::Runs { json, tree, all, tags, group, summary, keys } => {
            let summary = summary.then(|| keys.unwrap_or_default());
            runs::runs(store, runs::Listing { json, tree, all, tags, group, summary }, nf)
        }
        Command::Set(a) => set::set(store, a),
        Command::Summary { run } => inspect::summary(store, &run, nf),
        Command::Config { run } => inspect::config(store, &run, nf),
        Command::Lineage { run } => inspect::lineage(store, &run),
        Command::Verify { repair } => inspect::verify(store, repair),
        Command::Delete { run } => manage::delete(store, &run),
        Command::Gc => manage::gc(store),
        Command::Import(a) => interop::import(store, a),
        Command::Export(a) => interop::export(store, a, nf),
        Command::Demo { dir, rows } => demo::demo(&dir, rows),
        Command::Plot(a) => plot::plot(store, a),
    }
}
