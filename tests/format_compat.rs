//! Invariant: a store written by the previous on-disk format (version 1) stays readable and writable by this
//! build, value for value, and what this build adds to it verifies clean. `tests/fixtures/store-v1/store` was
//! written by forklog at commit 11d7d7f (format version 1) with `tests/fixtures/store-v1/make_store_v1.rs`;
//! the assertions below restate what that program logged. The fixture is copied before every test, so the
//! committed bytes are never touched.

use std::fs;
use std::path::{Path, PathBuf};

use forklog::{metrics, Error, HistoryOptions, RunState, Store, Value};

mod common;
use common::copy_tree;

/// The committed version-1 store.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/store")
}

/// A private copy of the fixture.
fn copy_of_fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    copy_tree(&fixture(), &dir);
    (tmp, dir)
}

/// The format version at bytes 8..10 of a file.
fn file_version(path: &Path) -> u16 {
    let b = fs::read(path).expect("read");
    u16::from_le_bytes([b[8], b[9]])
}

/// The float `loss` of every row of a run's history, with its step.
fn losses(store: &Store, run: &str) -> Vec<(u64, f64)> {
    store
        .history_with(run, &HistoryOptions::new().keys(["loss"]))
        .expect("history")
        .map(|r| {
            let r = r.expect("row");
            match r.metrics.get("loss") {
                Some(Value::Float(x)) => (r.step, *x),
                other => panic!("{run} step {}: loss is {other:?}", r.step),
            }
        })
        .collect()
}

#[test]
fn the_fixture_is_format_version_1() {
    let runs = fixture().join("runs");
    assert_eq!(file_version(&fixture().join("forklog.store")), 1);
    for f in ["base/v0.head", "base/v0-0.seg", "base/v0-1.seg", "base/v0-0.idx", "base/v0.keys", "fork-a/v0-0.seg"] {
        assert_eq!(file_version(&runs.join(f)), 1, "{f}");
    }
}

#[test]
fn every_value_of_a_version_1_store_reads_back() {
    let (_tmp, dir) = copy_of_fixture();
    let store = Store::open(&dir).expect("open a version-1 store");

    // base@v0: 120 rows; loss = 1/(s+1); every 10th row also has an int epoch and a string phase.
    let v0 = store.history("base@v0").expect("history").collect::<forklog::Result<Vec<_>>>().expect("rows");
    assert_eq!(v0.len(), 120);
    for (s, row) in v0.iter().enumerate() {
        let f = s as f64;
        assert_eq!(row.step, s as u64);
        assert_eq!(row.metrics.get("loss"), Some(&Value::Float(1.0 / (f + 1.0))));
        assert_eq!(row.metrics.get("acc"), Some(&Value::Float(f / 120.0)));
        assert_eq!(row.metrics.get("gn"), Some(&Value::Float(f.sqrt())));
        if s % 10 == 9 {
            assert_eq!(row.metrics.get("epoch"), Some(&Value::Int((s / 10) as i64)));
            let phase = if s < 60 { "warmup" } else { "main" };
            assert_eq!(row.metrics.get("phase"), Some(&Value::Str(phase.into())));
        } else {
            assert_eq!(row.metrics.len(), 5, "step {s}");
        }
    }
    // base (v1): rewound to 59, then loss = 2 + s for 60..80.
    let base = losses(&store, "base");
    assert_eq!(base.len(), 80);
    assert_eq!(base[59], (59, 1.0 / 60.0));
    assert_eq!(base[60], (60, 62.0));
    assert_eq!(base[79], (79, 81.0));
    // fork-a: base@v0 up to 99, then loss = -s for 100..110.
    let a = losses(&store, "fork-a");
    assert_eq!(a.len(), 110);
    assert_eq!(a[99], (99, 0.01));
    assert_eq!(a[100], (100, -100.0));
    // fork-b: fork-a up to 104, then three rows by log_columns: 0.5, NaN, -0.0 (bits kept).
    let b = losses(&store, "fork-b");
    assert_eq!(b.len(), 108);
    assert_eq!(b[104], (104, -104.0));
    assert_eq!(b[105], (105, 0.5));
    assert!(b[106].1.is_nan());
    assert_eq!(b[107].1.to_bits(), (-0.0f64).to_bits());

    // Config and summary patches, and the fork's inherited config.
    let config = store.config("base").expect("config");
    assert_eq!(config.get("lr"), Some(&Value::Float(0.1)));
    assert_eq!(config.get("opt"), Some(&Value::Str("adam".into())));
    assert_eq!(config.get("bs"), Some(&Value::Int(32)));
    assert_eq!(store.config("fork-a").expect("config").get("lr"), Some(&Value::Float(0.01)));
    let summary = store.summary("base@v0").expect("summary");
    assert_eq!(summary.get("best"), Some(&Value::Float(0.25)));
    assert_eq!(summary.get("note"), Some(&Value::Str("ok".into())));
    assert_eq!(store.system("base@v0").expect("system").count(), 1);

    // Listing: states, parents, the deleted run kept for its fork.
    let info = store.info("fork-a").expect("info");
    assert_eq!(info.parent.map(|p| p.to_string()), Some("base@v0".to_string()));
    assert_eq!(info.fork_step, Some(99));
    assert_eq!(info.state, RunState::Finished);
    let last = store.events("fork-a").expect("events").last().expect("an event").expect("decoded");
    assert!(matches!(last.event, forklog::Event::Finish { exit_code: 1, .. }), "{last:?}");
    assert!(matches!(store.info("fork-b").expect("info").state, RunState::Crashed | RunState::Running));
    let ids: Vec<String> = store.runs().expect("runs").into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["base", "fork-a", "fork-b", "gone-child"]);
    assert_eq!(store.history("gone-child").expect("history").count(), 3);
    assert!(store.verify().expect("verify").is_clean());
}

#[test]
fn a_version_1_store_takes_new_writes_and_declares_version_2() {
    let (_tmp, dir) = copy_of_fixture();
    let store = Store::open(&dir).expect("open");
    // A writable open declares the newer format in the store file; existing files keep their version.
    assert_eq!(file_version(&dir.join("forklog.store")), 2);
    assert_eq!(file_version(&dir.join("runs/base/v0-0.seg")), 1);

    // Fork from a version-1 parent, resume a version-1 run, rewind one: new files are version 2.
    let mut f = store.fork("new-fork", &"fork-a?_step=102".parse().expect("spec")).expect("fork");
    f.log(metrics! { "loss" => 7.5 }).expect("log");
    f.finish(0).expect("finish");
    assert_eq!(file_version(&dir.join("runs/new-fork/v0.head")), 2);
    assert_eq!(file_version(&dir.join("runs/new-fork/v0-0.seg")), 2);
    let l = losses(&store, "new-fork");
    assert_eq!(l.len(), 104);
    assert_eq!(l[102], (102, -102.0));
    assert_eq!(l[103], (103, 7.5));

    let mut b = store.resume("fork-b").expect("resume an unfinished version-1 run");
    assert_eq!(b.next_step(), 108);
    b.log(metrics! { "loss" => 1.25 }).expect("log");
    b.finish(0).expect("finish");
    assert_eq!(losses(&store, "fork-b").last(), Some(&(108, 1.25)));

    let mut r = store.rewind("base", 10).expect("rewind");
    r.log(metrics! { "loss" => 3.0 }).expect("log");
    r.finish(0).expect("finish");
    assert_eq!(file_version(&dir.join("runs/base/v2.head")), 2);
    assert_eq!(losses(&store, "base").len(), 12);
    assert_eq!(losses(&store, "base@v1").len(), 80);

    assert!(store.verify().expect("verify").is_clean());
    drop(store);
    // And it all reads back after reopening.
    let store = Store::open(&dir).expect("reopen");
    assert_eq!(losses(&store, "new-fork").len(), 104);
    assert!(store.verify().expect("verify").is_clean());
}

#[test]
fn a_newer_format_than_this_build_is_refused() {
    let (_tmp, dir) = copy_of_fixture();
    let path = dir.join("forklog.store");
    let mut b = fs::read(&path).expect("read");
    b[8..10].copy_from_slice(&3u16.to_le_bytes());
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &b).expect("write");
    match Store::open(&dir) {
        Err(Error::UnsupportedFormat { found: 3, supported: 2, .. }) => {}
        other => panic!("expected UnsupportedFormat, got {:?}", other.map(|_| ())),
    }
}

/// Issue 12: a version-1 store has no zone maps; `sample`, `summary`, `config` and the runs table compute what
/// they lack from the segments, equal to a replay. A version-2 writer that resumes a version-1 run starts zone
/// maps for the segment it writes (a version-2 file beside version-1 segments), which verify checks.
#[test]
fn version_1_runs_sample_and_summarize_without_zone_maps() {
    let (_tmp, dir) = copy_of_fixture();
    let store = Store::open(&dir).expect("open");
    let zmaps = |d: &Path| -> usize {
        fs::read_dir(d)
            .map(|e| e.filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|x| x == "zmap")).count())
            .unwrap_or(0)
    };
    assert_eq!(zmaps(&dir.join("runs/base")), 0, "version-1 runs have no zone maps");
    let none: [&str; 0] = [];
    for run in ["base", "base@v0", "fork-a", "fork-b"] {
        for n in [1, 7, 50] {
            let fast = store.sample(run, &none, n, None, None).expect("sample");
            let slow = store.sample_by_replay(run, &none, n, None, None).expect("sample by replay");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{run} {n}");
            assert!(!fast.series.is_empty(), "{run}");
        }
        assert_eq!(
            format!("{:?}", store.summary(run).unwrap()),
            format!("{:?}", store.summary_by_replay(run).unwrap())
        );
        assert_eq!(format!("{:?}", store.config(run).unwrap()), format!("{:?}", store.config_by_replay(run).unwrap()));
    }
    let table = store.runs_table(&["loss"]).expect("runs table");
    assert!(table.iter().any(|r| r.info.id == "fork-a" && r.summary.contains_key("loss")));
    // Resume a version-1 run: its active segment gets a version-2 zone map covering the old frames too.
    let mut b = store.resume("fork-b").expect("resume");
    let next = b.next_step();
    b.log(metrics! { "loss" => 0.125 }).expect("log");
    b.sync().expect("sync");
    drop(b);
    let zm: Vec<PathBuf> = fs::read_dir(dir.join("runs/fork-b"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zmap"))
        .collect();
    assert_eq!(zm.len(), 1, "one zone map, for the active segment");
    assert_eq!(file_version(&zm[0]), 2);
    let s = store.sample("fork-b", &["loss"], 3, None, None).expect("sample");
    assert_eq!(s.series[0].buckets.last().unwrap().last, forklog::Point { step: next, value: 0.125 });
    assert_eq!(
        format!("{:?}", s),
        format!("{:?}", store.sample_by_replay("fork-b", &["loss"], 3, None, None).unwrap())
    );
    assert_eq!(store.summary("fork-b").unwrap().get("loss"), Some(&Value::Float(0.125)));
    assert!(store.verify().expect("verify").is_clean());
}

#[test]
fn a_read_only_open_of_a_version_1_store_changes_no_byte_and_shows_empty_metadata() {
    let (_tmp, dir) = copy_of_fixture();
    let before: Vec<(PathBuf, Vec<u8>)> = all_files(&dir);
    let store = Store::open_existing(&dir).expect("read-only open");
    // The new read paths on old runs: metadata is empty, listings carry it.
    for info in store.runs_all().expect("runs") {
        assert_eq!(info.meta, forklog::RunMeta::default(), "{}", info.id);
    }
    assert_eq!(store.meta("fork-b").expect("meta"), forklog::RunMeta::default());
    assert_eq!(store.info("base@v0").expect("info").meta, forklog::RunMeta::default());
    assert_eq!(losses(&store, "fork-b").len(), 108);
    assert!(store.verify().expect("verify").is_clean());
    drop(store);
    // Not even the store file's format declaration was upgraded.
    assert_eq!(all_files(&dir), before);
    assert_eq!(file_version(&dir.join("forklog.store")), 1);
}

#[test]
fn metadata_on_a_resumed_version_1_run_goes_to_a_new_version_2_segment() {
    let (_tmp, dir) = copy_of_fixture();
    let store = Store::open(&dir).expect("open");
    let mut b = store.resume("fork-b").expect("resume a version-1 run");
    b.log(metrics! { "loss" => 1.0 }).expect("log"); // into the version-1 active segment
    b.set_meta(forklog::MetaPatch::new().name("old run").tag("v1")).expect("set_meta");
    b.log(metrics! { "loss" => 2.0 }).expect("log");
    b.finish(0).expect("finish");
    assert_eq!(file_version(&dir.join("runs/fork-b/v0-0.seg")), 1);
    assert_eq!(file_version(&dir.join("runs/fork-b/v0-1.seg")), 2);
    let m = store.meta("fork-b").expect("meta");
    assert_eq!((m.name.as_deref(), m.tags.as_slice()), (Some("old run"), &["v1".to_string()][..]));
    assert_eq!(losses(&store, "fork-b")[108..], [(108, 1.0), (109, 2.0)]);
    assert!(store.verify().expect("verify").is_clean());
}

/// SplitMix64's finalizer (docs/FORMAT.md).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_meta_event_in_a_version_1_segment_is_corruption() {
    use forklog::internals::{encode_event, encode_prefix, frame_header, EncEvent, VersionHeader};
    let (_tmp, dir) = copy_of_fixture();
    let run = dir.join("runs/fork-b");
    let head = fs::read(run.join("v0.head")).expect("head");
    let nonce = VersionHeader::decode(&run.join("v0.head"), &head).expect("header").nonce;
    let salt = mix(nonce ^ mix(1));
    // A CRC-valid frame holding one Meta event (tag 6), appended to the version-1 active segment.
    let patch = forklog::MetaPatch::new().name("x");
    let mut body = Vec::new();
    let (mut ps, mut pt) = (107u64, 0i64);
    encode_event(&mut body, &EncEvent::Meta { step: 107, patch: &patch }, &mut ps, &mut pt);
    let seg = run.join("v0-0.seg");
    let mut bytes = fs::read(&seg).expect("segment");
    let mut payload = Vec::new();
    encode_prefix(&mut payload, 1, 107, 0, bytes.len() as u64);
    payload.extend_from_slice(&body);
    let off = bytes.len() as u64;
    bytes.extend_from_slice(&frame_header(salt, off, &payload));
    bytes.extend_from_slice(&payload);
    fs::write(&seg, &bytes).expect("write");

    let store = Store::open_existing(&dir).expect("open");
    let err = store.events("fork-b").expect("events").find_map(|e| e.err()).expect("an error");
    match &err {
        Error::Corrupt { file, offset, reason } => {
            assert_eq!((file.as_path(), *offset), (seg.as_path(), off));
            assert!(reason.contains("format version 1"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(store.meta("fork-b").expect_err("meta").is_corruption());
    let report = store.verify().expect("verify");
    assert!(!report.is_clean());
    assert!(report.problems.iter().any(|p| p.kind == forklog::ProblemKind::Corrupt && p.offset == off), "{report:?}");
    // The same frame in a version-2 segment is a valid Meta event (checked by the codec's tests).
}

/// Every file under `dir` with its bytes, sorted.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}
