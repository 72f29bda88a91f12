//! trackio project databases (`<project>.db`, SQLite, as trackio 0.43 writes them under `$TRACKIO_DIR`).
//!
//! Tables read: `metrics` (id, run_id, timestamp ISO 8601, run_name, step, metrics: a JSON object per row,
//! stored as a BLOB), `configs` (run_id, config JSON), `system_metrics` (run_id, timestamp, metrics JSON).
//! A source is a `.db` file or a folder holding them.
//!
//! Mapping: each `run_id` is a run, its forklog id the run name (trackio's handle for it). Rows in `id`
//! order: the JSON object's keys are metrics (the JSON rules: integers stay integers), the row's timestamp
//! the row time; a step lower than the row before it (a `resume="must"` run logging the same steps again)
//! is a **rewind** at that step − 1. The config JSON → config (`_Group` also → group); system metrics →
//! `System` samples at their timestamps. The project and trackio's run id go to [`RunMeta::extra`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forklog::{Metrics, Value};
use rusqlite::{Connection, OpenFlags};

use super::assemble::{Assembler, Restart};
use super::{walk_files, Decoded, ImportError, InputError, Origin, PlanEvent, RunMeta, RunPlan};

/// Parses an ISO 8601 / RFC 3339 time (`2026-12-02T13:04:01.405821+00:00`, `Z` or no zone = UTC) into
/// seconds since the epoch.
pub fn parse_iso8601(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, rest) = s.split_at(s.find(['T', ' '])?);
    let rest = &rest[1..];
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return None;
    }
    // Split the zone off.
    let (time, offset_secs) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = &z[1..];
        let (hh, mm) = z.split_once(':').unwrap_or((z.get(..2)?, z.get(2..).unwrap_or("0")));
        let mm = if mm.is_empty() { "0" } else { mm };
        (t, sign * (hh.parse::<i64>().ok()? * 3600 + mm.parse::<i64>().ok()? * 60))
    } else {
        (rest, 0)
    };
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next().unwrap_or("0").parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let whole = days * 86_400 + h * 3600 + mi * 60 - offset_secs;
    Some(whole as f64 + sec)
}

/// The `.db` files of a source.
fn find_dbs(src: &Path) -> Result<Vec<PathBuf>, InputError> {
    let meta = std::fs::metadata(src).map_err(|e| InputError::whole(src, format!("cannot read: {e}")))?;
    if meta.is_file() {
        return Ok(vec![src.to_path_buf()]);
    }
    let dbs = walk_files(src, &|p| p.extension().is_some_and(|e| e == "db"))?;
    if dbs.is_empty() {
        return Err(InputError::whole(src, "no trackio .db files found"));
    }
    Ok(dbs)
}

/// Decodes every project database of a source (a damaged database fails alone).
pub fn plans(src: &Path) -> Result<Decoded, ImportError> {
    let mut out = Decoded::default();
    for db in find_dbs(src)? {
        match db_plans(&db) {
            Ok(p) => out.plans.extend(p),
            Err(e) => out.failed.push(e.into()),
        }
    }
    Ok(out)
}

/// A JSON blob or text column as a JSON object.
fn json_object(db: &Path, table: &str, rowid: i64, v: rusqlite::types::Value) -> Result<Metrics, InputError> {
    let bytes = match v {
        rusqlite::types::Value::Blob(b) => b,
        rusqlite::types::Value::Text(s) => s.into_bytes(),
        rusqlite::types::Value::Null => return Ok(Metrics::new()),
        other => return Err(InputError::at_row(db, table, rowid, format!("expected a JSON object, got {other:?}"))),
    };
    let parsed: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| InputError::at_row(db, table, rowid, format!("bad JSON: {e}")))?;
    match crate::json::from_json(parsed) {
        Value::Map(m) => Ok(m),
        other => Err(InputError::at_row(db, table, rowid, format!("expected a JSON object, got {other}"))),
    }
}

struct TrRun {
    name: String,
    asm: Assembler,
    first_time: Option<f64>,
    config: Option<Metrics>,
}

/// Decodes one project database.
fn db_plans(db: &Path) -> Result<Vec<RunPlan>, InputError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| InputError::whole(db, format!("cannot open as SQLite: {e}")))?;
    let project = db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let q = |table: &str, e: rusqlite::Error| InputError::whole(db, format!("reading table {table}: {e}"));
    let mut runs: BTreeMap<String, TrRun> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT id, run_id, run_name, timestamp, step, metrics FROM metrics ORDER BY id")
            .map_err(|e| q("metrics", e))?;
        let mut rows = st.query([]).map_err(|e| q("metrics", e))?;
        while let Some(r) = rows.next().map_err(|e| q("metrics", e))? {
            let rowid: i64 = r.get(0).map_err(|e| q("metrics", e))?;
            let bad = |why: String| InputError::at_row(db, "metrics", rowid, why);
            let run_id: String = r.get(1).map_err(|e| bad(e.to_string()))?;
            let name: String = r.get(2).map_err(|e| bad(e.to_string()))?;
            let ts: String = r.get(3).map_err(|e| bad(e.to_string()))?;
            let step: Option<i64> = r.get(4).map_err(|e| bad(e.to_string()))?;
            let blob: rusqlite::types::Value = r.get(5).map_err(|e| bad(e.to_string()))?;
            let time = parse_iso8601(&ts).ok_or_else(|| bad(format!("timestamp {ts:?} is not ISO 8601")))?;
            let step = step.unwrap_or(0);
            let step = u64::try_from(step).map_err(|_| bad(format!("negative step {step}")))?;
            let metrics = json_object(db, "metrics", rowid, blob)?;
            let run = runs.entry(run_id.clone()).or_insert_with(|| {
                order.push(run_id.clone());
                TrRun { name: name.clone(), asm: Assembler::new(Restart::PerRow), first_time: None, config: None }
            });
            run.first_time.get_or_insert(time);
            run.asm.row(step, time, metrics).map_err(bad)?;
        }
    }
    if has_table(&conn, "configs") {
        let mut st = conn
            .prepare("SELECT id, run_id, run_name, config FROM configs ORDER BY id")
            .map_err(|e| q("configs", e))?;
        let mut rows = st.query([]).map_err(|e| q("configs", e))?;
        while let Some(r) = rows.next().map_err(|e| q("configs", e))? {
            let rowid: i64 = r.get(0).map_err(|e| q("configs", e))?;
            let bad = |e: rusqlite::Error| InputError::at_row(db, "configs", rowid, e.to_string());
            let run_id: String = r.get(1).map_err(bad)?;
            let name: String = r.get(2).map_err(bad)?;
            let blob: rusqlite::types::Value = r.get(3).map_err(bad)?;
            let cfg = json_object(db, "configs", rowid, blob)?;
            let run = runs.entry(run_id.clone()).or_insert_with(|| {
                order.push(run_id.clone());
                TrRun { name, asm: Assembler::new(Restart::PerRow), first_time: None, config: None }
            });
            run.config = Some(cfg);
        }
    }
    if has_table(&conn, "system_metrics") {
        let mut st = conn
            .prepare("SELECT id, run_id, timestamp, metrics FROM system_metrics ORDER BY id")
            .map_err(|e| q("system_metrics", e))?;
        let mut rows = st.query([]).map_err(|e| q("system_metrics", e))?;
        while let Some(r) = rows.next().map_err(|e| q("system_metrics", e))? {
            let rowid: i64 = r.get(0).map_err(|e| q("system_metrics", e))?;
            let bad = |why: String| InputError::at_row(db, "system_metrics", rowid, why);
            let run_id: String = r.get(1).map_err(|e| bad(e.to_string()))?;
            let ts: String = r.get(2).map_err(|e| bad(e.to_string()))?;
            let blob: rusqlite::types::Value = r.get(3).map_err(|e| bad(e.to_string()))?;
            let time = parse_iso8601(&ts).ok_or_else(|| bad(format!("timestamp {ts:?} is not ISO 8601")))?;
            let m = json_object(db, "system_metrics", rowid, blob)?;
            if let Some(run) = runs.get_mut(&run_id) {
                run.asm.timed(time, PlanEvent::System { time, metrics: m });
            }
        }
    }
    let mut plans = Vec::new();
    for run_id in order {
        let Some(run) = runs.remove(&run_id) else { continue };
        let mut parts = run.asm.finish();
        let mut meta = RunMeta { display_name: Some(run.name.clone()), ..RunMeta::default() };
        meta.extra.insert("trackio.project".into(), project.clone());
        meta.extra.insert("trackio.run_id".into(), run_id.clone());
        if let Some(cfg) = run.config {
            if let Some(Value::Str(g)) = cfg.get("_Group") {
                meta.group = Some(g.clone());
            }
            if let Some(p) = parts.first_mut() {
                p.events.insert(0, PlanEvent::Config(cfg));
            }
        }
        plans.push(RunPlan {
            source: db.to_path_buf(),
            source_id: run.name,
            start_time: run.first_time.unwrap_or(0.0),
            origin: Origin::New,
            parts,
            meta,
            warnings: Vec::new(),
        });
    }
    Ok(plans)
}

fn has_table(conn: &Connection, name: &str) -> bool {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00+00:00"), Some(0.0));
        assert_eq!(parse_iso8601("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(parse_iso8601("2026-12-02T13:04:01.5+01:00"), Some(1_796_213_041.5));
        assert_eq!(parse_iso8601("2026-12-02 13:04:01"), Some(1_796_216_641.0));
        assert_eq!(parse_iso8601("nope"), None);
    }
}
