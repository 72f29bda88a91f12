//! `forklog import --format wandb|tensorboard|mlflow|trackio` and `forklog export` to several runs and
//! formats: thin wrappers over `forklog_interop::{import, export}` (which the Python package calls too).
//!
//! Import prints one JSON line per imported run (`{"source", "run", "version", "rows", "parent",
//! "fork_step"}`), notes (a truncated W&B tail, skipped non-scalar values) as `warning: ` lines on stderr, and
//! exits 2 with one `error: ` line naming every failed run (file and byte offset, or table and row) — the
//! runs that were imported stay.

use std::io::Write;
use std::path::{Path, PathBuf};

use forklog_interop::export::{self, ExportFormat as Fmt, ExportOptions};
use forklog_interop::import::{self, ImportOptions, SourceFormat};
use forklog_interop::json::NonFinite;

use super::args::{ExportArgs, ExportFormat, ImportArgs, ImportFormat};
use super::{open_existing, open_store, stdout_error, CliError, EXIT_OK};

/// `forklog import`.
pub fn import(dir: &Path, a: ImportArgs) -> Result<u8, CliError> {
    let format = match a.format {
        ImportFormat::Jsonl => {
            if a.prefix.is_some() || a.as_id.is_some() {
                return Err(CliError::new("--prefix and --as apply to the tracker formats, not jsonl"));
            }
            let [run, file] = a.args.as_slice() else {
                return Err(CliError::new("import --format jsonl takes RUN FILE"));
            };
            return super::log::import(dir, &run.to_string_lossy(), file);
        }
        ImportFormat::Wandb => SourceFormat::Wandb,
        ImportFormat::Tensorboard => SourceFormat::Tensorboard,
        ImportFormat::Mlflow => SourceFormat::Mlflow,
        ImportFormat::Trackio => SourceFormat::Trackio,
    };
    let store = open_store(dir)?;
    let opts = ImportOptions { prefix: a.prefix.unwrap_or_default(), as_id: a.as_id };
    let report = import::import_sources(&store, format, &a.args, &opts);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    for run in &report.imported {
        let line = forklog_interop::json::to_line(run);
        writeln!(out, "{line}").map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    if report.failed.is_empty() {
        return Ok(EXIT_OK);
    }
    let msgs: Vec<String> = report.failed.iter().map(ToString::to_string).collect();
    let kept = if report.imported.is_empty() {
        String::new()
    } else {
        format!(" ({} other run(s) imported)", report.imported.len())
    };
    Err(CliError::new(format!("{}{kept}", msgs.join("; "))))
}

/// `forklog export`.
pub fn export(dir: &Path, a: ExportArgs, nf: NonFinite) -> Result<u8, CliError> {
    let Some((out, runs)) = a.args.split_last() else {
        return Err(CliError::new("export takes RUN... OUT"));
    };
    let out = PathBuf::from(out);
    if a.format == ExportFormat::Jsonl && a.tree.is_none() && !a.flat && runs.len() == 1 {
        // The original `export RUN FILE`: the run's history as `forklog history` prints it.
        return super::history::export(dir, &runs[0], &out, nf);
    }
    let store = open_existing(dir)?;
    let mut all: Vec<String> = runs.to_vec();
    if let Some(root) = &a.tree {
        for r in export::tree(&store, root).map_err(|e| CliError::new(e.to_string()))? {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    if all.is_empty() {
        return Err(CliError::new("export: name at least one RUN (or --tree RUN) before OUT"));
    }
    let format = match a.format {
        ExportFormat::Jsonl => Fmt::Jsonl,
        ExportFormat::Csv => Fmt::Csv,
        ExportFormat::Parquet => Fmt::Parquet,
        ExportFormat::Arrow => Fmt::Arrow,
        ExportFormat::Tensorboard => Fmt::Tensorboard,
    };
    export::export_runs(&store, &all, format, &out, &ExportOptions { flat: a.flat, nonfinite: nf })
        .map_err(|e| CliError::new(format!("export to {}: {e}", out.display())))?;
    Ok(EXIT_OK)
}
