//! `forklog demo`: the README's main command. Builds a store with a long base run, forks it at
//! several depths (timing each fork against the length of the history it inherits), forks a fork,
//! rewinds the base, replays every version, verifies the store, and prints a short report.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use forklog::{ForkPoint, Key, Metrics, Options, RunWriter, Store, SyncPolicy, Value};

use super::{stdout_error, CliError, EXIT_OK};

/// The five float metrics of every demo row.
const METRIC_NAMES: [&str; 5] = ["loss", "acc", "lr", "grad_norm", "throughput"];

/// The marker file the demo writes in its directory: a later demo replaces only a store that has it.
const MARKER: &str = "forklog-demo.marker";

/// What the marker file says.
const MARKER_TEXT: &str = "This directory holds a store written by `forklog demo`; the next demo run replaces it.\n";

/// Prepares `dir` for the demo: a missing or empty directory is used as it is; one holding nothing but a
/// previous demo's store (its marker, `forklog.store`, `runs/`) has exactly those removed. Anything else
/// is refused: the demo never deletes what it did not create.
fn prepare_dir(dir: &Path) -> Result<(), CliError> {
    let io_error = |e: io::Error| CliError::new(format!("preparing {}: {e}", dir.display()));
    if dir.exists() {
        if !dir.is_dir() {
            return Err(CliError::new(format!("{} is not a directory (choose another --dir)", dir.display())));
        }
        let names: Vec<String> = fs::read_dir(dir)
            .map_err(io_error)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(io_error)?;
        // `plot.svg` is the picture a demo draws (issue 12).
        let ours = [MARKER, "forklog.store", "forklog.store.tmp", "runs", "plot.svg"];
        let marked = fs::read_to_string(dir.join(MARKER)).is_ok_and(|t| t == MARKER_TEXT);
        let previous_demo = marked && names.iter().all(|n| ours.contains(&n.as_str()));
        if !names.is_empty() && !previous_demo {
            return Err(CliError::new(format!(
                "refusing to use {}: it is neither empty nor a previous demo's store (choose another --dir)",
                dir.display()
            )));
        }
        // The store first, the marker last: a crash in between leaves a marked directory to retry.
        for name in ["plot.svg", "runs", "forklog.store", "forklog.store.tmp", MARKER] {
            let path = dir.join(name);
            let res = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            match res {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    }
    fs::create_dir_all(dir).map_err(io_error)
}

/// A cheap deterministic pseudo-random number in [0, 1) for `step` (SplitMix64).
fn noise(step: u64) -> f64 {
    let mut z = step.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// The synthetic metrics of one training step out of `total`; `seed` varies the curves per run.
fn row(keys: &[Key; 5], step: u64, total: u64, seed: u64) -> Metrics {
    let progress = step as f64 / total as f64;
    let n = noise(step ^ seed.rotate_left(32));
    let values = [
        2.5 * (-3.0 * progress).exp() + 0.05 * n,
        1.0 - 0.9 * (-4.0 * progress).exp() - 0.02 * n,
        3e-4 * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0,
        1.0 + 0.5 * n,
        5_000.0 + 250.0 * n,
    ];
    keys.iter().cloned().zip(values.map(Value::Float)).collect()
}

/// Logs `count` rows after the writer's last step, then syncs.
fn log_rows(w: &mut RunWriter, keys: &[Key; 5], count: u64, total: u64, seed: u64) -> Result<(), CliError> {
    for _ in 0..count {
        let step = w.next_step();
        w.log(row(keys, step, total, seed))?;
    }
    w.sync()?;
    Ok(())
}

/// `n` with thousands separators: `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows per second as a whole number with separators.
fn rate(rows: u64, took: Duration) -> String {
    thousands((rows as f64 / took.as_secs_f64().max(1e-9)) as u64)
}

/// Writes report lines to stdout as the demo goes.
struct Report(io::Stdout);

impl Report {
    /// Prints one line and flushes it.
    fn line(&mut self, text: impl AsRef<str>) -> Result<(), CliError> {
        let mut out = self.0.lock();
        writeln!(out, "{}", text.as_ref()).map_err(stdout_error)?;
        out.flush().map_err(stdout_error)
    }
}

/// `forklog demo`: runs the demonstration in `dir` with a base run of `rows` rows.
pub fn demo(dir: &Path, rows: u64) -> Result<u8, CliError> {
    let started = Instant::now();
    let mut report = Report(io::stdout());
    prepare_dir(dir)?;
    let store = Store::open_with(dir, Options::default().sync(SyncPolicy::Never))?;
    // Marked once the store exists (a store refuses to be created among other files).
    fs::write(dir.join(MARKER), MARKER_TEXT)
        .map_err(|e| CliError::new(format!("writing {}: {e}", dir.join(MARKER).display())))?;
    let keys: [Key; 5] = METRIC_NAMES.map(Key::from);
    let extra = (rows / 100).max(1);
    report.line(format!("forklog demo: store {}", dir.display()))?;

    let t = Instant::now();
    let mut base = store.create_run("base")?;
    log_rows(&mut base, &keys, rows, rows, 0)?;
    let took = t.elapsed();
    base.finish(0)?;
    report.line(format!(
        "write    {} rows x 5 float metrics in {:.3} s: {} rows/s (sync policy never, one sync at the end)",
        thousands(rows),
        took.as_secs_f64(),
        rate(rows, took)
    ))?;

    report.line("fork     copy-free: the time does not grow with the inherited history")?;
    report.line(format!("         {:>12}  {:>14}  {:>10}", "fork step", "inherited rows", "time (us)"))?;
    let mid = rows / 2;
    for step in [rows / 100, mid, rows * 99 / 100] {
        let t = Instant::now();
        let mut w = store.fork(&format!("fork-{step}"), &ForkPoint::new("base", step))?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        report.line(format!("         {:>12}  {:>14}  {us:>10.1}", thousands(step), thousands(step + 1)))?;
        log_rows(&mut w, &keys, extra, rows, step)?;
        w.finish(0)?;
    }
    let grand_step = mid + extra / 2;
    let t = Instant::now();
    let mut w = store.fork("fork-of-fork", &ForkPoint::new(format!("fork-{mid}"), grand_step))?;
    let us = t.elapsed().as_secs_f64() * 1e6;
    log_rows(&mut w, &keys, extra, rows, grand_step)?;
    w.finish(0)?;
    report.line(format!("         fork of a fork: fork-{mid}?_step={grand_step} -> fork-of-fork in {us:.1} us"))?;

    let rewind_step = rows * 8 / 10;
    let t = Instant::now();
    let mut w = store.rewind("base", rewind_step)?;
    let us = t.elapsed().as_secs_f64() * 1e6;
    log_rows(&mut w, &keys, extra, rows, 7)?;
    w.finish(0)?;
    report.line(format!(
        "rewind   base to step {} in {us:.1} us (base@v0 archived, forks keep reading it), then {} new rows",
        thousands(rewind_step),
        thousands(extra)
    ))?;

    let t = Instant::now();
    let mut replayed = 0u64;
    let mut lines = Vec::new();
    for info in store.runs_all()? {
        let name = info.run_ref().to_string();
        let mut n = 0u64;
        for r in store.history(&name)? {
            r?;
            n += 1;
        }
        if n != info.rows {
            return Err(CliError::new(format!("replay of {name} returned {n} rows, runs says {}", info.rows)));
        }
        replayed += n;
        lines.push(format!("         {name:<24} {:>10} rows", thousands(n)));
    }
    let took = t.elapsed();
    report.line(format!(
        "replay   {} rows from {} versions in {:.3} s: {} rows/s",
        thousands(replayed),
        lines.len(),
        took.as_secs_f64(),
        rate(replayed, took)
    ))?;
    for line in lines {
        report.line(line)?;
    }
    // The same histories again as columns (one vector per metric, in chunks): the fast read path.
    let t = Instant::now();
    let mut columnar = 0u64;
    for info in store.runs_all()? {
        let name = info.run_ref().to_string();
        let mut n = 0u64;
        store.scan_columns(&name, &forklog::HistoryOptions::new(), |c| n += c.len() as u64)?;
        if n != info.rows {
            return Err(CliError::new(format!("columns of {name} had {n} rows, runs says {}", info.rows)));
        }
        columnar += n;
    }
    let took = t.elapsed();
    report.line(format!(
        "columns  the same {} rows as column chunks (scan_columns) in {:.3} s: {} rows/s",
        thousands(columnar),
        took.as_secs_f64(),
        rate(columnar, took)
    ))?;

    // Issue 12: the fork tree as a picture (exact downsampled curves, fork points marked).
    let t = Instant::now();
    let picture = dir.join("plot.svg");
    let keys = ["loss".to_string(), "acc".to_string()];
    super::plot::picture(&store, &["base@v0".to_string()], &keys, true, 50, &picture, 900, Some(560))?;
    report.line(format!(
        "plot     {} in {:.3} s (forklog plot base@v0 --tree --keys loss,acc --buckets 50 --out FILE.svg)",
        picture.display(),
        t.elapsed().as_secs_f64()
    ))?;

    let t = Instant::now();
    let v = store.verify()?;
    let verdict = if v.is_clean() { "clean" } else { "CORRUPT" };
    report.line(format!(
        "verify   {} files, {} bytes in {:.3} s: {verdict}",
        v.files,
        thousands(v.bytes),
        t.elapsed().as_secs_f64()
    ))?;
    report.line(format!("total    {:.3} s", started.elapsed().as_secs_f64()))?;
    Ok(if v.is_clean() { EXIT_OK } else { super::EXIT_CORRUPT })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
