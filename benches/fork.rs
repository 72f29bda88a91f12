//! Criterion benchmarks of forklog's own costs (issue 5); the side-by-side comparison with SQLite,
//! JSON Lines and the hardware limit is `benches/compare.rs`.
//!
//! ```text
//! cargo bench --bench fork -- --quick          # a short run
//! FORKLOG_BENCH_HUGE=1 cargo bench --bench fork  # adds the 10M-row history to fork_cost
//! ```
//!
//! Groups: `fork_cost` (fork at mid-history against history length, durable and not),
//! `fork_point_lookup` (resolving a step through a fork chain), `seek_to_step` (time to the first row
//! from a step), `row_encode` / `row_decode` (log, log_ref, log_batch / the `History` iterator and
//! `for_each_row`) and `replay` (whole histories, flat and forked). Histories are built once, before
//! the groups run, one `log_at` per row as a tracker logs. Without `--bench` (as under `cargo test
//! --benches`) the histories are small, so the test-mode pass over every benchmark stays quick.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use forklog::{ForkPoint, HistoryOptions, Key, Metrics, Options, RunWriter, Store, SyncPolicy, Value};

const METRIC_NAMES: [&str; 5] = ["loss", "acc", "lr", "grad_norm", "throughput"];

/// Rows logged / replayed per iteration of `row_encode` / `row_decode`.
const CODEC_ROWS: u64 = 10_000;

fn size_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The typical row: 5 float metrics (step and time are added by the writer).
fn metrics(keys: &[Key; 5], step: u64) -> Metrics {
    let s = step as f64;
    let u = (step.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    let values =
        [2.5 / (1.0 + s * 1e-4) + 0.05 * u, 1.0 - 0.9 / (1.0 + s * 1e-4), 3e-4, 0.5 + 2.0 * u, 1200.0 + 150.0 * u];
    keys.iter().cloned().zip(values.map(Value::Float)).collect()
}

/// Appends rows `first..first + n` the way a tracker logs them: one `log_at` per row, so the segments
/// hold the writer's normal (buffer-sized) frames.
fn fill(w: &mut RunWriter, keys: &[Key; 5], first: u64, n: u64) {
    for st in first..first + n {
        w.log_at(st, metrics(keys, st)).expect("fixture: log_at");
    }
}

/// Histories shared by all groups, in one store under a temp dir removed at the end.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: [Key; 5],
    /// History lengths of the runs `h{size}` (fork, seek and replay targets).
    sizes: Vec<u64>,
    /// Fork depths of the chains `d{depth}_{i}`, each `chain_rows` rows in all.
    depths: Vec<usize>,
    chain_rows: u64,
}

fn hist(n: u64) -> String {
    format!("h{}", size_label(n))
}

impl Fixture {
    fn build(bench_mode: bool) -> Fixture {
        let huge = std::env::var("FORKLOG_BENCH_HUGE").is_ok_and(|v| v == "1");
        let sizes = match (bench_mode, huge) {
            (false, _) => vec![1_000, 10_000],
            (true, false) => vec![1_000, 100_000, 1_000_000],
            (true, true) => vec![1_000, 100_000, 1_000_000, 10_000_000],
        };
        // A multiple of 2, 11 and 101, so every depth splits it evenly.
        let chain_rows = if bench_mode { 2_222 * 50 } else { 2_222 };
        let depths = vec![1, 10, 100];
        let tmp = tempfile::Builder::new()
            .prefix("forklog-bench-fork-")
            .tempdir_in(std::env::var_os("FORKLOG_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir))
            .expect("fixture: create a temp dir");
        let dir = tmp.path().join("store");
        let keys = METRIC_NAMES.map(Key::from);
        let store = open(&dir, SyncPolicy::Never);
        eprintln!("fork bench: building histories {:?} and fork chains {depths:?} ...", sizes);
        for &n in &sizes {
            let mut w = store.create_run(&hist(n)).expect("fixture: create run");
            fill(&mut w, &keys, 0, n);
            w.sync().expect("fixture: sync");
        }
        for &d in &depths {
            let per = chain_rows / (d as u64 + 1);
            let mut w = store.create_run(&format!("d{d}_0")).expect("fixture: create chain root");
            fill(&mut w, &keys, 0, per);
            w.sync().expect("fixture: sync");
            drop(w);
            for i in 1..=d as u64 {
                let point = ForkPoint::new(format!("d{d}_{}", i - 1), per * i - 1);
                let mut w = store.fork(&format!("d{d}_{i}"), &point).expect("fixture: fork chain");
                fill(&mut w, &keys, per * i, per);
                w.sync().expect("fixture: sync");
            }
        }
        Fixture { _tmp: tmp, dir, keys, sizes, depths, chain_rows }
    }

    fn leaf(&self, depth: usize) -> String {
        format!("d{depth}_{depth}")
    }
}

fn open(dir: &Path, sync: SyncPolicy) -> Store {
    Store::open_with(dir, Options::default().sync(sync)).expect("open the bench store")
}

/// Fresh run ids for benchmarks that create runs.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn fresh_id(prefix: &str) -> String {
    format!("{prefix}{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Fork at mid-history against history length; each iteration forks into a fresh run id and drops
/// the writer (its final flush/sync is part of the cost).
fn fork_cost(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("fork_cost");
    for (label, policy) in [("no_sync", SyncPolicy::Never), ("durable", SyncPolicy::Always)] {
        let store = open(&fx.dir, policy);
        for &n in &fx.sizes {
            let point = ForkPoint::new(hist(n), n / 2);
            g.bench_with_input(BenchmarkId::new(label, size_label(n)), &point, |b, point| {
                b.iter_batched(
                    || fresh_id("fork"),
                    |id| drop(store.fork(&id, point).expect("fork")),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

/// Resolving a step that lies in the root of a fork chain, from the chain's leaf: the time to the
/// row at a fork point through 1, 10 and 100 fork headers; plus parsing the `RUN?_step=N` form.
fn fork_point_lookup(c: &mut Criterion, fx: &Fixture) {
    let store = open(&fx.dir, SyncPolicy::Never);
    let mut g = c.benchmark_group("fork_point_lookup");
    g.bench_function("parse", |b| {
        b.iter(|| black_box("d100_100?_step=12345").parse::<ForkPoint>().expect("parse fork point"))
    });
    for &d in &fx.depths {
        let leaf = fx.leaf(d);
        let step = fx.chain_rows / (d as u64 + 1) / 2;
        let opts = HistoryOptions::new().from_step(step).to_step(step);
        g.bench_with_input(BenchmarkId::new("root_step_from_leaf", format!("depth_{d}")), &opts, |b, opts| {
            b.iter(|| {
                let row = store.history_with(&leaf, opts).expect("history_with").next().expect("a row").expect("row");
                assert_eq!(row.step, step);
                row
            })
        });
    }
    g.finish();
}

/// Time to the first row from step 0, the middle and the last step.
fn seek_to_step(c: &mut Criterion, fx: &Fixture) {
    let store = open(&fx.dir, SyncPolicy::Never);
    let mut g = c.benchmark_group("seek_to_step");
    for &n in fx.sizes.iter().filter(|&&n| n >= 10_000) {
        let run = hist(n);
        for (pos, step) in [("start", 0), ("middle", n / 2), ("end", n - 1)] {
            let opts = HistoryOptions::new().from_step(step);
            g.bench_with_input(BenchmarkId::new(size_label(n), pos), &opts, |b, opts| {
                b.iter(|| {
                    let row =
                        store.history_with(&run, opts).expect("history_with").next().expect("a row").expect("row");
                    assert_eq!(row.step, step);
                    row
                })
            });
        }
    }
    g.finish();
}

/// Row encoding: logging `CODEC_ROWS` rows (one `log` call each, sync never) into a fresh run; the
/// maps are built in the untimed setup. Row decoding: replaying a `CODEC_ROWS`-row history.
fn row_codec(c: &mut Criterion, fx: &Fixture) {
    let store = open(&fx.dir, SyncPolicy::Never);
    let mut g = c.benchmark_group("row_encode");
    g.throughput(Throughput::Elements(CODEC_ROWS));
    g.bench_function("log_1_row_per_call", |b| {
        b.iter_batched(
            || {
                let w = store.create_run(&fresh_id("enc")).expect("create run");
                let rows: Vec<Metrics> = (0..CODEC_ROWS).map(|s| metrics(&fx.keys, s)).collect();
                (w, rows)
            },
            |(mut w, rows)| {
                for m in rows {
                    w.log(m).expect("log");
                }
                drop(w);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("log_ref_1_map_reused", |b| {
        b.iter_batched(
            || (store.create_run(&fresh_id("encr")).expect("create run"), metrics(&fx.keys, 0)),
            |(mut w, mut m)| {
                for s in 0..CODEC_ROWS {
                    if let Some(Value::Float(x)) = m.get_mut("loss") {
                        *x = s as f64;
                    }
                    w.log_ref(&m).expect("log_ref");
                }
                drop(w);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("log_batch_1000", |b| {
        b.iter_batched(
            || {
                let w = store.create_run(&fresh_id("encb")).expect("create run");
                let rows: Vec<(Option<u64>, Metrics)> = (0..CODEC_ROWS).map(|s| (None, metrics(&fx.keys, s))).collect();
                (w, rows)
            },
            |(mut w, mut rows)| {
                while !rows.is_empty() {
                    let rest = rows.split_off(rows.len().min(1000));
                    w.log_batch(std::mem::replace(&mut rows, rest)).expect("log_batch");
                }
                drop(w);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("log_floats", |b| {
        b.iter_batched(
            || store.create_run(&fresh_id("encf")).expect("create run"),
            |mut w| {
                for s in 0..CODEC_ROWS {
                    let x = s as f64;
                    let row = [("acc", x), ("grad_norm", x), ("loss", x), ("lr", 0.1), ("throughput", 3.0)];
                    w.log_floats(&row).expect("log_floats");
                }
                drop(w);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("log_columns_4096", |b| {
        let steps: Vec<u64> = (0..CODEC_ROWS).collect();
        let col: Vec<f64> = (0..CODEC_ROWS).map(|s| s as f64).collect();
        b.iter_batched(
            || store.create_run(&fresh_id("encc")).expect("create run"),
            |mut w| {
                for (st, c) in steps.chunks(4096).zip(col.chunks(4096)) {
                    let batch = [("acc", c), ("grad_norm", c), ("loss", c), ("lr", c), ("throughput", c)];
                    w.log_columns(st, &batch).expect("log_columns");
                }
                drop(w);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let run = "decode";
    let mut w = store.create_run(run).expect("create decode run");
    fill(&mut w, &fx.keys, 0, CODEC_ROWS);
    w.sync().expect("sync");
    drop(w);
    let mut g = c.benchmark_group("row_decode");
    g.throughput(Throughput::Elements(CODEC_ROWS));
    g.bench_function("history_iter", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for r in store.history(run).expect("history") {
                black_box(r.expect("row"));
                n += 1;
            }
            assert_eq!(n, CODEC_ROWS);
        })
    });
    g.bench_function("for_each_row", |b| b.iter(|| assert_eq!(visit_rows(&store, run), CODEC_ROWS)));
    g.bench_function("columns", |b| {
        b.iter(|| assert_eq!(store.columns(run, &HistoryOptions::new()).expect("columns").len() as u64, CODEC_ROWS))
    });
    g.bench_function("scan_columns", |b| {
        b.iter(|| {
            let mut n = 0u64;
            store.scan_columns(run, &HistoryOptions::new(), |c| n += black_box(c).len() as u64).expect("scan");
            assert_eq!(n, CODEC_ROWS);
        })
    });
    g.finish();
}

/// Replays `run` through `for_each_row` (borrowed rows), reading every value; returns the row count.
fn visit_rows(store: &Store, run: &str) -> u64 {
    let (mut n, mut acc) = (0u64, 0.0);
    store
        .history(run)
        .expect("history")
        .for_each_row(|r| {
            for (_, v) in r.metrics() {
                if let Value::Float(x) = v {
                    acc += x;
                }
            }
            n += 1;
        })
        .expect("for_each_row");
    black_box(acc);
    n
}

/// Replays `run` whole, touching every row; returns the row count.
fn count_rows(store: &Store, run: &str) -> u64 {
    let mut n = 0u64;
    for r in store.history(run).expect("history") {
        black_box(r.expect("row"));
        n += 1;
    }
    n
}

/// Whole-history replay: flat runs by length, and the same rows behind 1, 10 and 100 forks.
fn replay(c: &mut Criterion, fx: &Fixture) {
    let store = open(&fx.dir, SyncPolicy::Never);
    let mut g = c.benchmark_group("replay");
    let count = |run: &str| count_rows(&store, run);
    for &n in fx.sizes.iter().filter(|&&n| n <= 1_000_000) {
        g.throughput(Throughput::Elements(n));
        let run = hist(n);
        g.bench_function(BenchmarkId::new("flat", size_label(n)), |b| b.iter(|| assert_eq!(count(&run), n)));
        let id = BenchmarkId::new("flat_for_each_row", size_label(n));
        g.bench_function(id, |b| b.iter(|| assert_eq!(visit_rows(&store, &run), n)));
    }
    g.throughput(Throughput::Elements(fx.chain_rows));
    for &d in &fx.depths {
        let leaf = fx.leaf(d);
        let id = BenchmarkId::new("fork_depth", format!("{d}_of_{}", size_label(fx.chain_rows)));
        g.bench_function(id, |b| b.iter(|| assert_eq!(count(&leaf), fx.chain_rows)));
    }
    g.finish();
}

fn main() {
    // `cargo bench` passes `--bench`; without it (cargo test) criterion runs each benchmark once.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let fx = Fixture::build(bench_mode);
    fork_cost(&mut c, &fx);
    fork_point_lookup(&mut c, &fx);
    seek_to_step(&mut c, &fx);
    row_codec(&mut c, &fx);
    replay(&mut c, &fx);
    drop(fx);
    c.final_summary();
}
