//! Side-by-side comparison harness (issue 5): forklog against SQLite (rusqlite, bundled), JSON Lines
//! files and "the limit" (raw writes, raw CRC scan, minimal durable file create), all measured in
//! the same run so the ratios are meaningful on a shared, noisy machine.
//!
//! ```text
//! cargo bench --bench compare -- --quick   # < 60 s on 2 cores, smaller sizes, same workloads
//! cargo bench --bench compare              # full run (the README table)
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it does a tiny smoke run and writes no JSON.
//! Prints a markdown table and a Targets section, and writes the same numbers as JSON to
//! `$CARGO_TARGET_DIR/forklog-bench.json` (default `target/forklog-bench.json`). A missed target is
//! reported, never a failure: the exit code is 0 unless a benchmark itself could not run (then 1, after
//! the report). Scratch data goes to `$FORKLOG_BENCH_DIR` (default: the system temp dir), removed at exit.
//!
//! Method, per system (each point is the median of several repetitions):
//! - forklog: `log` per row into a fresh run; the `Metrics` maps are built in untimed chunks (the
//!   caller's cost; a separate row includes it, and another shows the map alone). Histories are
//!   built with one `log_at` per row, as a tracker logs (normal 64 KiB frames); one extra history is
//!   written with `log_batch` to show the effect of big frames. "Durable" is `SyncPolicy::Always`,
//!   "no sync" `SyncPolicy::Never`. A writer's drop (its final flush/sync) is inside the timing.
//! - SQLite: `metrics(run, step, time, 5 floats, PRIMARY KEY(run, step))`, WAL, prepared statements;
//!   `synchronous=NORMAL` and 10k-row transactions for "sync never", `FULL` with a commit every
//!   100 ms or per row for the synced appends; a fork is `INSERT ... SELECT` of the parent's rows.
//! - JSON Lines: one file per run, serde_json through a 64 KiB `BufWriter`, `fdatasync` per policy;
//!   a fork copies the parent's lines up to the fork step (and fsyncs file and directory if durable).
//! - limit: `write()` of forklog's own segment bytes in 1 MiB chunks (or one row's worth per
//!   `fdatasync`); CRC32 of the same bytes from memory in 64 KiB chunks; the minimal crash-safe
//!   create (64 bytes to a temp file, fsync, rename, directory fsync), measured interleaved with the
//!   forks it is compared with.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use forklog::{ForkPoint, HistoryOptions, Key, Metrics, Options, Store, SyncPolicy, Value};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::json;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type R<T> = Result<T, BoxErr>;

/// Adds what was being done to an error, so a failed benchmark says where it failed.
trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> R<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> R<T> {
        self.map_err(|e| format!("{}: {e}", what()).into())
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// How big a run is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Tiny sizes, one repetition: what `cargo test --benches` runs (no `--bench` argument).
    Smoke,
    /// `--quick`: under 60 s on 2 cores.
    Quick,
    /// The default under `cargo bench`: the README table.
    Full,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Sizes and repetition counts of one run.
struct Cfg {
    mode: Mode,
    /// Repetitions of expensive points (appends, replays, copy-forks); the median is reported.
    reps_heavy: usize,
    /// Repetitions of cheap points (forklog forks, seeks, opens, file creates).
    reps_light: usize,
    /// Rows per append measurement with sync never / every 100 ms.
    append_rows: u64,
    /// Rows per append measurement with a sync on every row.
    every_row_rows: u64,
    /// History lengths forked at mid-history (forklog).
    fork_sizes: Vec<u64>,
    /// Largest history SQLite and JSONL copy-forks are run for.
    alt_fork_max: u64,
    /// Rows of the root of the fork-of-fork chain, and rows each fork adds.
    chain_root_rows: u64,
    chain_rows_per_fork: u64,
    chain_depth: usize,
    /// Total rows of the flat and the forked runs in the fork-depth replay (a multiple of 2, 11, 101).
    depth_total_rows: u64,
    /// Runs in each store of the open workload, and rows per run in the small and the big store.
    open_runs: u64,
    open_rows_small: u64,
    open_rows_big: u64,
    /// Where scratch stores go.
    base: PathBuf,
    /// Cheap points stop repeating after this long (with at least 3 samples).
    light_budget: Duration,
    /// Longest one system's sync-on-every-row append should take (fewer rows on a slow disk).
    every_row_budget: Duration,
}

impl Cfg {
    fn new(mode: Mode) -> Cfg {
        let base = std::env::var_os("FORKLOG_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        match mode {
            Mode::Smoke => Cfg {
                mode,
                reps_heavy: 1,
                reps_light: 3,
                append_rows: 2_000,
                every_row_rows: 20,
                fork_sizes: vec![1_000, 10_000],
                alt_fork_max: 10_000,
                chain_root_rows: 1_000,
                chain_rows_per_fork: 10,
                chain_depth: 10,
                depth_total_rows: 2_222 * 2,
                open_runs: 10,
                open_rows_small: 10,
                open_rows_big: 1_000,
                base,
                light_budget: Duration::from_secs(1),
                every_row_budget: Duration::from_millis(100),
            },
            Mode::Quick => Cfg {
                mode,
                reps_heavy: 3,
                reps_light: 15,
                append_rows: 200_000,
                every_row_rows: 500,
                fork_sizes: vec![1_000, 100_000, 1_000_000],
                alt_fork_max: 100_000,
                chain_root_rows: 10_000,
                chain_rows_per_fork: 100,
                chain_depth: 10,
                depth_total_rows: 2_222 * 100,
                open_runs: 1_000,
                open_rows_small: 10,
                open_rows_big: 1_000,
                base,
                light_budget: Duration::from_secs(2),
                every_row_budget: Duration::from_millis(400),
            },
            Mode::Full => Cfg {
                mode,
                reps_heavy: 5,
                reps_light: 31,
                append_rows: 1_000_000,
                every_row_rows: 2_000,
                fork_sizes: vec![1_000, 100_000, 1_000_000, 10_000_000],
                alt_fork_max: 1_000_000,
                chain_root_rows: 100_000,
                chain_rows_per_fork: 100,
                chain_depth: 10,
                depth_total_rows: 2_222 * 500,
                open_runs: 10_000,
                open_rows_small: 10,
                open_rows_big: 1_000,
                base,
                light_budget: Duration::from_secs(10),
                every_row_budget: Duration::from_millis(1500),
            },
        }
    }

    /// Whether to take another sample of a cheap point: `done` samples taken since `start`.
    fn more(&self, done: usize, start: Instant) -> bool {
        done < self.reps_light && (done < 3 || start.elapsed() < self.light_budget)
    }

    fn tempdir(&self, prefix: &str) -> R<tempfile::TempDir> {
        fs::create_dir_all(&self.base).ctx(|| format!("create {}", self.base.display()))?;
        tempfile::Builder::new()
            .prefix(&format!("forklog-bench-{prefix}-"))
            .tempdir_in(&self.base)
            .ctx(|| format!("create a temp dir in {}", self.base.display()))
    }

    /// The largest history (forklog only) and the largest history every system has.
    fn max_size(&self) -> u64 {
        *self.fork_sizes.last().expect("at least one fork size")
    }
}

// ---------------------------------------------------------------------------------------------
// The typical row: step, time and 5 float metrics
// ---------------------------------------------------------------------------------------------

const METRIC_NAMES: [&str; 5] = ["loss", "acc", "lr", "grad_norm", "throughput"];

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
struct Row {
    step: u64,
    time: f64,
    loss: f64,
    acc: f64,
    lr: f64,
    grad_norm: f64,
    throughput: f64,
}

/// Deterministic, realistically noisy values (so no format gets an unfair compression win).
fn row(step: u64) -> Row {
    let mut x = step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
    let s = step as f64;
    Row {
        step,
        time: ((1.7e9 + s * 0.05 + u * 1e-3) * 1e6).round() / 1e6,
        loss: 2.5 / (1.0 + s * 1e-4) + 0.05 * u,
        acc: 1.0 - 0.9 / (1.0 + s * 1e-4) - 0.01 * u,
        lr: 3e-4 * (1.0 + (s * 1e-5).cos()) / 2.0,
        grad_norm: 0.5 + u * 2.0,
        throughput: 1200.0 + 150.0 * u,
    }
}

fn metric_keys() -> [Key; 5] {
    METRIC_NAMES.map(Key::from)
}

fn to_metrics(keys: &[Key; 5], r: &Row) -> Metrics {
    let mut m = Metrics::new();
    for (k, v) in keys.iter().zip([r.loss, r.acc, r.lr, r.grad_norm, r.throughput]) {
        m.insert(k.clone(), Value::Float(v));
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting
// ---------------------------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "median of no samples");
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn size_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Rows per second: higher is better.
    RowsPerSec,
    /// Seconds: lower is better.
    Secs,
    /// Bytes: lower is better.
    Bytes,
    /// KiB: lower is better.
    KiB,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::RowsPerSec => "rows/s",
            Unit::Secs => "s",
            Unit::Bytes => "bytes",
            Unit::KiB => "KiB",
        }
    }

    fn fmt(self, x: f64) -> String {
        match self {
            Unit::RowsPerSec => {
                if x >= 1e6 {
                    format!("{:.2} M rows/s", x / 1e6)
                } else if x >= 1e3 {
                    format!("{:.1} k rows/s", x / 1e3)
                } else {
                    format!("{x:.0} rows/s")
                }
            }
            Unit::Secs => {
                if x >= 1.0 {
                    format!("{x:.2} s")
                } else if x >= 1e-3 {
                    format!("{:.2} ms", x * 1e3)
                } else {
                    format!("{:.1} µs", x * 1e6)
                }
            }
            Unit::Bytes => format!("{x:.1} B"),
            Unit::KiB => format!("{x:.0} KiB"),
        }
    }
}

fn fmt_ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}x")
    } else if x >= 10.0 {
        format!("{x:.1}x")
    } else if x >= 0.1 {
        format!("{x:.2}x")
    } else {
        format!("{x:.4}x")
    }
}

fn fmt_percent(x: f64) -> String {
    if x >= 0.1 {
        format!("{:.0}%", x * 100.0)
    } else {
        format!("{:.2}%", x * 100.0)
    }
}

/// One line of the table.
struct Rec {
    /// Stable id used by the targets and in the JSON.
    id: String,
    workload: String,
    unit: Unit,
    forklog: Option<f64>,
    sqlite: Option<f64>,
    jsonl: Option<f64>,
    limit: Option<f64>,
    /// Named ratios; when empty the standard ones are derived from the unit.
    extra: Vec<(String, f64)>,
}

impl Rec {
    fn new(id: impl Into<String>, workload: impl Into<String>, unit: Unit) -> Rec {
        Rec {
            id: id.into(),
            workload: workload.into(),
            unit,
            forklog: None,
            sqlite: None,
            jsonl: None,
            limit: None,
            extra: Vec::new(),
        }
    }

    /// Another forklog API measured in the same repetitions as `self`: its own forklog figure, the same
    /// SQLite, JSONL and limit figures.
    fn sibling(&self, id: impl Into<String>, workload: impl Into<String>, forklog: f64) -> Rec {
        let mut r = Rec::new(id, workload, self.unit);
        r.forklog = Some(forklog);
        (r.sqlite, r.jsonl, r.limit) = (self.sqlite, self.jsonl, self.limit);
        r
    }

    /// Ratios with forklog as the subject: how many times better than SQLite / JSONL, and the
    /// fraction (rates) or multiple (costs) of the limit.
    fn ratios(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let Some(fl) = self.forklog else {
            return self.extra.clone();
        };
        let higher_better = self.unit == Unit::RowsPerSec;
        for (name, other) in [("sqlite", self.sqlite), ("jsonl", self.jsonl)] {
            if let Some(o) = other {
                let r = if higher_better { fl / o } else { o / fl };
                out.push((format!("forklog_vs_{name}"), r));
            }
        }
        if let Some(l) = self.limit {
            out.push(("forklog_over_limit".to_string(), fl / l));
        }
        out.extend(self.extra.iter().cloned());
        out
    }

    fn ratio_text(&self) -> String {
        let higher_better = self.unit == Unit::RowsPerSec;
        self.ratios()
            .iter()
            .map(|(name, r)| match name.as_str() {
                "forklog_vs_sqlite" | "forklog_vs_jsonl" => {
                    let who = name.trim_start_matches("forklog_vs_");
                    if higher_better {
                        format!("{} {who}", fmt_ratio(*r))
                    } else {
                        format!("{who}/forklog {}", fmt_ratio(*r))
                    }
                }
                "forklog_over_limit" => {
                    if higher_better {
                        format!("{} of limit", fmt_percent(*r))
                    } else {
                        format!("{} limit", fmt_ratio(*r))
                    }
                }
                _ => format!("{name} {}", fmt_ratio(*r)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One target from the issue.
struct Target {
    name: String,
    /// How the measured ratio compares with the threshold, in words.
    rule: String,
    measured: Option<f64>,
    /// The measured value as printed (a ratio unless said otherwise).
    measured_text: Option<String>,
    met: Option<bool>,
    note: String,
}

#[derive(Default)]
struct Report {
    recs: Vec<Rec>,
    targets: Vec<Target>,
    errors: Vec<String>,
    /// Wall time of each section, for keeping `--quick` under budget.
    sections: Vec<(String, f64)>,
}

impl Report {
    fn get(&self, id: &str) -> Option<&Rec> {
        self.recs.iter().find(|r| r.id == id)
    }

    fn val(&self, id: &str, col: &str) -> Option<f64> {
        let r = self.get(id)?;
        match col {
            "forklog" => r.forklog,
            "sqlite" => r.sqlite,
            "jsonl" => r.jsonl,
            "limit" => r.limit,
            _ => r.extra.iter().find(|(n, _)| n == col).map(|(_, v)| *v),
        }
    }

    /// Adds a target `measured <= max` (`at_most`) or `measured >= min`.
    fn target(&mut self, name: &str, measured: Option<f64>, at_most: bool, bound: f64, note: &str) {
        let rule = if at_most { format!("<= {}", fmt_ratio(bound)) } else { format!(">= {}", fmt_ratio(bound)) };
        let met = measured.map(|m| if at_most { m <= bound } else { m >= bound });
        self.targets.push(Target {
            name: name.to_string(),
            rule,
            measured,
            measured_text: measured.map(fmt_ratio),
            met,
            note: note.to_string(),
        });
    }

    fn markdown(&self, cfg: &Cfg) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## forklog comparison ({} run)\n", cfg.mode.name());
        let _ = writeln!(s, "| workload | forklog | sqlite | jsonl | limit | ratio(s) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
        let cell = |u: Unit, v: Option<f64>| v.map(|x| u.fmt(x)).unwrap_or_else(|| "n/a".into());
        for r in &self.recs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.workload,
                cell(r.unit, r.forklog),
                cell(r.unit, r.sqlite),
                cell(r.unit, r.jsonl),
                cell(r.unit, r.limit),
                r.ratio_text()
            );
        }
        let _ = writeln!(s, "\n### Targets\n");
        for t in &self.targets {
            let status = match t.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "n/a",
            };
            let measured =
                t.measured_text.as_ref().map(|m| format!("measured {m}")).unwrap_or_else(|| "not measured".into());
            let note = if t.note.is_empty() { String::new() } else { format!(" ({})", t.note) };
            let _ = writeln!(s, "- **{status}**: {}: {measured}, target {}{note}", t.name, t.rule);
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\n### Benchmarks that could not run\n");
            for e in &self.errors {
                let _ = writeln!(s, "- {e}");
            }
        }
        s
    }

    fn json(&self, cfg: &Cfg, total: f64) -> serde_json::Value {
        let opt = |v: Option<f64>| v.map(|x| json!(x)).unwrap_or(serde_json::Value::Null);
        let results: Vec<_> = self
            .recs
            .iter()
            .map(|r| {
                let ratios: serde_json::Map<String, serde_json::Value> =
                    r.ratios().into_iter().map(|(k, v)| (k, json!(v))).collect();
                json!({
                    "id": r.id,
                    "workload": r.workload,
                    "unit": r.unit.name(),
                    "forklog": opt(r.forklog),
                    "sqlite": opt(r.sqlite),
                    "jsonl": opt(r.jsonl),
                    "limit": opt(r.limit),
                    "ratios": ratios,
                })
            })
            .collect();
        let targets: Vec<_> = self
            .targets
            .iter()
            .map(|t| {
                json!({
                    "target": t.name,
                    "rule": t.rule,
                    "measured": opt(t.measured),
                    "met": t.met,
                    "note": t.note,
                })
            })
            .collect();
        let sections: serde_json::Map<String, serde_json::Value> =
            self.sections.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "mode": cfg.mode.name(),
            "machine": machine_info(),
            "repetitions": { "heavy": cfg.reps_heavy, "light": cfg.reps_light },
            "results": results,
            "targets": targets,
            "errors": self.errors,
            "section_seconds": sections,
            "total_seconds": total,
        })
    }
}

fn machine_info() -> serde_json::Value {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kib = fs::read_to_string("/proc/meminfo").ok().and_then(|s| status_field(&s, "MemTotal"));
    json!({
        "cpu": cpu,
        "cores": cores,
        "mem_kib": mem_kib,
        "kernel": kernel,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// A `Name:   123 kB` field of /proc/self/status or /proc/meminfo, in KiB.
fn status_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))
        .and_then(|l| l[name.len() + 1..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn self_status(name: &str) -> Option<u64> {
    fs::read_to_string("/proc/self/status").ok().and_then(|s| status_field(&s, name))
}

// ---------------------------------------------------------------------------------------------
// File helpers
// ---------------------------------------------------------------------------------------------

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = fs::read_dir(path) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += dir_size(&e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

fn sync_dir(dir: &Path) -> R<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx(|| format!("fsync dir {}", dir.display()))
}

/// The minimal crash-safe file create: write 64 bytes to a temp file, fsync it, rename it into
/// place, fsync the directory. With `durable == false` the two fsyncs are left out.
fn minimal_create(dir: &Path, name: &str, durable: bool) -> R<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(&[0x5a; 64]).ctx(|| "write 64 bytes".into())?;
    if durable {
        f.sync_all().ctx(|| "fsync file".into())?;
    }
    drop(f);
    fs::rename(&tmp, &dst).ctx(|| format!("rename to {}", dst.display()))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// forklog
// ---------------------------------------------------------------------------------------------

fn fl_open(dir: &Path, sync: SyncPolicy) -> R<Store> {
    Store::open_with(dir, Options::default().sync(sync)).ctx(|| format!("forklog: open {}", dir.display()))
}

/// Appends rows `first..first + n` to `w` the way a tracker logs: one `log_at` call per row (so the
/// segments hold the writer's normal frames, flushed every `buffer_size` bytes).
fn fl_fill(w: &mut forklog::RunWriter, keys: &[Key; 5], first: u64, n: u64) -> R<()> {
    for st in first..first + n {
        w.log_at(st, to_metrics(keys, &row(st))).ctx(|| format!("forklog: log_at step {st}"))?;
    }
    Ok(())
}

/// Appends rows `first..first + n` with `log_batch` calls of `chunk` rows each (an import): every
/// batch is written as one frame.
fn fl_fill_batched(w: &mut forklog::RunWriter, keys: &[Key; 5], first: u64, n: u64, chunk: u64) -> R<()> {
    let mut s = first;
    while s < first + n {
        let end = (s + chunk).min(first + n);
        let batch: Vec<(Option<u64>, Metrics)> = (s..end).map(|st| (Some(st), to_metrics(keys, &row(st)))).collect();
        w.log_batch(batch).ctx(|| format!("forklog: log_batch at step {s}"))?;
        s = end;
    }
    Ok(())
}

/// A run of `n` rows (steps `0..n`) made durable, in an open store.
fn fl_build_run(store: &Store, id: &str, keys: &[Key; 5], n: u64) -> R<()> {
    let mut w = store.create_run(id).ctx(|| format!("forklog: create run {id}"))?;
    fl_fill(&mut w, keys, 0, n)?;
    w.sync().ctx(|| format!("forklog: sync run {id}"))?;
    Ok(())
}

/// A fresh run `run` in a new store at `dir`, its first row (step 0) logged and flushed: the writer's
/// one-off setup (segment and key-table files, whose creation is synced under every policy) stays out
/// of the timed steady state, as SQLite's `CREATE TABLE` and the JSON Lines file open do.
fn fl_started(dir: &Path, sync: SyncPolicy, keys: &[Key; 5]) -> R<(Store, forklog::RunWriter)> {
    let store = fl_open(dir, sync)?;
    let mut w = store.create_run("run").ctx(|| "forklog: create run".into())?;
    w.log_at(0, to_metrics(keys, &row(0))).ctx(|| "forklog: log_at 0".into())?;
    w.flush().ctx(|| "forklog: flush".into())?;
    Ok((store, w))
}

/// Rows per second of `log` (one row per call) for steps `1..n`, the writer's drop (its final
/// flush/sync) included. The `Metrics` maps are built in untimed chunks: the caller's map building is
/// not the engine's write path (see [`fl_append_with_maps`]).
fn fl_append(dir: &Path, n: u64, sync: SyncPolicy, keys: &[Key; 5]) -> R<f64> {
    let (_store, mut w) = fl_started(dir, sync, keys)?;
    let mut elapsed = Duration::ZERO;
    const CHUNK: u64 = 1 << 16;
    let mut s = 1;
    while s < n {
        let end = (s + CHUNK).min(n);
        let maps: Vec<Metrics> = (s..end).map(|st| to_metrics(keys, &row(st))).collect();
        let t = Instant::now();
        for m in maps {
            w.log(m).ctx(|| "forklog: log".into())?;
        }
        elapsed += t.elapsed();
        s = end;
    }
    let t = Instant::now();
    drop(w);
    elapsed += t.elapsed();
    Ok((n - 1) as f64 / secs(elapsed))
}

/// Same as [`fl_append`] (sync never) but building each `Metrics` map inside the timed loop.
fn fl_append_with_maps(dir: &Path, n: u64, keys: &[Key; 5]) -> R<f64> {
    let (_store, mut w) = fl_started(dir, SyncPolicy::Never, keys)?;
    let t = Instant::now();
    for st in 1..n {
        w.log(to_metrics(keys, &row(st))).ctx(|| "forklog: log".into())?;
    }
    drop(w);
    Ok((n - 1) as f64 / secs(t.elapsed()))
}

/// Rows per second of `log_ref` (sync never) with one map reused: each step the caller sets the
/// map's 5 values (timed, like SQLite's parameter binding) and lends it to the writer.
fn fl_append_ref(dir: &Path, n: u64, keys: &[Key; 5]) -> R<f64> {
    let (_store, mut w) = fl_started(dir, SyncPolicy::Never, keys)?;
    let mut m = to_metrics(keys, &row(0));
    let t = Instant::now();
    for st in 1..n {
        let r = row(st);
        for (k, v) in keys.iter().zip([r.loss, r.acc, r.lr, r.grad_norm, r.throughput]) {
            if let Some(slot) = m.get_mut(&**k) {
                *slot = Value::Float(v);
            }
        }
        w.log_ref(&m).ctx(|| "forklog: log_ref".into())?;
    }
    drop(w);
    Ok((n - 1) as f64 / secs(t.elapsed()))
}

/// Rows per second of `log_floats` (sync never): each step the caller passes its 5 (key, value) pairs
/// as a slice (built in the timed loop, like SQLite's parameter binding); no map, no `Value`.
fn fl_append_floats(dir: &Path, n: u64, keys: &[Key; 5]) -> R<f64> {
    let (_store, mut w) = fl_started(dir, SyncPolicy::Never, keys)?;
    let t = Instant::now();
    for st in 1..n {
        let r = row(st);
        let vals = [r.loss, r.acc, r.lr, r.grad_norm, r.throughput];
        let pairs: [(&str, f64); 5] = std::array::from_fn(|i| (&*keys[i], vals[i]));
        w.log_floats_at(st, &pairs).ctx(|| "forklog: log_floats_at".into())?;
    }
    drop(w);
    Ok((n - 1) as f64 / secs(t.elapsed()))
}

/// Rows per second of `log_columns` (sync never) in batches of `COLUMN_BATCH` rows, the columns filled by
/// the caller in untimed chunks (a columnar client already holds its data in arrays). A batch is one frame
/// written with one `pwrite` of ~0.7 MB, about the raw limit's 1 MiB `write()`s.
fn fl_append_columns(dir: &Path, n: u64, keys: &[Key; 5]) -> R<f64> {
    const COLUMN_BATCH: u64 = 16_384;
    let (_store, mut w) = fl_started(dir, SyncPolicy::Never, keys)?;
    let mut elapsed = Duration::ZERO;
    let mut s = 1;
    let mut steps = Vec::new();
    let mut cols: [Vec<f64>; 5] = Default::default();
    while s < n {
        let end = (s + COLUMN_BATCH).min(n);
        steps.clear();
        cols.iter_mut().for_each(Vec::clear);
        for st in s..end {
            let r = row(st);
            steps.push(st);
            for (c, v) in cols.iter_mut().zip([r.loss, r.acc, r.lr, r.grad_norm, r.throughput]) {
                c.push(v);
            }
        }
        let batch: [(&str, &[f64]); 5] = std::array::from_fn(|i| (&*keys[i], cols[i].as_slice()));
        let t = Instant::now();
        w.log_columns(&steps, &batch).ctx(|| "forklog: log_columns".into())?;
        elapsed += t.elapsed();
        s = end;
    }
    let t = Instant::now();
    drop(w);
    elapsed += t.elapsed();
    Ok((n - 1) as f64 / secs(elapsed))
}

/// The bytes of a run's segment files, in order.
fn fl_segment_bytes(store_dir: &Path, run: &str) -> R<Vec<u8>> {
    let dir = store_dir.join("runs").join(run);
    let mut segs: Vec<PathBuf> = fs::read_dir(&dir)
        .ctx(|| format!("list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    // vK-SEQ.seg: order by version, then by sequence number, numerically.
    segs.sort_by_key(|p| {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut parts = stem.trim_start_matches('v').splitn(2, '-');
        let v: u64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let q: u64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (v, q, stem)
    });
    if segs.is_empty() {
        return Err(format!("no segment files in {}", dir.display()).into());
    }
    let mut out = Vec::new();
    for p in segs {
        File::open(&p).and_then(|mut f| f.read_to_end(&mut out)).ctx(|| format!("read {}", p.display()))?;
    }
    Ok(out)
}

/// Replays a whole run, touching every row. Returns (rows, seconds).
fn fl_replay(store: &Store, run: &str) -> R<(u64, f64)> {
    let t = Instant::now();
    let mut n = 0u64;
    let mut acc = 0u64;
    for r in store.history(run).ctx(|| format!("forklog: history {run}"))? {
        let r = r.ctx(|| format!("forklog: replay {run}"))?;
        acc = acc.wrapping_add(r.step ^ r.metrics.len() as u64);
        n += 1;
    }
    black_box(acc);
    Ok((n, secs(t.elapsed())))
}

/// Replays a whole run through `History::for_each_row` (borrowed rows, no per-row map), reading every
/// value. Returns (rows, seconds).
fn fl_replay_rows(store: &Store, run: &str) -> R<(u64, f64)> {
    let t = Instant::now();
    let mut n = 0u64;
    let mut acc = 0.0;
    store
        .history(run)
        .ctx(|| format!("forklog: history {run}"))?
        .for_each_row(|r| {
            for (_, v) in r.metrics() {
                if let Value::Float(x) = v {
                    acc += x;
                }
            }
            n += 1;
        })
        .ctx(|| format!("forklog: replay {run}"))?;
    black_box(acc);
    Ok((n, secs(t.elapsed())))
}

/// Replays a whole run as columns (`Store::columns`), reading every value. Returns (rows, seconds).
fn fl_replay_columns(store: &Store, run: &str) -> R<(u64, f64)> {
    let t = Instant::now();
    let c = store.columns(run, &HistoryOptions::new()).ctx(|| format!("forklog: columns {run}"))?;
    let mut acc = 0.0;
    for col in &c.columns {
        acc += col.values.iter().flatten().sum::<f64>();
    }
    black_box(acc);
    Ok((c.len() as u64, secs(t.elapsed())))
}

/// Replays a whole run as chunks of columns (`Store::scan_columns`), reading every value. Returns
/// (rows, seconds).
fn fl_replay_scan(store: &Store, run: &str) -> R<(u64, f64)> {
    let t = Instant::now();
    let (mut n, mut acc) = (0u64, 0.0);
    store
        .scan_columns(run, &HistoryOptions::new(), |c| {
            n += c.len() as u64;
            for col in &c.columns {
                acc += col.values.iter().flatten().sum::<f64>();
            }
        })
        .ctx(|| format!("forklog: scan_columns {run}"))?;
    black_box(acc);
    Ok((n, secs(t.elapsed())))
}

/// Time to the first row of `run` at or after `from`.
fn fl_seek(store: &Store, run: &str, from: u64) -> R<f64> {
    let t = Instant::now();
    let mut h = store
        .history_with(run, &HistoryOptions::new().from_step(from))
        .ctx(|| format!("forklog: history_with {run} from {from}"))?;
    let first = h
        .next()
        .ok_or_else(|| format!("forklog: no row at or after {from} in {run}"))?
        .ctx(|| format!("forklog: seek {run} to {from}"))?;
    let el = secs(t.elapsed());
    if first.step != from {
        return Err(format!("forklog: seek to {from} returned step {}", first.step).into());
    }
    black_box(first);
    Ok(el)
}

/// Times a fork of `parent` at `step` into `new_id`, the writer's drop included.
fn fl_fork(store: &Store, new_id: &str, parent: &str, step: u64) -> R<f64> {
    let point = ForkPoint::new(parent, step);
    let t = Instant::now();
    let w = store.fork(new_id, &point).ctx(|| format!("forklog: fork {new_id} from {parent}?_step={step}"))?;
    drop(w);
    Ok(secs(t.elapsed()))
}

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

const SQL_INSERT: &str = "INSERT INTO metrics (run, step, time, loss, acc, lr, grad_norm, throughput) \
                          VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const SQL_FORK: &str = "INSERT INTO metrics SELECT ?1, step, time, loss, acc, lr, grad_norm, throughput \
                        FROM metrics WHERE run = ?2 AND step <= ?3";
const SQL_SCAN: &str = "SELECT step, time, loss, acc, lr, grad_norm, throughput FROM metrics \
                        WHERE run = ?1 AND step >= ?2 ORDER BY step";

/// Opens (creating) a tracker-style metrics database: WAL, the given `synchronous` level.
fn sq_open(path: &Path, synchronous: &str) -> R<Connection> {
    let conn = Connection::open(path).ctx(|| format!("sqlite: open {}", path.display()))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .ctx(|| "sqlite: journal_mode=WAL".into())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("sqlite: journal_mode is {mode}, not wal").into());
    }
    sq_sync(&conn, synchronous)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS metrics (run TEXT, step INTEGER, time REAL, loss REAL, \
         acc REAL, lr REAL, grad_norm REAL, throughput REAL, PRIMARY KEY (run, step))",
    )
    .ctx(|| "sqlite: create table".into())?;
    Ok(conn)
}

fn sq_sync(conn: &Connection, synchronous: &str) -> R<()> {
    conn.pragma_update(None, "synchronous", synchronous).ctx(|| format!("sqlite: synchronous={synchronous}"))
}

fn sq_insert(st: &mut rusqlite::CachedStatement<'_>, run: &str, r: &Row) -> R<()> {
    st.execute(params![run, r.step as i64, r.time, r.loss, r.acc, r.lr, r.grad_norm, r.throughput])
        .ctx(|| format!("sqlite: insert step {}", r.step))?;
    Ok(())
}

/// How SQLite commits in an append benchmark.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SqCommit {
    /// Transactions of this many rows.
    Batch(u64),
    /// A commit whenever this much time has passed since the last one.
    Every(Duration),
    /// Autocommit: one transaction per row.
    EachRow,
}

/// Appends rows `first..first + n` to `run`; returns seconds (statement preparation untimed).
fn sq_append(conn: &Connection, run: &str, first: u64, n: u64, commit: SqCommit) -> R<f64> {
    let mut st = conn.prepare_cached(SQL_INSERT).ctx(|| "sqlite: prepare insert".into())?;
    let begin = |c: &Connection| c.execute_batch("BEGIN").ctx(|| "sqlite: BEGIN".into());
    let commit_tx = |c: &Connection| c.execute_batch("COMMIT").ctx(|| "sqlite: COMMIT".into());
    let t = Instant::now();
    match commit {
        SqCommit::EachRow => {
            for s in first..first + n {
                sq_insert(&mut st, run, &row(s))?;
            }
        }
        SqCommit::Batch(b) => {
            let mut in_tx = 0;
            begin(conn)?;
            for s in first..first + n {
                sq_insert(&mut st, run, &row(s))?;
                in_tx += 1;
                if in_tx == b {
                    commit_tx(conn)?;
                    begin(conn)?;
                    in_tx = 0;
                }
            }
            commit_tx(conn)?;
        }
        SqCommit::Every(every) => {
            let mut last = Instant::now();
            begin(conn)?;
            for s in first..first + n {
                sq_insert(&mut st, run, &row(s))?;
                if s % 64 == 0 && last.elapsed() >= every {
                    commit_tx(conn)?;
                    begin(conn)?;
                    last = Instant::now();
                }
            }
            commit_tx(conn)?;
        }
    }
    Ok(secs(t.elapsed()))
}

/// A database holding run `h` with `n` rows, built with big transactions.
fn sq_build(path: &Path, n: u64) -> R<Connection> {
    let conn = sq_open(path, "NORMAL")?;
    sq_append(&conn, "h", 0, n, SqCommit::Batch(50_000))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).ctx(|| "sqlite: checkpoint".into())?;
    Ok(conn)
}

fn sq_fork(conn: &Connection, new_id: &str, parent: &str, step: u64) -> R<f64> {
    let mut st = conn.prepare_cached(SQL_FORK).ctx(|| "sqlite: prepare fork".into())?;
    let t = Instant::now();
    let copied = st.execute(params![new_id, parent, step as i64]).ctx(|| format!("sqlite: fork {new_id}"))?;
    let el = secs(t.elapsed());
    if copied as u64 == 0 {
        return Err(format!("sqlite: fork {new_id} copied no row").into());
    }
    Ok(el)
}

/// Reads every row of `run` from step `from` on into `Row`s; returns (rows, seconds).
fn sq_replay(conn: &Connection, run: &str) -> R<(u64, f64)> {
    let mut st = conn.prepare_cached(SQL_SCAN).ctx(|| "sqlite: prepare scan".into())?;
    let t = Instant::now();
    let mut rows = st.query(params![run, 0i64]).ctx(|| "sqlite: scan".into())?;
    let mut n = 0u64;
    let mut acc = 0.0;
    while let Some(r) = rows.next().ctx(|| "sqlite: scan row".into())? {
        let r = sq_row(r)?;
        acc += r.loss;
        n += 1;
    }
    black_box(acc);
    Ok((n, secs(t.elapsed())))
}

fn sq_row(r: &rusqlite::Row<'_>) -> R<Row> {
    let get = |i| -> R<f64> { r.get::<_, f64>(i).ctx(|| format!("sqlite: column {i}")) };
    Ok(Row {
        step: r.get::<_, i64>(0).ctx(|| "sqlite: step".into())? as u64,
        time: get(1)?,
        loss: get(2)?,
        acc: get(3)?,
        lr: get(4)?,
        grad_norm: get(5)?,
        throughput: get(6)?,
    })
}

fn sq_seek(conn: &Connection, run: &str, from: u64) -> R<f64> {
    let mut st = conn.prepare_cached(SQL_SCAN).ctx(|| "sqlite: prepare scan".into())?;
    let t = Instant::now();
    let mut rows = st.query(params![run, from as i64]).ctx(|| "sqlite: seek".into())?;
    let first = match rows.next().ctx(|| "sqlite: seek row".into())? {
        Some(r) => sq_row(r)?,
        None => return Err(format!("sqlite: no row at {from}").into()),
    };
    let el = secs(t.elapsed());
    if first.step != from {
        return Err(format!("sqlite: seek to {from} returned {}", first.step).into());
    }
    Ok(el)
}

fn sq_files_size(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            fs::metadata(PathBuf::from(p)).map(|m| m.len()).unwrap_or(0)
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// JSON Lines
// ---------------------------------------------------------------------------------------------

const JL_BUF: usize = 64 << 10;

fn jl_path(dir: &Path, run: &str) -> PathBuf {
    dir.join(format!("{run}.jsonl"))
}

/// How the JSONL writer syncs in an append benchmark.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JlSync {
    Never,
    Every(Duration),
    EachRow,
}

/// Appends rows `first..first + n` to `file` through a buffered writer; returns seconds
/// (the file open untimed; the final flush, and fsync if syncing, timed).
fn jl_append(path: &Path, first: u64, n: u64, sync: JlSync) -> R<f64> {
    let f =
        OpenOptions::new().create(true).append(true).open(path).ctx(|| format!("jsonl: open {}", path.display()))?;
    let mut w = BufWriter::with_capacity(JL_BUF, f);
    let t = Instant::now();
    let mut last = Instant::now();
    for s in first..first + n {
        serde_json::to_writer(&mut w, &row(s)).ctx(|| "jsonl: serialize".into())?;
        w.write_all(b"\n").ctx(|| "jsonl: write".into())?;
        match sync {
            JlSync::Never => {}
            JlSync::EachRow => {
                w.flush().ctx(|| "jsonl: flush".into())?;
                w.get_ref().sync_data().ctx(|| "jsonl: fdatasync".into())?;
            }
            JlSync::Every(every) => {
                if s % 64 == 0 && last.elapsed() >= every {
                    w.flush().ctx(|| "jsonl: flush".into())?;
                    w.get_ref().sync_data().ctx(|| "jsonl: fdatasync".into())?;
                    last = Instant::now();
                }
            }
        }
    }
    w.flush().ctx(|| "jsonl: flush".into())?;
    if sync != JlSync::Never {
        w.get_ref().sync_data().ctx(|| "jsonl: fdatasync".into())?;
    }
    Ok(secs(t.elapsed()))
}

/// The step of a line written by `serde_json` for [`Row`] (`{"step":N,...`).
fn jl_step(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"step\":")?;
    let mut v: u64 = 0;
    let mut any = false;
    for &b in rest {
        if b.is_ascii_digit() {
            v = v * 10 + u64::from(b - b'0');
            any = true;
        } else {
            break;
        }
    }
    any.then_some(v)
}

/// A JSONL fork: copy the parent's lines up to and including `step` into a new file.
fn jl_fork(dir: &Path, new_id: &str, parent: &str, step: u64, durable: bool) -> R<f64> {
    let src = jl_path(dir, parent);
    let dst = jl_path(dir, new_id);
    let t = Instant::now();
    let mut r = BufReader::with_capacity(1 << 20, File::open(&src).ctx(|| "jsonl: open".into())?);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&dst).ctx(|| "jsonl: create".into())?);
    let mut line = Vec::with_capacity(256);
    let mut copied = 0u64;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).ctx(|| "jsonl: read".into())? == 0 {
            break;
        }
        match jl_step(&line) {
            Some(s) if s <= step => {
                w.write_all(&line).ctx(|| "jsonl: write".into())?;
                copied += 1;
            }
            Some(_) => break,
            None => return Err(format!("jsonl: bad line in {}", src.display()).into()),
        }
    }
    let f = w.into_inner().map_err(|e| format!("jsonl: flush: {e}"))?;
    if durable {
        f.sync_all().ctx(|| "jsonl: fsync".into())?;
        drop(f);
        sync_dir(dir)?;
    }
    let el = secs(t.elapsed());
    if copied == 0 {
        return Err("jsonl: fork copied nothing".into());
    }
    Ok(el)
}

fn jl_replay(dir: &Path, run: &str) -> R<(u64, f64)> {
    let t = Instant::now();
    let mut r = BufReader::with_capacity(JL_BUF, File::open(jl_path(dir, run)).ctx(|| "jsonl: open".into())?);
    let mut line = Vec::with_capacity(256);
    let mut n = 0;
    let mut acc = 0.0;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).ctx(|| "jsonl: read".into())? == 0 {
            break;
        }
        let row: Row = serde_json::from_slice(&line).ctx(|| "jsonl: parse".into())?;
        acc += row.loss;
        n += 1;
    }
    black_box(acc);
    Ok((n, secs(t.elapsed())))
}

/// Time to the first row at or after `from`: lines are skipped by their step prefix.
fn jl_seek(dir: &Path, run: &str, from: u64) -> R<f64> {
    let t = Instant::now();
    let mut r = BufReader::with_capacity(JL_BUF, File::open(jl_path(dir, run)).ctx(|| "jsonl: open".into())?);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).ctx(|| "jsonl: read".into())? == 0 {
            return Err(format!("jsonl: no row at {from}").into());
        }
        if jl_step(&line).is_some_and(|s| s >= from) {
            let row: Row = serde_json::from_slice(&line).ctx(|| "jsonl: parse".into())?;
            black_box(row);
            return Ok(secs(t.elapsed()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The limit
// ---------------------------------------------------------------------------------------------

/// Raw `write()` of `bytes` to a new file: in 1 MiB chunks (`per_row == None`) with an fdatasync
/// every `sync_every` and at the end if given; or `per_row` bytes at a time with an fdatasync
/// after each. Returns seconds (the file create untimed).
fn raw_write(path: &Path, bytes: &[u8], per_row: Option<usize>, sync_every: Option<Duration>) -> R<f64> {
    let mut f = File::create(path).ctx(|| format!("limit: create {}", path.display()))?;
    let t = Instant::now();
    if let Some(chunk) = per_row {
        for c in bytes.chunks(chunk.max(1)) {
            f.write_all(c).ctx(|| "limit: write".into())?;
            f.sync_data().ctx(|| "limit: fdatasync".into())?;
        }
    } else {
        let mut last = Instant::now();
        for c in bytes.chunks(1 << 20) {
            f.write_all(c).ctx(|| "limit: write".into())?;
            if let Some(every) = sync_every {
                if last.elapsed() >= every {
                    f.sync_data().ctx(|| "limit: fdatasync".into())?;
                    last = Instant::now();
                }
            }
        }
        if sync_every.is_some() {
            f.sync_data().ctx(|| "limit: fdatasync".into())?;
        }
    }
    Ok(secs(t.elapsed()))
}

/// CRC32 of `bytes` from memory in 64 KiB chunks; returns seconds.
fn raw_crc_scan(bytes: &[u8]) -> f64 {
    let t = Instant::now();
    let mut acc = 0u32;
    for c in bytes.chunks(64 << 10) {
        acc ^= crc32fast::hash(black_box(c));
    }
    black_box(acc);
    secs(t.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

/// Histories built once and shared by the fork, replay, seek and memory workloads.
struct Fixtures {
    _dirs: Vec<tempfile::TempDir>,
    /// The forklog store holding run `h{n}` with `n` rows for each fork size.
    fl_dir: PathBuf,
    /// SQLite database and JSONL directory per history length (up to `alt_fork_max`).
    sq: BTreeMap<u64, PathBuf>,
    jl: BTreeMap<u64, PathBuf>,
    /// Rows of run `hbatch` in the forklog store, written by `log_batch` calls of `BATCH` rows.
    batched_rows: u64,
}

/// Rows per `log_batch` call of the imported history `hbatch`.
const BATCH: u64 = 4096;

fn fl_hist_id(n: u64) -> String {
    format!("h{}", size_label(n))
}

fn build_fixtures(cfg: &Cfg) -> R<Fixtures> {
    let keys = metric_keys();
    let fl_tmp = cfg.tempdir("hist-forklog")?;
    let fl_dir = fl_tmp.path().join("store");
    let batched_rows = cfg.fork_sizes.iter().copied().filter(|&n| n <= 1_000_000).max().unwrap_or(1_000);
    {
        let store = fl_open(&fl_dir, SyncPolicy::Never)?;
        for &n in &cfg.fork_sizes {
            fl_build_run(&store, &fl_hist_id(n), &keys, n)?;
        }
        let mut w = store.create_run("hbatch").ctx(|| "forklog: create run hbatch".into())?;
        fl_fill_batched(&mut w, &keys, 0, batched_rows, BATCH)?;
        w.sync().ctx(|| "forklog: sync hbatch".into())?;
    }
    let alt_tmp = cfg.tempdir("hist-alt")?;
    let mut sq = BTreeMap::new();
    let mut jl = BTreeMap::new();
    for &n in cfg.fork_sizes.iter().filter(|&&n| n <= cfg.alt_fork_max) {
        let p = alt_tmp.path().join(format!("sq{}.db", size_label(n)));
        sq_build(&p, n)?;
        sq.insert(n, p);
        let d = alt_tmp.path().join(format!("jl{}", size_label(n)));
        fs::create_dir_all(&d).ctx(|| "jsonl: mkdir".into())?;
        jl_append(&jl_path(&d, "h"), 0, n, JlSync::Never)?;
        jl.insert(n, d);
    }
    Ok(Fixtures { _dirs: vec![fl_tmp, alt_tmp], fl_dir, sq, jl, batched_rows })
}

/// Rows for the sync-on-every-row appends: `cfg.every_row_rows`, fewer when this disk's fsync is so
/// slow that one system's run would take longer than `cfg.every_row_budget` (at least 50 rows).
fn every_row_rows(cfg: &Cfg, probe: &[u8], per_row: usize) -> R<u64> {
    let tmp = cfg.tempdir("fsync-probe")?;
    let t = raw_write(&tmp.path().join("probe"), probe, Some(per_row), None)?;
    let latency = t / (probe.len() / per_row.max(1)).max(1) as f64;
    let fit = (cfg.every_row_budget.as_secs_f64() / latency.max(1e-6)) as u64;
    Ok(fit.clamp(cfg.every_row_rows.min(50), cfg.every_row_rows))
}

fn wl_append(cfg: &Cfg, rep: &mut Report) -> R<()> {
    let keys = metric_keys();
    let n = cfg.append_rows;
    // The same encoded bytes for the limit, and forklog's bytes per row.
    let enc_tmp = cfg.tempdir("enc")?;
    let enc_dir = enc_tmp.path().join("store");
    fl_append(&enc_dir, n, SyncPolicy::Never, &keys)?;
    let seg = fl_segment_bytes(&enc_dir, "run")?;
    let fl_bytes = dir_size(&enc_dir) as f64 / n as f64;

    let cases: [(&str, &str, SyncPolicy, SqCommit, JlSync); 3] = [
        ("never", "sync never", SyncPolicy::Never, SqCommit::Batch(10_000), JlSync::Never),
        (
            "100ms",
            "sync every 100 ms",
            SyncPolicy::EveryMillis(100),
            SqCommit::Every(Duration::from_millis(100)),
            JlSync::Every(Duration::from_millis(100)),
        ),
        ("row", "sync every row", SyncPolicy::Always, SqCommit::EachRow, JlSync::EachRow),
    ];
    let mut sq_bytes = None;
    let mut jl_bytes = None;
    for (id, label, pol, sqc, jls) in cases {
        let per_row = seg.len() / n as usize;
        let rows = if id == "row" { every_row_rows(cfg, &seg[..per_row * 20], per_row)? } else { n };
        let synchronous = if id == "never" { "NORMAL" } else { "FULL" };
        let lim_bytes = &seg[..(per_row * rows as usize).min(seg.len())];
        let (mut fl, mut sq, mut jl, mut lim) = (vec![], vec![], vec![], vec![]);
        let (mut fl_ref, mut fl_floats, mut fl_cols) = (vec![], vec![], vec![]);
        for r in 0..cfg.reps_heavy {
            let d = cfg.tempdir("append")?;
            fl.push(fl_append(&d.path().join("fl"), rows, pol, &keys)?);
            if id == "never" {
                fl_ref.push(fl_append_ref(&d.path().join("flref"), rows, &keys)?);
                fl_floats.push(fl_append_floats(&d.path().join("flfloats"), rows, &keys)?);
                fl_cols.push(fl_append_columns(&d.path().join("flcols"), rows, &keys)?);
            }
            let db = d.path().join("m.db");
            let conn = sq_open(&db, synchronous)?;
            sq.push(rows as f64 / sq_append(&conn, "run", 0, rows, sqc)?);
            let jp = d.path().join("run.jsonl");
            jl.push(rows as f64 / jl_append(&jp, 0, rows, jls)?);
            let lt = match id {
                "never" => raw_write(&d.path().join("raw"), lim_bytes, None, None)?,
                "100ms" => raw_write(&d.path().join("raw"), lim_bytes, None, Some(Duration::from_millis(100)))?,
                _ => raw_write(&d.path().join("raw"), lim_bytes, Some(per_row), None)?,
            };
            lim.push(rows as f64 / lt);
            if id == "never" && r == 0 {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .ctx(|| "sqlite: checkpoint".into())?;
                sq_bytes = Some(sq_files_size(&db) as f64 / rows as f64);
                jl_bytes = Some(fs::metadata(&jp).map(|m| m.len()).unwrap_or(0) as f64 / rows as f64);
            }
        }
        let mut rec =
            Rec::new(format!("append.{id}"), format!("append, {label} ({} rows)", size_label(rows)), Unit::RowsPerSec);
        rec.forklog = Some(median(fl));
        rec.sqlite = Some(median(sq));
        rec.jsonl = Some(median(jl));
        rec.limit = Some(median(lim));
        if !fl_ref.is_empty() {
            // The other write paths, measured in the same repetitions (same SQLite/JSONL/limit runs).
            let rows = size_label(rows);
            let r2 = rec.sibling(
                format!("append.{id}.ref"),
                format!("append, {label}, log_ref with one map reused ({rows} rows; same other columns)"),
                median(fl_ref),
            );
            let r3 = rec.sibling(
                format!("append.{id}.floats"),
                format!("append, {label}, log_floats: a (key, f64) slice per row ({rows} rows; same other columns)"),
                median(fl_floats),
            );
            let r4 = rec.sibling(
                format!("append.{id}.columns"),
                format!("append, {label}, log_columns in batches of 16,384 rows ({rows} rows; same other columns)"),
                median(fl_cols),
            );
            rep.recs.extend([rec, r2, r3, r4]);
        } else {
            rep.recs.push(rec);
        }
    }
    // The same append with the Metrics maps built in the timed loop (what a caller pays in all).
    let mut fl = vec![];
    for _ in 0..cfg.reps_heavy {
        let d = cfg.tempdir("append-maps")?;
        fl.push(fl_append_with_maps(&d.path().join("fl"), n, &keys)?);
    }
    let mut rec = Rec::new(
        "append.never.with_maps",
        format!("append, sync never, Metrics map built per row ({})", size_label(n)),
        Unit::RowsPerSec,
    );
    rec.forklog = Some(median(fl));
    rep.recs.push(rec);

    // What the per-row API shape alone costs: building and dropping one `Metrics` map per row
    // (every `log` call consumes one, every replayed `LogRow` carries one). No I/O.
    let mut floor = vec![];
    for _ in 0..cfg.reps_heavy {
        let t = Instant::now();
        for st in 0..n {
            drop(black_box(to_metrics(&keys, &row(st))));
        }
        floor.push(n as f64 / secs(t.elapsed()));
    }
    let mut rec = Rec::new(
        "api_floor.map",
        "per-row API floor: build + drop one 5-float Metrics map, no I/O (limit column)",
        Unit::RowsPerSec,
    );
    rec.limit = Some(median(floor));
    rep.recs.push(rec);

    let mut rec = Rec::new("bytes_per_row", "bytes on disk per row", Unit::Bytes);
    rec.forklog = Some(fl_bytes);
    rec.sqlite = sq_bytes;
    rec.jsonl = jl_bytes;
    rec.limit = Some(seg.len() as f64 / n as f64);
    rep.recs.push(rec);
    Ok(())
}

fn wl_fork(cfg: &Cfg, fx: &Fixtures, rep: &mut Report) -> R<()> {
    // The limit, the minimal (durable) file create, is measured interleaved with the forks, next to
    // the store on the same file system, so drift in file-system latency hits both alike.
    let lim_dir = fx.fl_dir.parent().ok_or("the store has no parent directory")?.join("limit");
    fs::create_dir_all(&lim_dir).ctx(|| format!("create {}", lim_dir.display()))?;
    let mut creates = 0u64;
    let mut create = |durable: bool| -> R<f64> {
        creates += 1;
        let t = Instant::now();
        minimal_create(&lim_dir, &format!("c{creates}"), durable)?;
        Ok(secs(t.elapsed()))
    };
    create(false)?;
    create(true)?;

    for durable in [false, true] {
        let (tag, label, pol) =
            if durable { ("durable", "durable", SyncPolicy::Always) } else { ("never", "no sync", SyncPolicy::Never) };
        let store = fl_open(&fx.fl_dir, pol)?;
        // (record id, workload, parent run, fork step): every history length, plus (no sync) the
        // history imported with big `log_batch` calls, whose frames are one batch each.
        let mut points: Vec<(String, String, String, u64)> = cfg
            .fork_sizes
            .iter()
            .map(|&n| {
                let workload = format!("fork at mid-history, {label}, history {}", size_label(n));
                (format!("fork.{tag}.{n}"), workload, fl_hist_id(n), n / 2)
            })
            .collect();
        if !durable {
            let n = fx.batched_rows;
            let workload =
                format!("fork at mid-history, no sync, history {} written by log_batch({BATCH})", size_label(n));
            points.push(("fork.never.batched".into(), workload, "hbatch".into(), n / 2));
        }
        // One warm-up fork per parent (first touch of its files), then rounds over all the points, so
        // drift in file-system latency hits every history length alike; each fork is followed by a
        // minimal create, its limit.
        for (k, (_, _, parent, step)) in points.iter().enumerate() {
            fl_fork(&store, &format!("f{tag}w{k}"), parent, *step)?;
        }
        let (mut fl, mut lim) = (vec![vec![]; points.len()], vec![vec![]; points.len()]);
        let start = Instant::now();
        let mut round = 0;
        while cfg.more(round, start) {
            for (k, (_, _, parent, step)) in points.iter().enumerate() {
                fl[k].push(fl_fork(&store, &format!("f{tag}{k}_{round}"), parent, *step)?);
                lim[k].push(create(durable)?);
            }
            round += 1;
        }
        for (k, (id, workload, _, step)) in points.into_iter().enumerate() {
            let mut rec = Rec::new(id, workload, Unit::Secs);
            rec.forklog = Some(median(std::mem::take(&mut fl[k])));
            rec.limit = Some(median(std::mem::take(&mut lim[k])));
            let n = step * 2;
            if let Some(db) = fx.sq.get(&n).filter(|_| rec.id != "fork.never.batched") {
                let conn = sq_open(db, if durable { "FULL" } else { "NORMAL" })?;
                let mut v = vec![];
                for i in 0..cfg.reps_heavy {
                    v.push(sq_fork(&conn, &format!("f{tag}{i}"), "h", step)?);
                }
                rec.sqlite = Some(median(v));
            }
            if let Some(d) = fx.jl.get(&n).filter(|_| rec.id != "fork.never.batched") {
                let mut v = vec![];
                for i in 0..cfg.reps_heavy {
                    v.push(jl_fork(d, &format!("f{tag}{i}"), "h", step, durable)?);
                }
                rec.jsonl = Some(median(v));
            }
            rep.recs.push(rec);
        }
    }
    Ok(())
}

fn wl_chain(cfg: &Cfg, rep: &mut Report) -> R<()> {
    let keys = metric_keys();
    let tmp = cfg.tempdir("chain")?;
    let root_n = cfg.chain_root_rows;
    let add = cfg.chain_rows_per_fork;
    let depth = cfg.chain_depth;

    let store = fl_open(&tmp.path().join("store"), SyncPolicy::Never)?;
    fl_build_run(&store, "c0", &keys, root_n)?;
    let conn = sq_build(&tmp.path().join("chain.db"), root_n)?;
    let jd = tmp.path().join("jl");
    fs::create_dir_all(&jd).ctx(|| "jsonl: mkdir".into())?;
    jl_append(&jl_path(&jd, "c0"), 0, root_n, JlSync::Never)?;
    // Rename SQLite's root to c0 so every system uses the same ids.
    conn.execute("UPDATE metrics SET run = 'c0' WHERE run = 'h'", []).ctx(|| "sqlite: rename root".into())?;

    let (mut fl, mut sq, mut jl) = (vec![], vec![], vec![]);
    // A warm-up fork, so the first timed fork of the chain is not the store's first.
    fl_fork(&store, "cw", "c0", root_n / 2)?;
    let mut last = root_n - 1;
    for i in 1..=depth {
        let (parent, id) = (format!("c{}", i - 1), format!("c{i}"));
        fl.push(fl_fork(&store, &id, &parent, last)?);
        sq.push(sq_fork(&conn, &id, &parent, last)?);
        jl.push(jl_fork(&jd, &id, &parent, last, false)?);
        // Each fork then logs its own rows (untimed).
        let mut w = store.resume(&id).ctx(|| format!("forklog: resume {id}"))?;
        fl_fill(&mut w, &keys, last + 1, add)?;
        drop(w);
        sq_append(&conn, &id, last + 1, add, SqCommit::Batch(10_000))?;
        jl_append(&jl_path(&jd, &id), last + 1, add, JlSync::Never)?;
        last += add;
    }
    let first_fl = fl[0];
    let last_fl = *fl.last().expect("chain has forks");
    let mut rec = Rec::new(
        "fork.chain",
        format!("fork-of-fork chain, depth {depth}, no sync: time per fork (root {})", size_label(root_n)),
        Unit::Secs,
    );
    rec.forklog = Some(median(fl));
    rec.sqlite = Some(median(sq));
    rec.jsonl = Some(median(jl));
    rec.extra.push(("forklog_deepest_over_first".into(), last_fl / first_fl));
    rep.recs.push(rec);
    Ok(())
}

fn wl_replay_seek(cfg: &Cfg, fx: &Fixtures, rep: &mut Report) -> R<()> {
    let store = fl_open(&fx.fl_dir, SyncPolicy::Never)?;
    // Full replay, on the largest history every system has.
    let n = *fx.sq.keys().last().ok_or("no SQLite history fixture")?;
    let run = fl_hist_id(n);
    let (mut fl, mut sq, mut jl, mut lim) = (vec![], vec![], vec![], vec![]);
    let (mut fl_rows, mut fl_cols, mut fl_scan) = (vec![], vec![], vec![]);
    let seg = fl_segment_bytes(&fx.fl_dir, &run)?;
    let conn = sq_open(&fx.sq[&n], "NORMAL")?;
    for _ in 0..cfg.reps_heavy {
        let (rows, t) = fl_replay(&store, &run)?;
        if rows != n {
            return Err(format!("forklog: replay of {run} returned {rows} rows, expected {n}").into());
        }
        fl.push(rows as f64 / t);
        let (rows, t) = fl_replay_rows(&store, &run)?;
        if rows != n {
            return Err(format!("forklog: for_each_row over {run} saw {rows} rows, expected {n}").into());
        }
        fl_rows.push(rows as f64 / t);
        let (rows, t) = fl_replay_columns(&store, &run)?;
        if rows != n {
            return Err(format!("forklog: columns of {run} had {rows} rows, expected {n}").into());
        }
        fl_cols.push(rows as f64 / t);
        let (rows, t) = fl_replay_scan(&store, &run)?;
        if rows != n {
            return Err(format!("forklog: scan_columns of {run} had {rows} rows, expected {n}").into());
        }
        fl_scan.push(rows as f64 / t);
        let (rows, t) = sq_replay(&conn, "h")?;
        sq.push(rows as f64 / t);
        let (rows, t) = jl_replay(&fx.jl[&n], "h")?;
        jl.push(rows as f64 / t);
        lim.push(n as f64 / raw_crc_scan(&seg));
    }
    let mut rec = Rec::new("replay.full", format!("full replay, history {}", size_label(n)), Unit::RowsPerSec);
    rec.forklog = Some(median(fl));
    rec.sqlite = Some(median(sq));
    rec.jsonl = Some(median(jl));
    rec.limit = Some(median(lim));
    let size = size_label(n);
    let r2 = rec.sibling(
        "replay.full.rows",
        format!("full replay, for_each_row (borrowed rows), history {size}; same other columns"),
        median(fl_rows),
    );
    let r3 = rec.sibling(
        "replay.full.columns",
        format!("full replay, Store::columns (one vector per metric), history {size}; same other columns"),
        median(fl_cols),
    );
    let r4 = rec.sibling(
        "replay.full.scan",
        format!("full replay, Store::scan_columns (chunks of about 1k rows), history {size}; same other columns"),
        median(fl_scan),
    );
    rep.recs.extend([rec, r2, r3, r4]);

    // forklog alone on its largest history.
    let big = cfg.max_size();
    if big > n {
        let run = fl_hist_id(big);
        let seg = fl_segment_bytes(&fx.fl_dir, &run)?;
        let (mut fl, mut lim) = (vec![], vec![]);
        for _ in 0..cfg.reps_heavy.min(3) {
            let (rows, t) = fl_replay(&store, &run)?;
            fl.push(rows as f64 / t);
            lim.push(big as f64 / raw_crc_scan(&seg));
        }
        let mut rec =
            Rec::new("replay.full.largest", format!("full replay, history {}", size_label(big)), Unit::RowsPerSec);
        rec.forklog = Some(median(fl));
        rec.limit = Some(median(lim));
        rep.recs.push(rec);
    }

    // Seek: time to the first row from the middle vs from step 0 (alternating, medians).
    for (size, with_alts) in [(n, true), (big, false)] {
        if !with_alts && size == n {
            continue;
        }
        let run = fl_hist_id(size);
        let mid = size / 2;
        let (mut f0, mut fm, mut s0, mut sm, mut j0, mut jm) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        fl_seek(&store, &run, 0)?; // warm-up
        let start = Instant::now();
        while cfg.more(f0.len(), start) {
            f0.push(fl_seek(&store, &run, 0)?);
            fm.push(fl_seek(&store, &run, mid)?);
            if with_alts {
                s0.push(sq_seek(&conn, "h", 0)?);
                sm.push(sq_seek(&conn, "h", mid)?);
            }
        }
        if with_alts {
            for _ in 0..cfg.reps_heavy {
                j0.push(jl_seek(&fx.jl[&n], "h", 0)?);
                jm.push(jl_seek(&fx.jl[&n], "h", mid)?);
            }
        }
        let opt_median = |v: Vec<f64>| (!v.is_empty()).then(|| median(v));
        let (fl0, flm) = (median(f0), median(fm));
        let mut r0 = Rec::new(
            format!("seek.{size}.zero"),
            format!("seek: first row from step 0, history {}", size_label(size)),
            Unit::Secs,
        );
        r0.forklog = Some(fl0);
        r0.sqlite = opt_median(s0);
        r0.jsonl = opt_median(j0);
        let mut rm = Rec::new(
            format!("seek.{size}.mid"),
            format!("seek: first row from the middle step, history {}", size_label(size)),
            Unit::Secs,
        );
        rm.forklog = Some(flm);
        rm.sqlite = opt_median(sm);
        rm.jsonl = opt_median(jm);
        rm.extra.push(("forklog_mid_over_zero".into(), flm / fl0));
        rep.recs.push(r0);
        rep.recs.push(rm);
    }
    Ok(())
}

fn wl_depth(cfg: &Cfg, rep: &mut Report) -> R<()> {
    let keys = metric_keys();
    let tmp = cfg.tempdir("depth")?;
    let total = cfg.depth_total_rows;
    let store = fl_open(&tmp.path().join("store"), SyncPolicy::Never)?;
    fl_build_run(&store, "flat", &keys, total)?;
    let depths = [1usize, 10, 100];
    let mut leaves = vec![];
    for &d in &depths {
        let pieces = d as u64 + 1;
        let per = total / pieces;
        if per * pieces != total {
            return Err(format!("depth {d}: {total} rows do not split into {pieces} pieces").into());
        }
        let root = format!("d{d}_0");
        fl_build_run(&store, &root, &keys, per)?;
        for i in 1..=d {
            let (parent, id) = (format!("d{d}_{}", i - 1), format!("d{d}_{i}"));
            let first = per * i as u64;
            let mut w =
                store.fork(&id, &ForkPoint::new(parent.as_str(), first - 1)).ctx(|| format!("forklog: fork {id}"))?;
            fl_fill(&mut w, &keys, first, per)?;
            w.sync().ctx(|| "forklog: sync".into())?;
        }
        leaves.push(format!("d{d}_{d}"));
    }
    // Interleave the measurements so drift hits all alike.
    let mut flat = vec![];
    let mut by_depth: Vec<Vec<f64>> = vec![vec![]; depths.len()];
    fl_replay(&store, "flat")?;
    for _ in 0..cfg.reps_heavy.max(5) {
        let (rows, t) = fl_replay(&store, "flat")?;
        if rows != total {
            return Err(format!("flat replay returned {rows} rows, expected {total}").into());
        }
        flat.push(t);
        for (k, leaf) in leaves.iter().enumerate() {
            let (rows, t) = fl_replay(&store, leaf)?;
            if rows != total {
                return Err(format!("replay of {leaf} returned {rows} rows, expected {total}").into());
            }
            by_depth[k].push(t);
        }
    }
    let flat = median(flat);
    let mut rec =
        Rec::new("replay.depth.0", format!("replay, flat run ({} rows)", size_label(total)), Unit::RowsPerSec);
    rec.forklog = Some(total as f64 / flat);
    rep.recs.push(rec);
    for (k, &d) in depths.iter().enumerate() {
        let t = median(std::mem::take(&mut by_depth[k]));
        let mut rec = Rec::new(
            format!("replay.depth.{d}"),
            format!("replay, fork depth {d} (same {} rows)", size_label(total)),
            Unit::RowsPerSec,
        );
        rec.forklog = Some(total as f64 / t);
        rec.extra.push(("time_over_flat".into(), t / flat));
        rep.recs.push(rec);
    }
    Ok(())
}

fn wl_open(cfg: &Cfg, rep: &mut Report) -> R<()> {
    let keys = metric_keys();
    let tmp = cfg.tempdir("open")?;
    let dir = tmp.path().join("store");
    let ids: Vec<String> = (0..cfg.open_runs).map(|r| format!("r{r:06}")).collect();
    // Medians of `Store::open` (after a warm-up), and an untimed check that the store still holds
    // every run: `open` reads nothing but the store file, so it would not notice a store emptied
    // under it.
    let measure = || -> R<f64> {
        drop(Store::open(&dir).ctx(|| "forklog: open".into())?);
        let (mut v, start) = (vec![], Instant::now());
        while cfg.more(v.len(), start) {
            let t = Instant::now();
            let s = Store::open(&dir).ctx(|| format!("forklog: open {}", dir.display()))?;
            v.push(secs(t.elapsed()));
            drop(s);
        }
        let n = Store::open(&dir).and_then(|s| s.runs()).ctx(|| "forklog: list runs".into())?.len();
        if n as u64 != cfg.open_runs {
            return Err(format!("{} holds {n} runs, expected {}", dir.display(), cfg.open_runs).into());
        }
        Ok(median(v))
    };
    // The same runs, first with `open_rows_small` rows each, then grown to `open_rows_big` by
    // resuming each one. Frame layout does not matter to `open`: one batch per run and phase.
    {
        let store = fl_open(&dir, SyncPolicy::Never)?;
        for id in &ids {
            let mut w = store.create_run(id).ctx(|| format!("forklog: create {id}"))?;
            fl_fill_batched(&mut w, &keys, 0, cfg.open_rows_small, cfg.open_rows_small)?;
        }
    }
    let small = measure()?;
    {
        let store = fl_open(&dir, SyncPolicy::Never)?;
        let more = cfg.open_rows_big - cfg.open_rows_small;
        for id in &ids {
            let mut w = store.resume(id).ctx(|| format!("forklog: resume {id}"))?;
            fl_fill_batched(&mut w, &keys, cfg.open_rows_small, more, more)?;
        }
    }
    let big = measure()?;
    let runs = size_label(cfg.open_runs);
    let mut r1 =
        Rec::new("open.small", format!("open a store of {runs} runs x {} rows", cfg.open_rows_small), Unit::Secs);
    r1.forklog = Some(small);
    let mut r2 = Rec::new("open.big", format!("open a store of {runs} runs x {} rows", cfg.open_rows_big), Unit::Secs);
    r2.forklog = Some(big);
    r2.extra.push(("big_over_small".into(), big / small));
    rep.recs.push(r1);
    rep.recs.push(r2);
    Ok(())
}

/// `log` latency under `SyncPolicy::EveryMillis(5)` (the syncer fsyncs every few milliseconds), without and
/// then with a thread of the same process looping on `history` of the run being written: the p50 and p99 of
/// single `log` calls, and the ratio of the p99s measured in the same run. Readers take a copy of the writer's
/// buffer and fsyncs happen outside the writer's lock, so the reader should cost the writer little.
fn wl_latency(cfg: &Cfg, rep: &mut Report) -> R<()> {
    let keys = metric_keys();
    let n: u64 = match cfg.mode {
        Mode::Smoke => 2_000,
        Mode::Quick => 20_000,
        Mode::Full => 100_000,
    };
    let tmp = cfg.tempdir("latency")?;
    let dir = tmp.path().join("store");
    let store = fl_open(&dir, SyncPolicy::EveryMillis(5))?;
    let pct = |mut v: Vec<f64>, p: f64| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let measure = |id: &str, reader: bool| -> R<(f64, f64, u64)> {
        let mut w = store.create_run(id).ctx(|| format!("forklog: create {id}"))?;
        // Some history for the reader to replay from the start.
        fl_fill(&mut w, &keys, 0, 10_000)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let replays = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handle = reader.then(|| {
            let (store, stop, replays, id) = (store.clone(), stop.clone(), replays.clone(), id.to_string());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(h) = store.history(&id) {
                        std::hint::black_box(h.count());
                        replays.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        });
        let mut lat = Vec::with_capacity(n as usize);
        // At least `n` calls, and with the reader at least 50 of its replays overlapping them.
        let mut i = 0;
        while i < n || (reader && replays.load(std::sync::atomic::Ordering::Relaxed) < 50 && i < 100 * n) {
            let m = to_metrics(&keys, &row(10_000 + i));
            let t = Instant::now();
            w.log(m).ctx(|| format!("forklog: log {id}"))?;
            lat.push(secs(t.elapsed()));
            i += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = handle {
            h.join().map_err(|_| "reader thread panicked".to_string())?;
        }
        w.finish(0).ctx(|| format!("forklog: finish {id}"))?;
        Ok((pct(lat.clone(), 0.5), pct(lat, 0.99), replays.load(std::sync::atomic::Ordering::Relaxed)))
    };
    let (p50, p99, _) = measure("alone", false)?;
    let (p50r, p99r, replays) = measure("read", true)?;
    if replays == 0 {
        return Err("the reader thread replayed nothing".into());
    }
    let mut alone = Rec::new(
        "log_latency.p99",
        format!("log p99 latency, EveryMillis(5), {n} rows (p50 {:.2} µs)", p50 * 1e6),
        Unit::Secs,
    );
    alone.forklog = Some(p99);
    let mut read = Rec::new(
        "log_latency.p99_reader",
        format!("log p99 latency with a reader looping on history ({replays} replays)"),
        Unit::Secs,
    );
    read.forklog = Some(p99r);
    read.extra.push(("p50_s".into(), p50r));
    read.extra.push(("p99_over_alone".into(), p99r / p99));
    rep.recs.push(alone);
    rep.recs.push(read);
    Ok(())
}

/// Peak memory of a child process replaying `run`: (rows, VmHWM KiB, max sampled RssAnon KiB).
fn rss_child(dir: &Path, run: &str) -> R<(u64, u64, u64)> {
    let exe = std::env::current_exe().ctx(|| "current_exe".into())?;
    let out = Command::new(exe).arg("--replay-child").arg(dir).arg(run).output().ctx(|| "spawn replay child".into())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "replay child failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let field = |name: &str| -> Option<u64> {
        stdout.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    match (field("rows"), field("vmhwm_kib"), field("rssanon_max_kib")) {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(format!("replay child printed no measurement: {stdout}").into()),
    }
}

/// `compare --replay-child DIR RUN`: replays RUN and prints its peak memory.
fn replay_child(dir: &str, run: &str) -> R<()> {
    let store = Store::open(dir).ctx(|| format!("forklog: open {dir}"))?;
    let mut rows = 0u64;
    let mut anon = self_status("RssAnon").unwrap_or(0);
    let mut acc = 0u64;
    for r in store.history(run).ctx(|| format!("forklog: history {run}"))? {
        let r = r.ctx(|| "forklog: replay".into())?;
        acc = acc.wrapping_add(r.step);
        rows += 1;
        if rows.is_multiple_of(65_536) {
            anon = anon.max(self_status("RssAnon").unwrap_or(0));
        }
    }
    black_box(acc);
    anon = anon.max(self_status("RssAnon").unwrap_or(0));
    let hwm = self_status("VmHWM").ok_or("no VmHWM in /proc/self/status")?;
    println!("rows={rows} vmhwm_kib={hwm} rssanon_max_kib={anon}");
    Ok(())
}

fn wl_rss(cfg: &Cfg, fx: &Fixtures, rep: &mut Report) -> R<()> {
    if self_status("VmHWM").is_none() {
        return Err("peak RSS: /proc/self/status has no VmHWM on this system".into());
    }
    let big = cfg.max_size();
    let small = big / 10;
    if !cfg.fork_sizes.contains(&small) {
        return Err(format!("peak RSS: no history of {small} rows to compare with").into());
    }
    let mut res = vec![];
    for n in [small, big] {
        let (rows, hwm, anon) = rss_child(&fx.fl_dir, &fl_hist_id(n))?;
        if rows != n {
            return Err(format!("replay child returned {rows} rows, expected {n}").into());
        }
        res.push((hwm, anon));
    }
    let mut r1 = Rec::new("rss.small", format!("peak RSS (VmHWM) replaying {} rows", size_label(small)), Unit::KiB);
    r1.forklog = Some(res[0].0 as f64);
    let mut r2 = Rec::new("rss.big", format!("peak RSS (VmHWM) replaying {} rows", size_label(big)), Unit::KiB);
    r2.forklog = Some(res[1].0 as f64);
    r2.extra.push(("big_over_small".into(), res[1].0 as f64 / res[0].0 as f64));
    let mut r3 =
        Rec::new("rss.anon.small", format!("peak anonymous RSS replaying {} rows", size_label(small)), Unit::KiB);
    r3.forklog = Some(res[0].1 as f64);
    let mut r4 = Rec::new("rss.anon.big", format!("peak anonymous RSS replaying {} rows", size_label(big)), Unit::KiB);
    r4.forklog = Some(res[1].1 as f64);
    r4.extra.push(("big_over_small".into(), res[1].1 as f64 / res[0].1.max(1) as f64));
    rep.recs.extend([r1, r2, r3, r4]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Issue 12: the reads a tracker UI does all day (summary, runs table, downsampled charts)
// ---------------------------------------------------------------------------------------------

/// Runs and rows per run of the runs-table workload (SQLite: at most 1,000 rows per run).
fn ui_table_size(cfg: &Cfg) -> (u64, u64) {
    match cfg.mode {
        Mode::Smoke => (20, 100),
        Mode::Quick => (300, 1_000),
        Mode::Full => (10_000, 10_000),
    }
}

/// Median seconds of `f` over the light repetitions (after one warm-up call).
fn time_light(cfg: &Cfg, mut f: impl FnMut() -> R<()>) -> R<f64> {
    f()?;
    let (mut v, start) = (vec![], Instant::now());
    while cfg.more(v.len(), start) {
        let t = Instant::now();
        f()?;
        v.push(secs(t.elapsed()));
    }
    Ok(median(v))
}

/// SQLite's summary of run `h`: the last non-null value of each metric (`ORDER BY step DESC LIMIT 1` on the
/// (run, step) primary key).
fn sq_summary(conn: &Connection, run: &str) -> R<usize> {
    let mut n = 0;
    for k in METRIC_NAMES {
        let q = format!("SELECT {k} FROM metrics WHERE run = ?1 AND {k} IS NOT NULL ORDER BY step DESC LIMIT 1");
        let mut st = conn.prepare_cached(&q).ctx(|| "sqlite: prepare summary".into())?;
        let v: Option<f64> = st.query_row(params![run], |r| r.get(0)).ok();
        n += usize::from(v.is_some());
    }
    Ok(n)
}

/// SQLite's downsampling of `loss` into `buckets` buckets: `GROUP BY step * buckets / span` with count, min,
/// max and the first and last step (not the steps of the min and max, which need more queries).
fn sq_m4(conn: &Connection, run: &str, buckets: u64, span: u64) -> R<usize> {
    let q = "SELECT (step * ?2) / ?3 AS b, COUNT(loss), MIN(loss), MAX(loss), MIN(step), MAX(step) \
             FROM metrics WHERE run = ?1 GROUP BY b ORDER BY b";
    let mut st = conn.prepare_cached(q).ctx(|| "sqlite: prepare m4".into())?;
    let rows =
        st.query_map(params![run, buckets as i64, span as i64], |r| r.get::<_, i64>(1)).ctx(|| "sqlite: m4".into())?;
    let mut n = 0;
    for r in rows {
        black_box(r.ctx(|| "sqlite: m4 row".into())?);
        n += 1;
    }
    Ok(n)
}

fn wl_ui(cfg: &Cfg, fx: &Fixtures, rep: &mut Report) -> R<()> {
    let store = fl_open(&fx.fl_dir, SyncPolicy::Never)?;
    // Summary at every history length: O(1) of the length through the snapshots.
    for &n in &cfg.fork_sizes {
        let run = fl_hist_id(n);
        let t = time_light(cfg, || {
            let s = store.summary(&run).ctx(|| format!("forklog: summary {run}"))?;
            if s.len() != METRIC_NAMES.len() {
                return Err(format!("forklog: summary of {run} has {} keys", s.len()).into());
            }
            Ok(())
        })?;
        let mut rec =
            Rec::new(format!("summary.{n}"), format!("summary of a run, history {}", size_label(n)), Unit::Secs);
        rec.forklog = Some(t);
        if let Some(p) = fx.sq.get(&n) {
            let conn = sq_open(p, "NORMAL")?;
            rec.sqlite = Some(time_light(cfg, || sq_summary(&conn, "h").map(|_| ()))?);
        }
        if n == *fx.sq.keys().last().unwrap_or(&0) {
            // The replay the snapshots replace (once: it is slow by design).
            let t = Instant::now();
            black_box(store.summary_by_replay(&run).ctx(|| "forklog: summary by replay".into())?);
            rec.extra.push(("by_replay".into(), secs(t.elapsed())));
        }
        rep.recs.push(rec);
    }
    // Sample 1,000 buckets against a full replay (scan_columns), at the largest history and at the largest
    // one SQLite has.
    let mut sizes = vec![cfg.max_size()];
    if let Some(&n) = fx.sq.keys().last() {
        if n != cfg.max_size() {
            sizes.push(n);
        }
    }
    for n in sizes {
        let run = fl_hist_id(n);
        let none: [&str; 0] = [];
        let t = time_light(cfg, || {
            let s = store.sample(&run, &none, 1000, None, None).ctx(|| format!("forklog: sample {run}"))?;
            if s.series.len() != METRIC_NAMES.len() {
                return Err(format!("forklog: sample of {run} has {} series", s.series.len()).into());
            }
            Ok(())
        })?;
        let mut full = vec![];
        for _ in 0..cfg.reps_heavy {
            let (rows, t) = fl_replay_scan(&store, &run)?;
            if rows != n {
                return Err(format!("forklog: scan_columns of {run} had {rows} rows").into());
            }
            full.push(t);
        }
        let full = median(full);
        let mut rec = Rec::new(
            format!("sample.{n}"),
            format!("sample 1,000 buckets x 5 metrics (exact M4), history {}", size_label(n)),
            Unit::Secs,
        );
        rec.forklog = Some(t);
        rec.extra.push(("full_replay".into(), full));
        rec.extra.push(("over_full_replay".into(), t / full));
        if let Some(p) = fx.sq.get(&n) {
            let conn = sq_open(p, "NORMAL")?;
            rec.sqlite = Some(time_light(cfg, || sq_m4(&conn, "h", 1000, n).map(|_| ()))?);
        }
        rep.recs.push(rec);
    }
    // The runs table: R runs of M rows (two metrics, written with log_columns, each run closed durably).
    let (runs, rows) = ui_table_size(cfg);
    let tmp = cfg.tempdir("runs-table")?;
    let dir = tmp.path().join("store");
    {
        let store = fl_open(&dir, SyncPolicy::Never)?;
        let steps: Vec<u64> = (0..rows).collect();
        let loss: Vec<f64> = steps.iter().map(|s| 1.0 / (*s as f64 + 1.0)).collect();
        let acc: Vec<f64> = steps.iter().map(|s| *s as f64 / rows as f64).collect();
        for r in 0..runs {
            let id = format!("r{r:06}");
            let mut w = store.create_run(&id).ctx(|| format!("forklog: create {id}"))?;
            w.log_columns(&steps, &[("loss", &loss), ("acc", &acc)]).ctx(|| "forklog: log_columns".into())?;
            w.sync().ctx(|| "forklog: sync".into())?;
        }
    }
    let store = Store::open(&dir).ctx(|| "forklog: open".into())?;
    let none: [&str; 0] = [];
    let t = time_light(cfg, || {
        let table = store.runs_table(&none).ctx(|| "forklog: runs_table".into())?;
        if table.len() as u64 != runs || table.iter().any(|r| r.summary.len() != 2) {
            return Err("forklog: runs table incomplete".into());
        }
        Ok(())
    })?;
    let mut rec = Rec::new(
        "runs_table",
        format!("runs table (every run with its summary), {} runs x {} rows", size_label(runs), size_label(rows)),
        Unit::Secs,
    );
    rec.forklog = Some(t);
    // SQLite: the same runs with at most 1,000 rows each; per run and metric, ORDER BY step DESC LIMIT 1.
    let sq_rows = rows.min(1_000);
    let p = tmp.path().join("runs.db");
    let conn = sq_open(&p, "OFF")?;
    conn.execute_batch("BEGIN").ctx(|| "sqlite: BEGIN".into())?;
    {
        let mut st = conn.prepare_cached(SQL_INSERT).ctx(|| "sqlite: prepare insert".into())?;
        for r in 0..runs {
            let id = format!("r{r:06}");
            for s in 0..sq_rows {
                sq_insert(&mut st, &id, &row(s))?;
            }
        }
    }
    conn.execute_batch("COMMIT").ctx(|| "sqlite: COMMIT".into())?;
    let ids: Vec<String> = (0..runs).map(|r| format!("r{r:06}")).collect();
    let sq_t = time_light(cfg, || {
        for id in &ids {
            black_box(sq_summary(&conn, id)?);
        }
        Ok(())
    })?;
    rec.sqlite = Some(sq_t);
    rec.extra.push(("sqlite_rows_per_run".into(), sq_rows as f64));
    rep.recs.push(rec);
    Ok(())
}

fn targets(cfg: &Cfg, rep: &mut Report) {
    let r = rep.val("log_latency.p99_reader", "p99_over_alone");
    rep.target("log p99 with a reader looping on history / without (EveryMillis)", r, true, 2.0, "");
    let big = cfg.max_size();
    let small = cfg.fork_sizes[0];
    let (bl, sl) = (size_label(big), size_label(small));
    let small_note = if cfg.mode == Mode::Full { "" } else { "smaller sizes than the full run" };
    for (tag, label) in [("never", "no sync"), ("durable", "durable")] {
        let r = rep
            .val(&format!("fork.{tag}.{big}"), "forklog")
            .zip(rep.val(&format!("fork.{tag}.{small}"), "forklog"))
            .map(|(a, b)| a / b);
        rep.target(
            &format!("fork cost flat in history ({label}): fork@{bl} / fork@{sl}"),
            r,
            true,
            1.5,
            if big < 10_000_000 { "largest history in this mode is smaller than 10M" } else { "" },
        );
    }
    // Issue 12: summary flat in history, sample vs full replay, runs table.
    {
        let r = rep.val(&format!("summary.{big}"), "forklog").zip(rep.val(&format!("summary.{small}"), "forklog"));
        rep.target(
            &format!("summary cost flat in history: summary@{bl} / summary@{sl}"),
            r.map(|(a, b)| a / b),
            true,
            2.0,
            if big < 10_000_000 { "largest history in this mode is smaller than 10M" } else { "" },
        );
        rep.target(
            &format!("sample 1,000 buckets@{bl} / full replay (scan_columns)@{bl}"),
            rep.val(&format!("sample.{big}"), "over_full_replay"),
            true,
            0.05,
            if big < 10_000_000 { "largest history in this mode is smaller than 10M" } else { "" },
        );
        let (runs, rows) = ui_table_size(cfg);
        rep.target(
            &format!("runs table of {} runs x {} rows, seconds", size_label(runs), size_label(rows)),
            rep.val("runs_table", "forklog"),
            true,
            1.0,
            if runs < 10_000 { "smaller than 10k x 10k in this mode" } else { "" },
        );
    }
    // Fork at 1M against the copy-forks: only where the copy-forks ran at 1M (the full run);
    // nothing is extrapolated. A smaller run reports what it measured at its largest size.
    for (tag, label) in [("never", "no sync"), ("durable", "durable")] {
        for who in ["sqlite", "jsonl"] {
            let ratio_at = |n: u64| {
                let id = format!("fork.{tag}.{n}");
                rep.val(&id, who).zip(rep.val(&id, "forklog")).map(|(o, f)| o / f)
            };
            let r = ratio_at(1_000_000);
            let note = match (r, ratio_at(cfg.alt_fork_max)) {
                (None, Some(smaller)) => {
                    format!("not run at 1M in this mode; at {}: {}", size_label(cfg.alt_fork_max), fmt_ratio(smaller))
                }
                _ => String::new(),
            };
            rep.target(
                &format!("fork@1M ({label}): {who} copy-fork time / forklog fork time"),
                r,
                false,
                1000.0,
                &note,
            );
        }
    }
    let fork_1m = if cfg.fork_sizes.contains(&1_000_000) { 1_000_000 } else { big };
    let id = format!("fork.durable.{fork_1m}");
    let r = rep.val(&id, "forklog").zip(rep.val(&id, "limit")).map(|(f, l)| f / l);
    rep.target(
        &format!("durable fork (history {}) / minimal durable file create", size_label(fork_1m)),
        r,
        true,
        2.0,
        "",
    );
    // Append and replay targets are judged on forklog's fastest public path for the workload.
    let (append_id, append_api) = fastest(
        rep,
        &[
            ("append.never", "log"),
            ("append.never.ref", "log_ref"),
            ("append.never.floats", "log_floats"),
            ("append.never.columns", "log_columns"),
        ],
    );
    let r = rep.val(append_id, "forklog").zip(rep.val(append_id, "limit")).map(|(f, l)| f / l);
    rep.target(&format!("append sync never ({append_api}) / raw write bandwidth"), r, false, 0.5, "");
    let r = rep.val(append_id, "forklog").zip(rep.val(append_id, "sqlite")).map(|(f, s)| f / s);
    rep.target(&format!("append sync never ({append_api}) / SQLite rows/s"), r, false, 10.0, "");
    let (replay_id, replay_api) = fastest(
        rep,
        &[
            ("replay.full", "History iterator"),
            ("replay.full.rows", "for_each_row"),
            ("replay.full.columns", "Store::columns"),
            ("replay.full.scan", "Store::scan_columns"),
        ],
    );
    let r = rep.val(replay_id, "forklog").zip(rep.val(replay_id, "sqlite")).map(|(f, s)| f / s);
    rep.target(&format!("replay ({replay_api}) / SQLite full-scan rows/s"), r, false, 10.0, "");
    let r = rep.val(replay_id, "forklog").zip(rep.val(replay_id, "limit")).map(|(f, l)| f / l);
    rep.target(&format!("replay ({replay_api}) / raw CRC-checked scan bandwidth"), r, false, 0.25, "");
    let r = rep.val("replay.depth.100", "time_over_flat");
    rep.target("replay at fork depth 100 / flat run (time)", r, true, 1.3, "");
    let seek_size = rep
        .recs
        .iter()
        .filter(|r| r.id.starts_with("seek.") && r.id.ends_with(".mid"))
        .filter_map(|r| r.id.split('.').nth(1)?.parse::<u64>().ok())
        .max();
    let r = seek_size.and_then(|s| rep.val(&format!("seek.{s}.mid"), "forklog_mid_over_zero"));
    rep.target(
        &format!("seek from the middle / from step 0 (history {})", seek_size.map(size_label).unwrap_or_default()),
        r,
        true,
        2.0,
        "",
    );
    let r = rep.val("open.big", "big_over_small");
    rep.target(
        &format!("open time, {} runs with 100x the rows / same runs", size_label(cfg.open_runs)),
        r,
        true,
        1.5,
        "",
    );
    let r = rep.val("bytes_per_row", "forklog");
    let met = r.map(|b| b <= 64.0);
    rep.targets.push(Target {
        name: "bytes on disk per row".into(),
        rule: "<= 64 B".into(),
        measured: r,
        measured_text: r.map(|b| Unit::Bytes.fmt(b)),
        met,
        note: String::new(),
    });
    // Peak RSS counts the pages of memory-mapped segment files the replay touched as well as private
    // memory; both are reported. A history that fits in its active segment is read with pread, so
    // a comparison where only the bigger history has sealed (mapped) segments shows the mapping.
    let r = rep.val("rss.big", "big_over_small");
    rep.target(
        &format!(
            "replay peak RSS (VmHWM, file-backed pages included), {} rows / {} rows",
            size_label(big),
            size_label(big / 10)
        ),
        r,
        true,
        1.5,
        small_note,
    );
    let r = rep.val("rss.anon.big", "big_over_small");
    rep.target(
        &format!("replay peak private memory (RssAnon), {} rows / {} rows", size_label(big), size_label(big / 10)),
        r,
        true,
        1.5,
        small_note,
    );
}

/// The record (and its API name) with the highest forklog figure among `candidates`.
fn fastest(rep: &Report, candidates: &[(&'static str, &'static str)]) -> (&'static str, &'static str) {
    candidates
        .iter()
        .copied()
        .filter_map(|(id, api)| Some((id, api, rep.val(id, "forklog")?)))
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(id, api, _)| (id, api))
        .unwrap_or(candidates[0])
}

/// Whether section `name` runs: `FORKLOG_BENCH_ONLY` (comma-separated words) keeps only the sections whose
/// names contain one of its words (a measuring aid; unset: every section).
fn wanted(name: &str) -> bool {
    match std::env::var("FORKLOG_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => {
            only.split(',').map(str::trim).any(|w| !w.is_empty() && name.contains(w))
        }
        _ => true,
    }
}

fn run_section(rep: &mut Report, name: &str, f: impl FnOnce(&mut Report) -> R<()>) {
    if !wanted(name) && name != "build histories" {
        return;
    }
    let t = Instant::now();
    eprintln!("compare: {name} ...");
    if let Err(e) = f(rep) {
        eprintln!("compare: {name} failed: {e}");
        rep.errors.push(format!("{name}: {e}"));
    }
    let el = secs(t.elapsed());
    eprintln!("compare: {name} done in {el:.1} s");
    rep.sections.push((name.to_string(), el));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--replay-child") {
        let (Some(dir), Some(run)) = (args.get(i + 1), args.get(i + 2)) else {
            eprintln!("usage: compare --replay-child DIR RUN");
            std::process::exit(2);
        };
        if let Err(e) = replay_child(dir, run) {
            eprintln!("replay child: {e}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and gets a smoke run.
    let mut mode = Mode::Smoke;
    for a in &args {
        match a.as_str() {
            "--quick" => mode = Mode::Quick,
            "--full" => mode = Mode::Full,
            "--bench" if mode == Mode::Smoke => mode = Mode::Full,
            "-h" | "--help" => {
                println!(
                    "compare [--quick | --full]: forklog vs SQLite vs JSON Lines vs the hardware limit.\n\
                     Under `cargo bench` the default is the full run; without `--bench` (as under\n\
                     `cargo test --benches`) a tiny smoke run that writes no JSON.\n\
                     Writes $CARGO_TARGET_DIR/forklog-bench.json (default target/).\n\
                     Env: FORKLOG_BENCH_DIR: where scratch stores go (default: the temp dir);\n\
                     FORKLOG_BENCH_ONLY=word,...: only the sections whose names contain a word."
                );
                return;
            }
            // Other cargo / test-harness arguments (e.g. a name filter) are ignored.
            _ => {}
        }
    }
    let cfg = Cfg::new(mode);
    let start = Instant::now();
    let mut rep = Report::default();

    run_section(&mut rep, "append", |rep| wl_append(&cfg, rep));
    let mut fixtures = None;
    let needs_fixtures = ["fork", "replay and seek", "ui reads", "peak memory"].iter().any(|n| wanted(n));
    if needs_fixtures {
        // Always when a section that needs them runs (whatever FORKLOG_BENCH_ONLY says).
        run_section(&mut rep, "build histories", |_| {
            fixtures = Some(build_fixtures(&cfg)?);
            Ok(())
        });
    }
    if let Some(fx) = &fixtures {
        run_section(&mut rep, "fork", |rep| wl_fork(&cfg, fx, rep));
    }
    run_section(&mut rep, "fork chain", |rep| wl_chain(&cfg, rep));
    if let Some(fx) = &fixtures {
        run_section(&mut rep, "replay and seek", |rep| wl_replay_seek(&cfg, fx, rep));
    }
    if let Some(fx) = &fixtures {
        run_section(&mut rep, "ui reads", |rep| wl_ui(&cfg, fx, rep));
    }
    run_section(&mut rep, "replay by fork depth", |rep| wl_depth(&cfg, rep));
    run_section(&mut rep, "open", |rep| wl_open(&cfg, rep));
    run_section(&mut rep, "log latency with a reader", |rep| wl_latency(&cfg, rep));
    if let Some(fx) = &fixtures {
        run_section(&mut rep, "peak memory", |rep| wl_rss(&cfg, fx, rep));
    }
    drop(fixtures);
    targets(&cfg, &mut rep);

    let total = secs(start.elapsed());
    print!("{}", rep.markdown(&cfg));
    println!(
        "\n{} run in {total:.1} s on {} cores; medians of {} (heavy) / {} (light) repetitions.",
        cfg.mode.name(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cfg.reps_heavy,
        cfg.reps_light
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let out = target_dir.join("forklog-bench.json");
    let text = serde_json::to_string_pretty(&rep.json(&cfg, total)).expect("serialize report");
    if cfg.mode == Mode::Smoke {
        println!("smoke run (no --bench): {} not written", out.display());
    } else {
        match fs::create_dir_all(&target_dir).and_then(|_| fs::write(&out, text + "\n")) {
            Ok(()) => println!("JSON: {}", out.display()),
            Err(e) => {
                eprintln!("compare: cannot write {}: {e}", out.display());
                rep.errors.push(format!("write {}: {e}", out.display()));
            }
        }
    }
    if !rep.errors.is_empty() {
        eprintln!(
            "compare: {} benchmark(s) could not run (see above); targets are reported, not enforced",
            rep.errors.len()
        );
        std::process::exit(1);
    }
}
