//! MLflow runs: a file store (`mlruns/`) or a SQLite backend (`mlflow.db`), as mlflow-skinny 3.17 writes them.
//!
//! - **File store**: `<experiment>/<run>/meta.yaml` (run_id, run_name, status, start_time, ...),
//!   `metrics/<key>` with lines `timestamp_ms value step` (keys with `/` are subfolders), `params/<key>` and
//!   `tags/<key>` holding raw strings. A source may be the `mlruns/` folder, an experiment or a run folder
//!   (`.trash` is skipped).
//! - **SQLite**: tables `runs`, `metrics` (key, value, timestamp, run_uuid, step, is_nan), `params`, `tags`.
//!   A source is the database file (or `sqlite:///path`).
//!
//! Mapping: the run id is MLflow's run id (`run_uuid`). Each key's points are ordered by timestamp (ties in
//! write order: line order, `rowid`) and merged into rows by step; a key whose steps go back in that order
//! (a resumed run logging the same steps again: MLflow keeps both values) is a **rewind** at that step − 1,
//! so no point is lost. The row time is the latest timestamp of its points. `system/*` metrics → `System`
//! samples (one per timestamp; the sample index MLflow stores as their step is not kept). Params → config,
//! as the strings MLflow stores. Run name → display name; every tag → [`RunMeta::extra`] verbatim (keys
//! and values as MLflow has them, `mlflow.*` included), `mlflow.note.content` also → notes; the experiment
//! id and name, lifecycle stage, user and artifact URI → `extra` under `mlflow.run.*`. Status → `Finish`:
//! FINISHED 0, FAILED 1, KILLED 130; RUNNING and SCHEDULED runs get no `Finish`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forklog::{Metrics, Value};
use rusqlite::{Connection, OpenFlags};

use super::assemble::{Assembler, Restart};
use super::{walk_files, Decoded, ImportError, InputError, Location, Origin, PlanEvent, RunMeta, RunPlan};

/// One metric point in write order.
struct Point {
    key: String,
    ts: i64,
    value: f64,
    step: i64,
    /// Where it came from, for errors: (file, location).
    at: (PathBuf, Location),
}

/// What one MLflow run holds, whichever backend it came from.
#[derive(Default)]
struct RawRun {
    run_id: String,
    name: String,
    status: String,
    start_ms: i64,
    params: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    extra: BTreeMap<String, String>,
    points: Vec<Point>,
}

/// The exit code a run status maps to (`None`: still running).
fn exit_code(status: &str) -> Option<i32> {
    match status {
        "FINISHED" | "3" => Some(0),
        "FAILED" | "4" => Some(1),
        "KILLED" | "5" => Some(130),
        _ => None,
    }
}

/// Decodes an MLflow source: a SQLite database or a file store folder.
pub fn plans(src: &Path) -> Result<Decoded, ImportError> {
    let s = src.to_string_lossy();
    let path = s.strip_prefix("sqlite:///").map_or_else(|| src.to_path_buf(), |p| PathBuf::from(format!("/{p}")));
    let meta = std::fs::metadata(&path).map_err(|e| InputError::whole(&path, format!("cannot read: {e}")))?;
    let mut out = Decoded::default();
    let raws = if meta.is_file() {
        sqlite_runs(&path)?
    } else {
        let mut raws = Vec::new();
        for dir in file_store_runs(&path)? {
            match file_store_run(&dir) {
                Ok(r) => raws.push(r),
                Err(e) => out.failed.push(e.into()),
            }
        }
        raws
    };
    for (raw, source) in raws {
        match plan_run(raw, &source) {
            Ok(p) => out.plans.push(p),
            Err(e) => out.failed.push(e.into()),
        }
    }
    Ok(out)
}

/// Builds a plan from a run's raw data.
fn plan_run(mut raw: RawRun, source: &Path) -> Result<RunPlan, InputError> {
    // Time order, ties in write order (the sort is stable).
    raw.points.sort_by_key(|p| p.ts);
    let mut asm = Assembler::new(Restart::PerKey);
    if !raw.params.is_empty() {
        asm.event(PlanEvent::Config(
            raw.params.iter().map(|(k, v)| (k.as_str().into(), Value::Str(v.clone()))).collect(),
        ));
    }
    let mut system: BTreeMap<i64, Metrics> = BTreeMap::new();
    for p in raw.points {
        let time = p.ts as f64 / 1000.0;
        if p.key.starts_with("system/") {
            system.entry(p.ts).or_default().insert(p.key.as_str().into(), Value::Float(p.value));
            continue;
        }
        let bad = |why: String| InputError { file: p.at.0.clone(), at: p.at.1.clone(), reason: why };
        let step = u64::try_from(p.step).map_err(|_| bad(format!("negative step {}", p.step)))?;
        asm.point(step, time, &p.key, Value::Float(p.value)).map_err(bad)?;
    }
    for (ts, m) in system {
        let time = ts as f64 / 1000.0;
        asm.timed(time, PlanEvent::System { time, metrics: m });
    }
    let mut parts = asm.finish();
    if let (Some(code), Some(last)) = (exit_code(&raw.status), parts.last_mut()) {
        last.events.push(PlanEvent::Finish(code));
    }
    let mut meta = RunMeta {
        display_name: Some(raw.name.clone()).filter(|n| !n.is_empty()),
        notes: raw.tags.get("mlflow.note.content").cloned(),
        ..RunMeta::default()
    };
    meta.extra = raw.tags.clone();
    for (k, v) in raw.extra {
        meta.extra.insert(format!("mlflow.run.{k}"), v);
    }
    Ok(RunPlan {
        source: source.to_path_buf(),
        source_id: raw.run_id,
        start_time: raw.start_ms as f64 / 1000.0,
        origin: Origin::New,
        parts,
        meta,
        warnings: Vec::new(),
    })
}

// ------------------------------------------------------------------------------------------ file store

/// A tiny reader for MLflow's flat `meta.yaml` files: `key: value` lines, values optionally quoted.
fn read_meta_yaml(path: &Path) -> Result<BTreeMap<String, String>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::whole(path, format!("cannot read: {e}")))?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('-') || line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('\'') && v.ends_with('\'')) || (v.starts_with('"') && v.ends_with('"')))
        {
            v[1..v.len() - 1].replace("''", "'")
        } else {
            v.to_string()
        };
        out.insert(k.trim().to_string(), v);
    }
    Ok(out)
}

/// The run folders of a file store source (folders whose `meta.yaml` has a `run_id`).
fn file_store_runs(src: &Path) -> Result<Vec<PathBuf>, InputError> {
    let metas = walk_files(src, &|p| {
        p.file_name().is_some_and(|n| n == "meta.yaml") && !p.components().any(|c| c.as_os_str() == ".trash")
    })?;
    let mut runs = Vec::new();
    for m in metas {
        let y = read_meta_yaml(&m)?;
        if y.contains_key("run_id") || y.contains_key("run_uuid") {
            if let Some(dir) = m.parent() {
                runs.push(dir.to_path_buf());
            }
        }
    }
    if runs.is_empty() {
        return Err(InputError::whole(src, "no MLflow runs found (no meta.yaml with a run_id)"));
    }
    Ok(runs)
}

/// Reads every file below `dir` as `relative key → path` (keys with `/` are subfolders).
fn key_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, InputError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let files = walk_files(dir, &|_| true)?;
    Ok(files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(dir).ok()?;
            let key =
                rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
            Some((key, f))
        })
        .collect())
}

/// Reads one file-store run folder.
fn file_store_run(dir: &Path) -> Result<(RawRun, PathBuf), InputError> {
    let meta_path = dir.join("meta.yaml");
    let y = read_meta_yaml(&meta_path)?;
    let mut raw = RawRun {
        run_id: y.get("run_id").or_else(|| y.get("run_uuid")).cloned().unwrap_or_default(),
        name: y.get("run_name").cloned().unwrap_or_default(),
        status: y.get("status").cloned().unwrap_or_default(),
        ..RawRun::default()
    };
    raw.start_ms = match y.get("start_time").map(String::as_str) {
        None | Some("null") | Some("") => 0,
        Some(t) => {
            t.parse().map_err(|_| InputError::whole(&meta_path, format!("start_time {t:?} is not an integer")))?
        }
    };
    for k in ["experiment_id", "lifecycle_stage", "user_id", "artifact_uri", "end_time", "source_type"] {
        if let Some(v) = y.get(k).filter(|v| !v.is_empty() && *v != "null") {
            raw.extra.insert(k.to_string(), v.clone());
        }
    }
    // The experiment's name is in its folder's meta.yaml (the SQLite backend joins the `experiments` table).
    if let Some(exp) = dir.parent().map(|p| p.join("meta.yaml")).filter(|p| p.is_file()) {
        if let Some(n) = read_meta_yaml(&exp)?.get("name").filter(|v| !v.is_empty() && *v != "null") {
            raw.extra.insert("experiment_name".to_string(), n.clone());
        }
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| InputError::whole(p, format!("cannot read: {e}")));
    for (k, p) in key_files(&dir.join("params"))? {
        raw.params.insert(k, read(&p)?);
    }
    for (k, p) in key_files(&dir.join("tags"))? {
        raw.tags.insert(k, read(&p)?);
    }
    if raw.name.is_empty() {
        raw.name = raw.tags.get("mlflow.runName").cloned().unwrap_or_default();
    }
    for (key, p) in key_files(&dir.join("metrics"))? {
        let text = read(&p)?;
        for (i, line) in text.lines().enumerate() {
            let line_no = i as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: String| InputError { file: p.clone(), at: Location::Line(line_no), reason: why };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 2 && f.len() != 3 {
                return Err(bad(format!("expected `timestamp value step`, got {line:?}")));
            }
            let ts: i64 = f[0].parse().map_err(|_| bad(format!("timestamp {:?} is not an integer", f[0])))?;
            let value: f64 = f[1].parse().map_err(|_| bad(format!("value {:?} is not a number", f[1])))?;
            let step: i64 = match f.get(2) {
                Some(s) => s.parse().map_err(|_| bad(format!("step {s:?} is not an integer")))?,
                None => 0,
            };
            raw.points.push(Point { key: key.clone(), ts, value, step, at: (p.clone(), Location::Line(line_no)) });
        }
    }
    if raw.run_id.is_empty() {
        return Err(InputError::whole(&meta_path, "meta.yaml has no run_id"));
    }
    Ok((raw, dir.to_path_buf()))
}

// ------------------------------------------------------------------------------------------------ SQLite

/// Reads every run of an MLflow SQLite database (read-only).
fn sqlite_runs(db: &Path) -> Result<Vec<(RawRun, PathBuf)>, InputError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| InputError::whole(db, format!("cannot open as SQLite: {e}")))?;
    let q = |table: &str, e: rusqlite::Error| InputError::whole(db, format!("reading table {table}: {e}"));
    let mut runs: Vec<RawRun> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    {
        let mut st = conn
            .prepare(
                "SELECT r.rowid, r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.user_id, \
                 r.artifact_uri, r.experiment_id, e.name FROM runs r LEFT JOIN experiments e \
                 ON e.experiment_id = r.experiment_id ORDER BY r.start_time, r.rowid",
            )
            .map_err(|e| q("runs", e))?;
        let mut rows = st.query([]).map_err(|e| q("runs", e))?;
        while let Some(r) = rows.next().map_err(|e| q("runs", e))? {
            let rowid: i64 = r.get(0).map_err(|e| q("runs", e))?;
            let bad = |e: rusqlite::Error| InputError::at_row(db, "runs", rowid, e.to_string());
            let text = |i: usize| -> Result<Option<String>, InputError> {
                let v: rusqlite::types::Value = r.get(i).map_err(bad)?;
                Ok(match v {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                    rusqlite::types::Value::Real(x) => Some(x.to_string()),
                    rusqlite::types::Value::Text(s) => Some(s),
                    rusqlite::types::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                })
            };
            let mut raw = RawRun {
                run_id: text(1)?.ok_or_else(|| InputError::at_row(db, "runs", rowid, "run_uuid is null"))?,
                name: text(2)?.unwrap_or_default(),
                status: text(3)?.unwrap_or_default(),
                start_ms: r.get::<_, Option<i64>>(4).map_err(bad)?.unwrap_or(0),
                ..RawRun::default()
            };
            for (i, k) in [
                (5, "end_time"),
                (6, "lifecycle_stage"),
                (7, "user_id"),
                (8, "artifact_uri"),
                (9, "experiment_id"),
                (10, "experiment_name"),
            ] {
                if let Some(v) = text(i)? {
                    raw.extra.insert(k.to_string(), v);
                }
            }
            index.insert(raw.run_id.clone(), runs.len());
            runs.push(raw);
        }
    }
    for (table, is_param) in [("params", true), ("tags", false)] {
        let mut st = conn
            .prepare(&format!("SELECT rowid, run_uuid, key, value FROM {table} ORDER BY rowid"))
            .map_err(|e| q(table, e))?;
        let mut rows = st.query([]).map_err(|e| q(table, e))?;
        while let Some(r) = rows.next().map_err(|e| q(table, e))? {
            let rowid: i64 = r.get(0).map_err(|e| q(table, e))?;
            let bad = |e: rusqlite::Error| InputError::at_row(db, table, rowid, e.to_string());
            let run: String = r.get(1).map_err(bad)?;
            let key: String = r.get(2).map_err(bad)?;
            let value: Option<String> = r.get(3).map_err(bad)?;
            let Some(&i) = index.get(&run) else { continue };
            let map = if is_param { &mut runs[i].params } else { &mut runs[i].tags };
            map.insert(key, value.unwrap_or_default());
        }
    }
    {
        let mut st = conn
            .prepare("SELECT rowid, run_uuid, key, value, timestamp, step, is_nan FROM metrics ORDER BY rowid")
            .map_err(|e| q("metrics", e))?;
        let mut rows = st.query([]).map_err(|e| q("metrics", e))?;
        while let Some(r) = rows.next().map_err(|e| q("metrics", e))? {
            let rowid: i64 = r.get(0).map_err(|e| q("metrics", e))?;
            let bad = |e: rusqlite::Error| InputError::at_row(db, "metrics", rowid, e.to_string());
            let run: String = r.get(1).map_err(bad)?;
            let key: String = r.get(2).map_err(bad)?;
            let value: f64 = r.get(3).map_err(bad)?;
            let ts: i64 = r.get(4).map_err(bad)?;
            let step: i64 = r.get(5).map_err(bad)?;
            let is_nan: bool = r.get(6).map_err(bad)?;
            let Some(&i) = index.get(&run) else {
                return Err(InputError::at_row(db, "metrics", rowid, format!("metric of unknown run {run}")));
            };
            let value = if is_nan { f64::NAN } else { value };
            let at = (db.to_path_buf(), Location::Row { table: "metrics".into(), row: rowid });
            runs[i].points.push(Point { key, ts, value, step, at });
        }
    }
    Ok(runs.into_iter().map(|r| (r, db.to_path_buf())).collect())
}
