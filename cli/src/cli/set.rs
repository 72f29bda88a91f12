//! `forklog set RUN`: config and summary patches and metadata (name, tags, notes, group) from the shell.

use std::path::Path;

use forklog::{Event, HistoryOptions, MetaPatch, RunState, Store};

use super::args::SetArgs;
use super::ingest::parse_patch;
use super::{open_existing_writable, CliError, EXIT_OK};

/// The exit code of the run's final `Finish` event, when the run is finished.
fn finish_code(store: &Store, run: &str) -> Result<Option<i32>, CliError> {
    let info = store.info(run)?;
    if info.state != RunState::Finished {
        return Ok(None);
    }
    // The Finish is the last event and sits at or after the last row's step: read from there only.
    let opts = HistoryOptions::new().from_step(info.last_step.unwrap_or(0));
    let mut code = None;
    for rec in store.events_with(run, &opts)? {
        code = match rec?.event {
            Event::Finish { exit_code, .. } => Some(exit_code),
            _ => None,
        };
    }
    Ok(code)
}

/// `forklog set`: writes the patches at the run's current step; a finished run is finished again with
/// its exit code, so it stays `finished`.
pub fn set(dir: &Path, a: SetArgs) -> Result<u8, CliError> {
    let config = a.config.as_deref().map(|t| parse_patch("--config", t.as_bytes())).transpose()?;
    let summary = a.summary.as_deref().map(|t| parse_patch("--summary", t.as_bytes())).transpose()?;
    let mut meta = MetaPatch::new();
    if let Some(n) = a.name {
        meta = meta.name(n);
    }
    if let Some(n) = a.notes {
        meta = meta.notes(n);
    }
    if let Some(g) = a.group {
        meta = meta.group(g);
    }
    for t in a.tags {
        meta = meta.tag(t);
    }
    for t in a.untags {
        meta = meta.untag(t);
    }
    if config.is_none() && summary.is_none() && meta.is_empty() {
        return Err(CliError::new(
            "nothing to set: give --config, --summary, --name, --tag, --untag, --notes or --group",
        ));
    }
    if meta.added_tags().iter().chain(meta.removed_tags()).any(String::is_empty) {
        return Err(CliError::new("a tag must not be empty"));
    }
    let store = open_existing_writable(dir)?;
    let code = finish_code(&store, &a.run)?;
    let mut w = store.resume(&a.run)?;
    if let Some(c) = config {
        w.set_config(c)?;
    }
    if let Some(s) = summary {
        w.set_summary(s)?;
    }
    if !meta.is_empty() {
        w.set_meta(meta)?;
    }
    match code {
        Some(code) => w.finish(code)?,
        None => w.sync()?,
    }
    Ok(EXIT_OK)
}
