//! Read-only inspection: `forklog summary`, `config`, `lineage` (JSON on stdout) and `verify`.

use std::io::{self, Write};
use std::path::Path;

use forklog::ProblemKind;
use serde::Serialize;

use super::{open_error, stdout_error, CliError, EXIT_CORRUPT, EXIT_OK};
use forklog_interop::json::{to_line, write_map, NonFinite};

/// Prints one line on stdout.
fn print_line(line: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").map_err(stdout_error)?;
    out.flush().map_err(stdout_error)
}

/// Prints a string-keyed map as one JSON object.
fn print_map(map: &forklog::Metrics, nf: NonFinite) -> Result<u8, CliError> {
    let mut out = Vec::new();
    write_map(&mut out, map.iter().map(|(k, v)| (&**k, v)), nf);
    print_line(&String::from_utf8_lossy(&out))?;
    Ok(EXIT_OK)
}

/// `forklog summary RUN`: the last value of each metric, overridden by summary patches.
pub fn summary(dir: &Path, run: &str, nf: NonFinite) -> Result<u8, CliError> {
    print_map(&super::open_existing(dir)?.summary(run)?, nf)
}

/// `forklog config RUN`: the run's config.
pub fn config(dir: &Path, run: &str, nf: NonFinite) -> Result<u8, CliError> {
    print_map(&super::open_existing(dir)?.config(run)?, nf)
}

/// One `lineage` entry as JSON.
#[derive(Serialize)]
struct LineageJson {
    /// The version, as `ID@vK`.
    run: String,
    /// Where it forked from the previous entry; null for the root.
    fork_step: Option<u64>,
}

/// `forklog lineage RUN`: a JSON array from the root to RUN.
pub fn lineage(dir: &Path, run: &str) -> Result<u8, CliError> {
    let entries: Vec<LineageJson> = super::open_existing(dir)?
        .lineage(run)?
        .into_iter()
        .map(|e| LineageJson { run: e.run.to_string(), fork_step: e.fork_step })
        .collect();
    print_line(&to_line(&entries))?;
    Ok(EXIT_OK)
}

/// "1 torn tail", "2 problems": a count with its noun, plural when needed.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `forklog verify [--repair]`: checks every file; exit 1 when corruption is found (torn tails are
/// expected after a crash and leave the status at 0). Read-only unless `repair`, which first rebuilds
/// derived files (step indexes) from the segments.
pub fn verify(dir: &Path, repair: bool) -> Result<u8, CliError> {
    let corrupt_exit = |e: forklog::Error| {
        if e.is_corruption() {
            CliError { code: EXIT_CORRUPT, message: Some(e.to_string()) }
        } else {
            open_error(dir, e)
        }
    };
    let store = if repair {
        super::open_with(dir, forklog::Options::default().create(false)).map_err(corrupt_exit)?
    } else {
        super::open_with(dir, forklog::Options::default().read_only(true)).map_err(corrupt_exit)?
    };
    let mut out = io::stdout().lock();
    if repair {
        let fixed = store.repair().map_err(corrupt_exit)?;
        for f in &fixed.rebuilt {
            writeln!(out, "{}: rebuilt from its segment", f.display()).map_err(stdout_error)?;
        }
    }
    let report = store.verify().map_err(corrupt_exit)?;
    let mut corrupt = 0;
    let mut torn = 0;
    for p in &report.problems {
        // A kind this CLI does not know yet counts as corruption (the conservative reading).
        match p.kind {
            ProblemKind::TornTail => torn += 1,
            _ => corrupt += 1,
        }
        let kind = p.kind.as_str();
        let message = p.message.replace(['\r', '\n'], " ");
        writeln!(out, "{}:{}: {kind}: {message}", p.file.display(), p.offset).map_err(stdout_error)?;
    }
    let verdict = if report.is_clean() {
        if torn == 0 {
            "clean".to_string()
        } else {
            format!("clean ({})", count(torn, "torn tail"))
        }
    } else {
        format!("{} ({} corrupt, {})", count(report.problems.len(), "problem"), corrupt, count(torn, "torn tail"))
    };
    writeln!(out, "verified {} files, {} bytes: {verdict}", report.files, report.bytes).map_err(stdout_error)?;
    out.flush().map_err(stdout_error)?;
    Ok(if report.is_clean() { EXIT_OK } else { EXIT_CORRUPT })
}
