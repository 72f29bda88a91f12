//! `Store::sample` (exact M4 per bucket and key) against a brute-force computation over `history`: random
//! runs with forks, forks of forks and rewinds, mixed value types, NaNs, dense and keyed rows, small segments
//! and frames (so zone maps, block boundaries and fork pointers inside blocks all occur), random bucket counts,
//! ranges and key filters.

use std::collections::BTreeMap;

use forklog::{Metrics, Options, Store, SyncPolicy, Value};
use proptest::prelude::*;

mod common;

/// Brute force: (key, bucket) -> (count, first, last, min, max) as (step, value bits), straight from the rows.
type Want = BTreeMap<(String, u32), (u64, (u64, u64), (u64, u64), (u64, u64), (u64, u64))>;

fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn brute(store: &Store, run: &str, keys: &[String], n: u32, from: u64, to: u64) -> Want {
    let span = u128::from(to - from) + 1;
    // (key, bucket) -> values in step order
    let mut vals: BTreeMap<(String, u32), Vec<(u64, f64)>> = BTreeMap::new();
    for row in store.history(run).unwrap() {
        let row = row.unwrap();
        if row.step < from || row.step > to {
            continue;
        }
        let b = (u128::from(row.step - from) * u128::from(n) / span) as u32;
        for (k, v) in row.metrics.iter() {
            if !keys.is_empty() && !keys.iter().any(|x| x.as_str() == &**k) {
                continue;
            }
            if let Some(x) = numeric(v) {
                vals.entry((k.to_string(), b)).or_default().push((row.step, x));
            }
        }
    }
    vals.into_iter()
        .map(|(kb, v)| {
            let first = v[0];
            let last = *v.last().unwrap();
            let real: Vec<_> = v.iter().filter(|p| !p.1.is_nan()).copied().collect();
            // the earliest of the smallest / largest
            let min = real.iter().fold(None::<(u64, f64)>, |m, p| match m {
                Some(m) if p.1 >= m.1 => Some(m),
                _ => Some(*p),
            });
            let max = real.iter().fold(None::<(u64, f64)>, |m, p| match m {
                Some(m) if p.1 <= m.1 => Some(m),
                _ => Some(*p),
            });
            let bits = |p: (u64, f64)| (p.0, p.1.to_bits());
            (kb, (v.len() as u64, bits(first), bits(last), bits(min.unwrap_or(first)), bits(max.unwrap_or(first))))
        })
        .collect()
}

fn got(s: &forklog::Sample) -> Want {
    let bits = |p: forklog::Point| (p.step, p.value.to_bits());
    let mut out = Want::new();
    for series in &s.series {
        let mut prev = None;
        for b in &series.buckets {
            assert!(prev.is_none_or(|p| p < b.index), "buckets out of order");
            prev = Some(b.index);
            assert!(b.count > 0);
            assert_eq!(s.bucket_range(b.index), (b.start, b.end));
            for p in [b.first, b.last, b.min, b.max] {
                assert!(p.step >= b.start && p.step <= b.end, "point {p:?} outside bucket {b:?}");
            }
            out.insert(
                (series.key.to_string(), b.index),
                (b.count, bits(b.first), bits(b.last), bits(b.min), bits(b.max)),
            );
        }
    }
    out
}

fn check(store: &Store, run: &str, keys: &[String], n: u32, from: Option<u64>, to: Option<u64>) {
    let info = store.info(run).unwrap();
    let s = store.sample(run, keys, n, from, to).unwrap();
    let slow = store.sample_by_replay(run, keys, n, from, to).unwrap();
    assert_eq!(got(&s), got(&slow), "{run}: zone maps and replay disagree");
    let (Some(f), Some(t)) = (from.or(info.first_step), to.or(info.last_step)) else {
        assert!(s.series.iter().all(|x| x.buckets.is_empty()));
        return;
    };
    if f > t {
        assert!(s.series.iter().all(|x| x.buckets.is_empty()));
        return;
    }
    assert_eq!((s.from_step, s.to_step, s.buckets), (f, t, n));
    let want = brute(store, run, keys, n, f, t);
    assert_eq!(got(&s), want, "{run} keys={keys:?} n={n} {f}..={t}");
    if !keys.is_empty() {
        let names: Vec<String> = s.series.iter().map(|x| x.key.to_string()).collect();
        let mut dedup: Vec<String> = Vec::new();
        for k in keys {
            if !dedup.contains(k) {
                dedup.push(k.clone());
            }
        }
        assert_eq!(names, dedup);
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Log `n` rows: kind 0 = maps of mixed values, 1 = floats (dense rows), 2 = a `log_columns` batch.
    Log {
        n: u8,
        kind: u8,
        seed: u64,
    },
    /// Fork run `from` (index into runs made so far) at a fraction of its last step.
    Fork {
        from: u8,
        at: u8,
    },
    /// Rewind run `which` to a fraction of its last step.
    Rewind {
        which: u8,
        at: u8,
    },
    Sync,
    Summary,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..120, 0u8..3, any::<u64>()).prop_map(|(n, kind, seed)| Op::Log { n, kind, seed }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(from, at)| Op::Fork { from, at }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(which, at)| Op::Rewind { which, at }),
        1 => Just(Op::Sync),
        1 => Just(Op::Summary),
    ]
}

fn value(seed: u64, i: u64) -> f64 {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    match x % 23 {
        0 => f64::NAN,
        1 => -0.0,
        2 => 0.0,
        3 => 5.0,
        _ => ((x >> 11) % 2000) as f64 / 7.0 - 100.0,
    }
}

fn run_ops(store: &Store, ops: &[Op]) -> Vec<String> {
    let mut runs: Vec<String> = vec!["root".into()];
    drop(store.create_run("root").unwrap());
    let mut cur = 0usize;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Log { n, kind, seed } => {
                let id = runs[cur].clone();
                let mut w = store.resume(&id).unwrap();
                let base = w.next_step();
                for r in 0..u64::from(*n) {
                    let step = base + r * (1 + seed % 3);
                    match kind {
                        0 => {
                            let mut m = Metrics::new();
                            m.insert("loss".into(), Value::Float(value(*seed, r)));
                            if r % 3 == 0 {
                                m.insert("acc".into(), Value::Int((value(*seed, r + 7) as i64) % 50));
                            }
                            if r % 5 == 1 {
                                m.insert("flag".into(), Value::Bool(r % 2 == 0));
                                m.insert("name".into(), Value::Str("x".into()));
                            }
                            w.log_at(step, m).unwrap();
                        }
                        1 => {
                            w.log_floats_at(step, &[("loss", value(*seed, r)), ("acc", value(*seed, r + 1))]).unwrap();
                        }
                        _ => {
                            let steps: Vec<u64> = (0..u64::from(*n)).map(|q| base + q * 2).collect();
                            let a: Vec<f64> = (0..u64::from(*n)).map(|q| value(*seed, q)).collect();
                            let b: Vec<f64> = (0..u64::from(*n)).map(|q| value(*seed ^ 1, q)).collect();
                            w.log_columns(&steps, &[("loss", &a), ("lr", &b)]).unwrap();
                            break;
                        }
                    }
                }
            }
            Op::Fork { from, at } => {
                let parent = runs[*from as usize % runs.len()].clone();
                let Some(last) = store.info(&parent).unwrap().last_step else { continue };
                let step = last * u64::from(*at) / 255;
                let id = format!("f{i}");
                drop(store.fork(&id, &format!("{parent}?_step={step}").parse().unwrap()).unwrap());
                runs.push(id);
                cur = runs.len() - 1;
            }
            Op::Rewind { which, at } => {
                let k = *which as usize % runs.len();
                let Some(last) = store.info(&runs[k]).unwrap().last_step else { continue };
                drop(store.rewind(&runs[k], last * u64::from(*at) / 255).unwrap());
                cur = k;
            }
            Op::Sync => store.resume(&runs[cur]).unwrap().sync().unwrap(),
            Op::Summary => {
                let mut w = store.resume(&runs[cur]).unwrap();
                let mut m = Metrics::new();
                m.insert("best".into(), Value::Float(i as f64));
                w.set_summary(m).unwrap();
                let mut c = Metrics::new();
                c.insert(format!("c{}", i % 3).into(), Value::Int(i as i64));
                w.set_config(c).unwrap();
            }
        }
    }
    runs
}

proptest! {
    // FORKLOG_SAMPLE_CASES raises the case count for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("FORKLOG_SAMPLE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(20),
        ..ProptestConfig::default()
    })]

    #[test]
    fn sample_equals_brute_force(
        ops in prop::collection::vec(op(), 1..24),
        queries in prop::collection::vec((1u32..40, any::<u8>(), any::<u8>(), 0u8..4, 0u8..4), 1..6),
        sync in 0u8..2,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let policy = if sync == 0 { SyncPolicy::Never } else { SyncPolicy::Always };
        let store = Store::open_with(dir.path(), Options::default().sync(policy).segment_size(6_000).buffer_size(700)).unwrap();
        let runs = run_ops(&store, &ops);
        let mut all = runs.clone();
        for r in &runs {
            for v in store.runs_all().unwrap().into_iter().filter(|x| &x.id == r && x.archived) {
                all.push(format!("{}@v{}", v.id, v.version));
            }
        }
        for r in &all {
            // Compared through Debug: NaN values must match too (bit-exact floats print exactly).
            prop_assert_eq!(format!("{:?}", store.summary(r).unwrap()), format!("{:?}", store.summary_by_replay(r).unwrap()), "summary of {}", r);
            prop_assert_eq!(format!("{:?}", store.config(r).unwrap()), format!("{:?}", store.config_by_replay(r).unwrap()), "config of {}", r);
            for &(n, a, b, kq, range) in &queries {
                let info = store.info(r).unwrap();
                let last = info.last_step.unwrap_or(0);
                let x = last * u64::from(a) / 255;
                let y = last * u64::from(b) / 255;
                let (from, to) = match range {
                    0 => (None, None),
                    1 => (Some(x.min(y)), Some(x.max(y))),
                    2 => (Some(x), None),
                    _ => (None, Some(y)),
                };
                let keys: Vec<String> = match kq {
                    0 => vec![],
                    1 => vec!["loss".into()],
                    2 => vec!["acc".into(), "flag".into(), "nope".into()],
                    _ => vec!["lr".into(), "loss".into(), "lr".into()],
                };
                check(&store, r, &keys, n, from, to);
            }
        }
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    w.log_floats(&[("loss", 1.0)]).unwrap();
    drop(w);
    let none: [&str; 0] = [];
    assert!(matches!(store.sample("r", &none, 0, None, None), Err(forklog::Error::InvalidArgument { .. })));
    assert!(matches!(store.sample("r", &none, 4, Some(5), Some(2)), Err(forklog::Error::InvalidArgument { .. })));
    assert!(matches!(store.sample("nope", &none, 4, None, None), Err(forklog::Error::RunNotFound { .. })));
    // An empty run samples to nothing.
    drop(store.create_run("empty").unwrap());
    assert!(store.sample("empty", &["loss"], 4, None, None).unwrap().series[0].buckets.is_empty());
}

#[test]
fn a_spike_survives_downsampling() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let steps: Vec<u64> = (0..100_000).collect();
    let loss: Vec<f64> = steps.iter().map(|s| if (61_000..61_020).contains(s) { 1e6 } else { 1.0 }).collect();
    w.log_columns(&steps, &[("loss", &loss)]).unwrap();
    drop(w);
    let s = store.sample("r", &["loss"], 100, None, None).unwrap();
    let b = &s.series[0].buckets;
    assert_eq!(b.len(), 100);
    assert_eq!(b[61].max, forklog::Point { step: 61_000, value: 1e6 });
    assert_eq!(b[61].count, 1000);
    assert!(b.iter().enumerate().all(|(i, x)| i == 61 || x.max.value == 1.0));
}

#[test]
fn regression_fork_at_zero_then_keyed_rows() {
    for sync in [SyncPolicy::Never, SyncPolicy::Always] {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open_with(dir.path(), Options::default().sync(sync).segment_size(6_000).buffer_size(700)).unwrap();
        let ops = vec![
            Op::Log { n: 5, kind: 0, seed: 580166865948248024 },
            Op::Fork { from: 0, at: 192 },
            Op::Log { n: 1, kind: 0, seed: 0 },
            Op::Fork { from: 0, at: 0 },
            Op::Log { n: 17, kind: 0, seed: 2218894906639407317 },
        ];
        for r in run_ops(&store, &ops) {
            check(&store, &r, &[], 19, None, None);
            check(&store, &r, &["loss".to_string()], 3, None, Some(10));
        }
    }
}

/// Snapshots inside a segment (every 256 KiB of synced data) and across seals; forks and a rewind between
/// them; summary, config and sample equal the replay; verify checks every zone map; zone maps are there.
#[test]
fn snapshots_inside_segments_and_forks_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never).segment_size(600 << 10)).unwrap();
    let mut w = store.create_run("big").unwrap();
    let mut cfg = Metrics::new();
    cfg.insert("lr".into(), Value::Float(0.1));
    w.set_config(cfg).unwrap();
    for chunk in 0..24u64 {
        let steps: Vec<u64> = (chunk * 4_000..(chunk + 1) * 4_000).collect();
        let a: Vec<f64> = steps.iter().map(|s| value(7, *s)).collect();
        let b: Vec<f64> = steps.iter().map(|s| (*s as f64).sin()).collect();
        w.log_columns(&steps, &[("loss", &a), ("acc", &b)]).unwrap();
        if chunk % 7 == 3 {
            let mut m = Metrics::new();
            m.insert(format!("phase{}", chunk % 3).into(), Value::Int(chunk as i64));
            w.set_config(m.clone()).unwrap();
            w.set_summary(m).unwrap();
        }
        w.sync().unwrap();
    }
    drop(w);
    let zmaps: Vec<_> = std::fs::read_dir(dir.path().join("runs/big"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zmap"))
        .collect();
    assert!(zmaps.len() >= 3, "several segments, each with a zone map");
    for (i, at) in [3_000u64, 33_333, 60_000, 95_998].into_iter().enumerate() {
        let id = format!("f{i}");
        let mut f = store.fork(&id, &format!("big?_step={at}").parse().unwrap()).unwrap();
        f.log_floats(&[("loss", -1.0)]).unwrap();
    }
    drop(store.rewind("big", 70_001).unwrap());
    let none: [&str; 0] = [];
    for run in ["big", "big@v0", "f0", "f1", "f2", "f3"] {
        assert_eq!(
            format!("{:?}", store.summary(run).unwrap()),
            format!("{:?}", store.summary_by_replay(run).unwrap()),
            "{run}"
        );
        assert_eq!(
            format!("{:?}", store.config(run).unwrap()),
            format!("{:?}", store.config_by_replay(run).unwrap()),
            "{run}"
        );
        for n in [13, 1000] {
            let fast = store.sample(run, &none, n, None, None).unwrap();
            let slow = store.sample_by_replay(run, &none, n, None, None).unwrap();
            assert_eq!(got(&fast), got(&slow), "{run} {n}");
        }
        let fast = store.sample(run, &["acc"], 77, Some(20_000), Some(80_000)).unwrap();
        let slow = store.sample_by_replay(run, &["acc"], 77, Some(20_000), Some(80_000)).unwrap();
        assert_eq!(got(&fast), got(&slow), "{run} range");
    }
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Zone maps of layout 0 (earlier builds: no `meta`, no groups) are ignored: reads equal the replay, verify is
/// clean, and a writer resuming the run records its active segment afresh in layout 1.
#[test]
fn zone_maps_of_layout_0_are_ignored_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().sync(SyncPolicy::Never).segment_size(80 << 10);
    let store = Store::open_with(dir.path(), opts.clone()).unwrap();
    let mut w = store.create_run("r").unwrap();
    for chunk in 0..10u64 {
        let steps: Vec<u64> = (chunk * 2_000..(chunk + 1) * 2_000).collect();
        let a: Vec<f64> = steps.iter().map(|s| value(3, *s)).collect();
        w.log_columns(&steps, &[("loss", &a)]).unwrap();
        w.sync().unwrap();
    }
    w.set_meta(forklog::MetaPatch::new().name("n")).unwrap();
    drop(w);
    drop(store);
    let run_dir = dir.path().join("runs/r");
    let zmaps: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zmap"))
        .collect();
    assert!(zmaps.len() >= 3);
    let layout = |p: &std::path::Path| {
        let b = std::fs::read(p).unwrap();
        u16::from_le_bytes([b[10], b[11]])
    };
    for p in &zmaps {
        assert_eq!(layout(p), 1);
        let mut b = std::fs::read(p).unwrap();
        b[10..12].copy_from_slice(&0u16.to_le_bytes());
        let c = crc32fast::hash(&b[..28]);
        b[28..32].copy_from_slice(&c.to_le_bytes());
        std::fs::write(p, &b).unwrap();
    }
    let store = Store::open_with(dir.path(), opts).unwrap();
    let none: [&str; 0] = [];
    let check = |store: &Store| {
        assert_eq!(
            format!("{:?}", store.summary("r").unwrap()),
            format!("{:?}", store.summary_by_replay("r").unwrap())
        );
        assert_eq!(store.meta("r").unwrap().name.as_deref(), Some("n"));
        for n in [7, 500] {
            let fast = store.sample("r", &none, n, None, None).unwrap();
            let slow = store.sample_by_replay("r", &none, n, None, None).unwrap();
            assert_eq!(got(&fast), got(&slow));
        }
        let report = store.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    };
    check(&store);
    // A writer resuming the run records the active segment's zone map afresh (layout 1).
    let mut w = store.resume("r").unwrap();
    w.log_floats(&[("loss", 0.5)]).unwrap();
    drop(w);
    let mut active: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zmap"))
        .collect();
    active.sort_by_key(|p| {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        name.rsplit('-').next().unwrap().parse::<u32>().unwrap()
    });
    assert_eq!(layout(active.last().unwrap()), 1);
    assert_eq!(layout(&active[0]), 0, "sealed ones stay as they are (ignored)");
    check(&store);
}

/// A store handle keeps sealed zone maps and segments mapped (and their group records decoded) between
/// samples. A run deleted, collected and created again under the same id (by this handle or another one), and
/// a run rewound, must sample their new data, never the kept files of the old ones.
#[test]
fn kept_mappings_never_outlive_the_files_they_map() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().segment_size(200_000)).unwrap();
    let keys = ["loss".to_string()];
    let write = |store: &Store, scale: f64| {
        let mut w = store.create_run("r").unwrap();
        let steps: Vec<u64> = (0..60_000).collect();
        let loss: Vec<f64> = steps.iter().map(|s| scale * ((s * 7919 % 1000) as f64)).collect();
        for (s, l) in steps.chunks(5_000).zip(loss.chunks(5_000)) {
            w.log_columns(s, &[("loss", l)]).unwrap();
        }
        w.finish(0).unwrap();
    };
    write(&store, 1.0);
    let segs = std::fs::read_dir(dir.path().join("runs/r")).unwrap().filter_map(|e| e.ok()).count();
    assert!(segs > 12, "the run spans several sealed segments ({segs} files)");
    check(&store, "r", &keys, 37, None, None);
    let old = store.sample("r", &keys, 37, None, None).unwrap();
    // Another handle (its own kept files) deletes, collects and creates the run again; then this one.
    let other = Store::open_with(dir.path(), Options::default().segment_size(200_000)).unwrap();
    check(&other, "r", &keys, 37, None, None);
    other.delete_run("r").unwrap();
    other.gc().unwrap();
    write(&other, -3.0);
    check(&store, "r", &keys, 37, None, None);
    check(&other, "r", &keys, 37, None, None);
    store.delete_run("r").unwrap();
    store.gc().unwrap();
    write(&store, 2.0);
    check(&store, "r", &keys, 37, None, None);
    check(&other, "r", &keys, 37, None, None);
    assert_ne!(store.sample("r", &keys, 37, None, None).unwrap(), old);
    // A rewind: version 1 keeps the first 20,000 rows of version 0, then logs others.
    let mut w = store.rewind("r", 19_999).unwrap();
    let steps: Vec<u64> = (20_000..50_000).collect();
    let loss: Vec<f64> = steps.iter().map(|s| (*s as f64).sqrt()).collect();
    w.log_columns(&steps, &[("loss", &loss)]).unwrap();
    w.finish(0).unwrap();
    check(&store, "r", &keys, 37, None, None);
    check(&store, "r@v0", &keys, 37, None, None);
    check(&store, "r", &keys, 1000, Some(10_000), Some(45_000));
}

/// Zone maps written before 2026-12-07 have a group record every 8 blocks (now every 4): the count is the
/// writer's choice, read from each group. `tests/fixtures/zonemap-groups-8/store` was written by commit b3e5e88
/// with `make_store.rs` beside it: it samples exactly, verifies clean, and takes this build's groups after it.
#[test]
fn zone_maps_with_groups_of_8_blocks_still_read_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zonemap-groups-8/store");
    common::copy_tree(&fixture, dir.path());
    let store = Store::open(dir.path()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(store.info("r").unwrap().rows, 30_000);
    assert_eq!(store.info("f").unwrap().rows, 12_346 + 5_000);
    let loss = ["loss".to_string()];
    for run in ["r", "f"] {
        for n in [1, 7, 100, 1000] {
            check(&store, run, &[], n, None, None);
        }
        check(&store, run, &loss, 33, Some(5_000), Some(20_000));
    }
    // A spike the fixture logged: NaN every 4,000 steps from 17 on in `lr`, never its extreme.
    let s = store.sample("r", &["lr"], 1, None, None).unwrap();
    let b = &s.series[0].buckets[0];
    assert_eq!((b.count, b.max, b.min.step), (30_000, forklog::Point { step: 0, value: -0.0 }, 29_999));
    // This build appends blocks (grouped by 4) to the finished run.
    let mut w = store.resume("r").unwrap();
    let steps: Vec<u64> = (30_000..42_000).collect();
    let loss_v: Vec<f64> = steps.iter().map(|s| ((s * 31) % 1_009) as f64).collect();
    w.log_columns(&steps, &[("loss", &loss_v)]).unwrap();
    w.finish(0).unwrap();
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for n in [3, 500] {
        check(&store, "r", &[], n, None, None);
        check(&store, "r", &loss, n, Some(20_000), None);
    }
}
