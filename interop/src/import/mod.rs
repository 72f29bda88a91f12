//! Importers: runs written by other trackers' clients become forklog runs, their forks and rewinds
//! forklog forks and rewinds.
//!
//! Every importer works in two phases. **Decode**: the source is read and checked completely into a
//! [`RunPlan`] per run (rows, config, summary, system samples, finish, where it forks from and where it
//! rewinds), so bad input is found before anything is written; a problem is an [`InputError`] naming the
//! file and byte offset (or table and row). **Apply** ([`apply_plans`]): the plans of one call are applied in
//! the order the runs started, each with [`Store::create_run`], [`Store::fork`] or [`Store::rewind`] and its
//! writer; a run that fails while being written is deleted again (and the store garbage-collected), so a
//! run is imported whole or not at all, while the other runs of the call are kept and reported.
//!
//! Common rules for every source (the [`Assembler`]): points at the same step as the row before them merge
//! into that row (later values win per key); a step lower than the one before it (in write order) is a
//! rewind at that step − 1, so nothing is dropped or reordered; every source timestamp becomes the row time.
//!
//! The entry points, one per source, are what the CLI (`forklog import --format ...`) and the Python package
//! (`forklog.import_wandb(...)` etc.) call: [`import_wandb`], [`import_tensorboard`], [`import_mlflow`],
//! [`import_trackio`], or [`import_sources`] with a [`SourceFormat`].

mod assemble;
#[cfg(feature = "sqlite")]
pub mod mlflow;
pub mod tensorboard;
pub mod tfrecord;
#[cfg(feature = "sqlite")]
pub mod trackio;
pub mod wandb;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use forklog::{ForkPoint, HistoryOptions, Metrics, RunWriter, Store, SyncPolicy};

pub use assemble::Assembler;

/// A tracker format forklog imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// W&B offline runs: `run-<id>.wandb` files, `offline-run-*` folders or a `wandb/` folder.
    Wandb,
    /// TensorBoard event files: a log directory, one run per folder holding `events.out.tfevents.*`.
    Tensorboard,
    /// MLflow: a file store (`mlruns/`) or a SQLite database (`mlflow.db`).
    Mlflow,
    /// trackio project databases (`<project>.db`) or the folder holding them.
    Trackio,
}

impl SourceFormat {
    /// The format's name on the command line: `wandb`, `tensorboard`, `mlflow` or `trackio`.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Wandb => "wandb",
            SourceFormat::Tensorboard => "tensorboard",
            SourceFormat::Mlflow => "mlflow",
            SourceFormat::Trackio => "trackio",
        }
    }
}

/// Where in a source a problem is.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A byte offset in the file.
    Offset(u64),
    /// A row of a SQLite table (its `rowid` or key).
    Row {
        /// The table.
        table: String,
        /// The row (rowid).
        row: i64,
    },
    /// A 1-based line of a text file.
    Line(u64),
    /// The file as a whole.
    File,
}

/// Bad input: what is wrong and exactly where.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The file (or folder) the problem is in.
    pub file: PathBuf,
    /// Where in it.
    pub at: Location,
    /// What is wrong.
    pub reason: String,
}

impl InputError {
    /// A problem at byte `offset` of `file`.
    pub fn at_offset(file: &Path, offset: u64, reason: impl Into<String>) -> InputError {
        InputError { file: file.to_path_buf(), at: Location::Offset(offset), reason: reason.into() }
    }

    /// A problem in row `row` of `table` in database `file`.
    pub fn at_row(file: &Path, table: &str, row: i64, reason: impl Into<String>) -> InputError {
        InputError { file: file.to_path_buf(), at: Location::Row { table: table.into(), row }, reason: reason.into() }
    }

    /// A problem with `file` as a whole.
    pub fn whole(file: &Path, reason: impl Into<String>) -> InputError {
        InputError { file: file.to_path_buf(), at: Location::File, reason: reason.into() }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.at {
            Location::Offset(o) => write!(f, "{file}: byte offset {o}: {}", self.reason),
            Location::Row { table, row } => write!(f, "{file}: table {table} row {row}: {}", self.reason),
            Location::Line(l) => write!(f, "{file}: line {l}: {}", self.reason),
            Location::File => write!(f, "{file}: {}", self.reason),
        }
    }
}

impl std::error::Error for InputError {}

/// Why a run (or a whole call) could not be imported.
#[derive(Debug)]
pub enum ImportError {
    /// The source is malformed (checksum, truncation, undecodable message, bad value).
    Input(InputError),
    /// The store refused (`RunExists`, a missing fork parent, I/O).
    Store {
        /// The forklog run id concerned.
        run: String,
        /// The source the run came from.
        source: PathBuf,
        /// The engine's error.
        error: forklog::Error,
    },
    /// The call itself is wrong (`--as` with several runs, an id that cannot be made valid, a missing parent).
    Usage(String),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Input(e) => write!(f, "{e}"),
            ImportError::Store { run, source, error } => {
                write!(f, "{}: importing run {run}: {error}", source.display())
            }
            ImportError::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<InputError> for ImportError {
    fn from(e: InputError) -> ImportError {
        ImportError::Input(e)
    }
}

/// Options of an import call.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Prepended to every imported run id (and to the parent ids forks name).
    pub prefix: String,
    /// The id of the single run the call imports (an error if the sources hold several runs).
    pub as_id: Option<String>,
}

/// Run metadata read from a source: display name, tags, notes, group and other tracker-specific fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMeta {
    /// The run's display name (W&B display name, MLflow run name, trackio run name).
    pub display_name: Option<String>,
    /// Tags (W&B tags; MLflow tag keys whose value is empty are listed here too).
    pub tags: Vec<String>,
    /// Free-text notes (W&B notes, MLflow `mlflow.note.content`).
    pub notes: Option<String>,
    /// Group (W&B group, trackio group).
    pub group: Option<String>,
    /// Every other key/value the source keeps about the run (MLflow tags, W&B entity/project/job type...).
    pub extra: BTreeMap<String, String>,
}

impl RunMeta {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == RunMeta::default()
    }
}

/// One event of a plan, in write order. Non-`Log` events sit at the step current when they are written.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanEvent {
    /// A history row at `step` with its source timestamp (seconds since the epoch).
    Log {
        /// The row's step.
        step: u64,
        /// The row's time.
        time: f64,
        /// The row's values.
        metrics: Metrics,
    },
    /// A config patch.
    Config(Metrics),
    /// A summary patch.
    Summary(Metrics),
    /// A system-metrics sample with its source time.
    System {
        /// The sample's time.
        time: f64,
        /// The sampled values.
        metrics: Metrics,
    },
    /// The run ended with this exit code.
    Finish(i32),
}

/// A stretch of a run between rewinds: the first part starts the run (or continues a fork or a rewind), each
/// later one starts with a rewind at `rewind_at`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// The step this part rewinds to (`None` for the first part).
    pub rewind_at: Option<u64>,
    /// Its events in write order.
    pub events: Vec<PlanEvent>,
}

/// How a plan's run comes into being.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A new root run.
    New,
    /// A fork of another run of the source (its source id) at a step.
    Fork {
        /// The parent's id in the source (prefix and sanitising are applied when the plan is applied).
        parent: String,
        /// The fork step (inclusive).
        step: u64,
    },
    /// A rewind of the run with the same source id, already imported (earlier in the call or before).
    Rewind {
        /// The step it rewinds to.
        step: u64,
    },
    /// More of a run already imported (a W&B `resume=` continuation): appended after its last step.
    Continue,
}

/// Everything one source run amounts to, decoded and checked, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The file or folder the run came from.
    pub source: PathBuf,
    /// The run's id in the source (sanitised and prefixed when applied).
    pub source_id: String,
    /// When the run started (seconds since the epoch): plans of one call apply in this order.
    pub start_time: f64,
    /// New run, fork or rewind.
    pub origin: Origin,
    /// The run's parts (at least one).
    pub parts: Vec<Part>,
    /// Metadata read from the source.
    pub meta: RunMeta,
    /// Notes for the user (e.g. bytes dropped from a truncated tail).
    pub warnings: Vec<String>,
}

impl RunPlan {
    /// Number of `Log` rows the plan writes (all parts).
    pub fn row_count(&self) -> usize {
        self.parts.iter().map(|p| p.events.iter().filter(|e| matches!(e, PlanEvent::Log { .. })).count()).sum()
    }
}

/// One imported run, as `forklog import` prints it: `{"source", "run", "version", "rows", "parent", "fork_step"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportedRun {
    /// The source file or folder.
    pub source: String,
    /// The forklog run id.
    pub run: String,
    /// Its current version after the import (rewinds add versions).
    pub version: u32,
    /// Rows of its visible history (inherited rows included), as `forklog runs --json` counts them.
    pub rows: u64,
    /// The fork parent (`ID@vK`), if any.
    pub parent: Option<String>,
    /// The fork step, if any.
    pub fork_step: Option<u64>,
}

/// The outcome of one import call: the runs imported and, for each run that failed, why.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Imported runs, in the order they were applied.
    pub imported: Vec<ImportedRun>,
    /// Runs or sources that failed (nothing of them stays in the store).
    pub failed: Vec<ImportError>,
    /// Notes for the user (dropped truncated tails, skipped non-scalar values).
    pub warnings: Vec<String>,
}

impl ImportReport {
    /// True when nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The decode results of a call: plans, and the sources that could not be decoded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Decoded runs.
    pub plans: Vec<RunPlan>,
    /// Sources (or runs of them) that could not be decoded.
    pub failed: Vec<ImportError>,
}

/// Imports W&B offline runs: `.wandb` files, `offline-run-*` folders or `wandb/` folders (searched recursively).
/// Python: `forklog.import_wandb(store, sources, prefix=..., as_id=...)`.
pub fn import_wandb(store: &Store, sources: &[PathBuf], opts: &ImportOptions) -> ImportReport {
    import_sources(store, SourceFormat::Wandb, sources, opts)
}

/// Imports TensorBoard log directories (each folder holding `events.out.tfevents.*` is a run, its id the
/// folder's path relative to the source with `/` → `.`). Python: `forklog.import_tensorboard(...)`.
pub fn import_tensorboard(store: &Store, sources: &[PathBuf], opts: &ImportOptions) -> ImportReport {
    import_sources(store, SourceFormat::Tensorboard, sources, opts)
}

/// Imports MLflow runs from a file store (`mlruns/`, an experiment or a run folder) or a SQLite database
/// (`mlflow.db`). Python: `forklog.import_mlflow(...)`.
pub fn import_mlflow(store: &Store, sources: &[PathBuf], opts: &ImportOptions) -> ImportReport {
    import_sources(store, SourceFormat::Mlflow, sources, opts)
}

/// Imports trackio projects (`<project>.db` files, or a folder holding them). Python: `forklog.import_trackio(...)`.
pub fn import_trackio(store: &Store, sources: &[PathBuf], opts: &ImportOptions) -> ImportReport {
    import_sources(store, SourceFormat::Trackio, sources, opts)
}

/// Decodes every source of `format` (nothing is written).
pub fn decode_sources(format: SourceFormat, sources: &[PathBuf]) -> Decoded {
    let mut out = Decoded::default();
    for src in sources {
        let res = match format {
            SourceFormat::Wandb => wandb::plans(src),
            SourceFormat::Tensorboard => tensorboard::plans(src),
            #[cfg(feature = "sqlite")]
            SourceFormat::Mlflow => mlflow::plans(src),
            #[cfg(feature = "sqlite")]
            SourceFormat::Trackio => trackio::plans(src),
            #[cfg(not(feature = "sqlite"))]
            SourceFormat::Mlflow | SourceFormat::Trackio => {
                Err(ImportError::Usage(format!("{} import needs the `sqlite` feature", format.name())))
            }
        };
        match res {
            Ok(d) => {
                out.plans.extend(d.plans);
                out.failed.extend(d.failed);
            }
            Err(e) => out.failed.push(e),
        }
    }
    out
}

/// Decodes `sources` and applies the runs to `store` (see the module docs).
pub fn import_sources(store: &Store, format: SourceFormat, sources: &[PathBuf], opts: &ImportOptions) -> ImportReport {
    let decoded = decode_sources(format, sources);
    let mut report = apply_plans(store, decoded.plans, opts);
    let mut failed = decoded.failed;
    failed.append(&mut report.failed);
    report.failed = failed;
    report
}

/// Turns a source id into a forklog id: characters outside `[A-Za-z0-9._-]` become `-`, at most 64
/// characters, never `.` or `..` or empty.
pub fn sanitize_id(id: &str) -> String {
    let mut s: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    if s.is_empty() || s == "." || s == ".." {
        s = format!("run{s}").replace('.', "-");
    }
    s.chars().take(64).collect()
}

/// Applies decoded plans to `store` in start-time order (see the module docs). Runs that fail are removed
/// again and reported in [`ImportReport::failed`]; the others are kept.
pub fn apply_plans(store: &Store, mut plans: Vec<RunPlan>, opts: &ImportOptions) -> ImportReport {
    let mut report = ImportReport::default();
    // Stable: ties keep the discovery order (file name order).
    plans.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    if let Some(as_id) = &opts.as_id {
        let mut ids: Vec<&str> = plans.iter().map(|p| p.source_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > 1 {
            report.failed.push(ImportError::Usage(format!(
                "--as {as_id} names a single run, but the sources hold {} runs ({})",
                ids.len(),
                ids.join(", ")
            )));
            return report;
        }
    }
    // Source id → forklog id of the runs of this call that were imported; failed ones are remembered so
    // their forks and rewinds fail with a clear reason.
    let mut done: HashMap<String, String> = HashMap::new();
    let mut failed_ids: HashMap<String, String> = HashMap::new();
    for plan in plans {
        report.warnings.extend(plan.warnings.iter().cloned());
        let id = match target_id(&plan.source_id, opts) {
            Ok(id) => id,
            Err(e) => {
                report.failed.push(e);
                continue;
            }
        };
        if let Some(why) =
            failed_ids.get(&plan.source_id).filter(|_| matches!(plan.origin, Origin::Rewind { .. } | Origin::Continue))
        {
            report.failed.push(ImportError::Usage(format!(
                "{}: not rewinding run {id}: its earlier import failed ({why})",
                plan.source.display()
            )));
            continue;
        }
        let parent = match &plan.origin {
            Origin::Fork { parent, .. } => match done.get(parent) {
                Some(p) => Some(p.clone()),
                None if failed_ids.contains_key(parent) => {
                    report.failed.push(ImportError::Usage(format!(
                        "{}: run {id} forks from {parent}, whose import failed",
                        plan.source.display()
                    )));
                    failed_ids.insert(plan.source_id.clone(), format!("its parent {parent} failed"));
                    continue;
                }
                // Imported by an earlier call: the version the fork was made from, by the source's times.
                None => Some(version_at(store, &format!("{}{}", opts.prefix, sanitize_id(parent)), plan.start_time)),
            },
            _ => None,
        };
        let source_id = plan.source_id.clone();
        match apply_one(store, plan, &id, parent.as_deref()) {
            Ok(run) => {
                done.insert(source_id, id);
                report.imported.push(run);
            }
            Err(e) => {
                failed_ids.insert(source_id, e.to_string());
                report.failed.push(e);
            }
        }
    }
    report
}

/// The version of run `id` (already in the store) that a fork started at `start` (source time, seconds since
/// the epoch) was made from: the latest version whose own rows began at or before `start` (a rewind's first
/// row is logged after the rewind was made), else `ID@v0`. `id` itself when it has one version or cannot be
/// read (the fork then reports the store's error).
fn version_at(store: &Store, id: &str, start: f64) -> String {
    let Ok(info) = store.info(id) else { return id.to_string() };
    if info.version == 0 {
        return id.to_string();
    }
    for k in (1..=info.version).rev() {
        let at = format!("{id}@v{k}");
        let mut first = None;
        let own = HistoryOptions::new().own_only(true);
        if let Ok(mut h) = store.history_with(&at, &own) {
            first = h.next().and_then(Result::ok).map(|r| r.time);
        }
        if first.is_some_and(|t| t <= start) {
            return at;
        }
    }
    format!("{id}@v0")
}

/// The forklog id of a source run.
fn target_id(source_id: &str, opts: &ImportOptions) -> Result<String, ImportError> {
    let id = match &opts.as_id {
        Some(id) => id.clone(),
        None => format!("{}{}", opts.prefix, sanitize_id(source_id)),
    };
    forklog::validate_run_id(&id)
        .map_err(|e| ImportError::Usage(format!("run id {id:?} (from {source_id:?}): {e}")))?;
    Ok(id)
}

/// Writes one plan; on failure removes what it made (a new run or fork is deleted and collected).
fn apply_one(store: &Store, plan: RunPlan, id: &str, parent: Option<&str>) -> Result<ImportedRun, ImportError> {
    let store_err =
        |error: forklog::Error| ImportError::Store { run: id.to_string(), source: plan.source.clone(), error };
    if matches!(plan.origin, Origin::Continue) {
        // Appending cannot be undone: check every step first, so the run is extended whole or not at all.
        let last = store.info(id).map_err(store_err)?.last_step;
        let first = plan.parts.first().and_then(|p| {
            p.events.iter().find_map(|e| if let PlanEvent::Log { step, .. } = e { Some(*step) } else { None })
        });
        if plan.parts.len() > 1 || matches!((last, first), (Some(l), Some(f)) if f <= l) {
            return Err(ImportError::Usage(format!(
                "{}: run {id} resumes at step {} but already holds steps up to {}",
                plan.source.display(),
                first.unwrap_or(0),
                last.unwrap_or(0)
            )));
        }
    }
    let writer = match &plan.origin {
        Origin::New => store.create_run(id),
        Origin::Continue => store.resume(id),
        Origin::Fork { step, .. } => format!("{}?_step={step}", parent.unwrap_or_default())
            .parse::<ForkPoint>()
            .and_then(|point| store.fork(id, &point)),
        Origin::Rewind { step } => store.rewind(id, *step),
    }
    .map_err(store_err)?;
    let created = matches!(plan.origin, Origin::New | Origin::Fork { .. });
    let patch = meta_patch(&plan.meta);
    match write_parts(store, writer, id, patch, plan.parts) {
        Ok(()) => {}
        Err(e) => {
            if created {
                // Nothing partial stays visible: the run is deleted and its files collected.
                let _ = store.delete_run(id);
                let _ = store.gc();
            }
            return Err(store_err(e));
        }
    }
    let info = store.info(id).map_err(store_err)?;
    Ok(ImportedRun {
        source: plan.source.display().to_string(),
        run: id.to_string(),
        version: info.version,
        rows: info.rows,
        parent: info.parent.as_ref().map(ToString::to_string),
        fork_step: info.fork_step,
    })
}

/// The engine's metadata patch for a source's [`RunMeta`]: display name, notes, group and tags as they are;
/// every other field (`extra`: MLflow tags, W&B entity/project/..., trackio project/run id) as a `key=value`
/// tag, so nothing is dropped. `None` when there is nothing to set.
pub fn meta_patch(meta: &RunMeta) -> Option<forklog::MetaPatch> {
    if meta.is_empty() {
        return None;
    }
    let mut p = forklog::MetaPatch::new();
    if let Some(n) = &meta.display_name {
        p = p.name(n.clone());
    }
    if let Some(n) = &meta.notes {
        p = p.notes(n.clone());
    }
    if let Some(g) = &meta.group {
        p = p.group(g.clone());
    }
    for t in &meta.tags {
        p = p.tag(t.clone());
    }
    for (k, v) in &meta.extra {
        p = p.tag(format!("{k}={v}"));
    }
    Some(p)
}

/// Writes the parts of a plan through `writer` (rewinding between parts) and syncs.
fn write_parts(
    store: &Store,
    mut writer: RunWriter,
    id: &str,
    meta: Option<forklog::MetaPatch>,
    parts: Vec<Part>,
) -> forklog::Result<()> {
    if let Some(m) = meta {
        writer.set_meta(m)?;
    }
    let mut writer = Some(writer);
    for (i, part) in parts.into_iter().enumerate() {
        let mut w = match (i, writer.take(), part.rewind_at) {
            (0, Some(w), _) => w,
            (_, prev, Some(step)) => {
                if let Some(mut p) = prev {
                    p.sync()?;
                    drop(p);
                }
                store.rewind(id, step)?
            }
            (_, Some(w), None) => w,
            (_, None, None) => store.resume(id)?,
        };
        w.set_sync_policy(SyncPolicy::Never);
        let mut finish = None;
        for ev in part.events {
            match ev {
                PlanEvent::Log { step, time, metrics } => {
                    w.log_with_time(Some(step), time, metrics)?;
                }
                PlanEvent::Config(m) => w.set_config(m)?,
                PlanEvent::Summary(m) => w.set_summary(m)?,
                PlanEvent::System { time, metrics } => w.log_system_with_time(time, metrics)?,
                PlanEvent::Finish(code) => {
                    finish = Some(code);
                    break;
                }
            }
        }
        match finish {
            Some(code) => {
                w.sync()?;
                w.finish(code)?;
            }
            None => {
                w.sync()?;
                writer = Some(w);
            }
        }
    }
    if let Some(mut w) = writer {
        w.sync()?;
    }
    Ok(())
}

/// Walks `dir` recursively (sorted names, no symlinked folders) and returns the files `keep` accepts.
pub(crate) fn walk_files(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>, InputError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| InputError::whole(&d, format!("cannot list: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries.into_iter().rev() {
            let meta = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && keep(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a whole file, as an [`InputError`] on failure.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|e| InputError::whole(path, format!("cannot read: {e}")))
}

/// Parses a JSON text into a forklog value (the CLI's JSON rules), naming `what` on failure.
pub(crate) fn json_value(text: &str) -> Result<forklog::Value, String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(crate::json::from_json)
        .map_err(|e| format!("bad JSON {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitised() {
        assert_eq!(sanitize_id("a/b c"), "a-b-c");
        assert_eq!(sanitize_id(""), "run");
        assert_eq!(sanitize_id(".."), "run--");
        assert_eq!(sanitize_id(&"x".repeat(100)).len(), 64);
        assert_eq!(sanitize_id("ok.id_1-2"), "ok.id_1-2");
    }
}
