//! Invariant: verify has no blind spot in derived data that must be complete. A writer that closes cleanly ends
//! its active segment's step index with a close record, so a damaged entry there (or anywhere in a sealed
//! segment's index) is corruption, reported with file and offset as derived data; `Store::repair` rebuilds it
//! from the segment (and so does the next writer), and reads never change. A writer that did not close leaves
//! no close record: its index may lag or end torn, which stays a torn tail, not corruption.

use std::fs;
use std::path::Path;

use forklog::{metrics, Options, ProblemKind, Store, SyncPolicy};

/// Logs `n` rows of five floats (about 58 bytes each: an index entry every ~70 rows).
fn fill(store: &Store, id: &str, n: u64) -> forklog::RunWriter {
    let mut w = store.create_run(id).unwrap();
    for i in 0..n {
        let x = i as f64;
        w.log(metrics! { "a" => x, "b" => x * 2.0, "c" => x / 3.0, "d" => -x, "e" => x + 0.5 }).unwrap();
        if i % 100 == 0 {
            w.sync().unwrap();
        }
    }
    w
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x04;
    fs::write(path, &b).unwrap();
}

fn losses(store: &Store, id: &str) -> Vec<(u64, forklog::Value)> {
    store.history(id).unwrap().map(|r| r.unwrap()).map(|r| (r.step, r.metrics["a"].clone())).collect()
}

#[test]
fn damage_in_a_cleanly_closed_index_is_corruption_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never).buffer_size(4096)).unwrap();
    fill(&store, "r", 2000).finish(0).unwrap();
    let idx = dir.path().join("runs/r/v0-0.idx");
    let before = fs::read(&idx).unwrap();
    assert!(before.len() >= 32 + 3 * 64, "entries and a close record");
    assert!(store.verify().unwrap().is_clean());
    let rows = losses(&store, "r");

    for at in [32 + 5, 32 + 64 + 20, before.len() - 64 - 3] {
        flip(&idx, at);
        let report = store.verify().unwrap();
        let p = report.problems.iter().find(|p| p.file == idx).unwrap_or_else(|| panic!("byte {at}: {report:?}"));
        assert_eq!(p.kind, ProblemKind::Corrupt);
        assert_eq!(p.offset, (32 + (at - 32) / 64 * 64) as u64, "byte {at}");
        assert!(p.message.contains("derived data"), "{}", p.message);
        assert_eq!(losses(&store, "r"), rows, "reads never change");
        let fixed = store.repair().unwrap();
        assert_eq!(fixed.rebuilt, std::slice::from_ref(&idx));
        assert_eq!(fs::read(&idx).unwrap(), before, "rebuilt byte for byte, close record included");
        assert!(store.verify().unwrap().is_clean());
    }

    // The next writer rebuilds it too (and drops the close record before appending).
    flip(&idx, 32 + 7);
    let mut w = store.resume("r").unwrap();
    w.log(metrics! { "a" => 1.0 }).unwrap();
    drop(w);
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(losses(&store, "r").len(), 2001);
}

#[test]
fn a_writer_that_did_not_close_leaves_no_close_record_and_its_index_stays_lenient() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default().sync(SyncPolicy::Never).buffer_size(4096)).unwrap();
    let mut w = fill(&store, "r", 2000);
    w.sync().unwrap();
    let idx = dir.path().join("runs/r/v0-0.idx");
    // While the writer is open (as after a crash): no close record, entries are whole 64-byte records.
    let open_len = fs::read(&idx).unwrap().len();
    assert_eq!((open_len - 32) % 64, 0);
    std::mem::forget(w); // like a crash: no close
                         // The last entry torn: a torn index tail, not corruption.
    flip(&idx, open_len - 10);
    let report = Store::open_existing(dir.path()).unwrap().verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn damage_in_a_sealed_index_is_reported_as_derived_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().sync(SyncPolicy::Never).buffer_size(4096).segment_size(16 << 10);
    let store = Store::open_with(dir.path(), opts).unwrap();
    fill(&store, "r", 1000).finish(0).unwrap();
    let idx = dir.path().join("runs/r/v0-0.idx");
    assert!(dir.path().join("runs/r/v0-1.seg").exists(), "segment 0 is sealed");
    let before = fs::read(&idx).unwrap();
    flip(&idx, 40);
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    assert!(report.problems.iter().any(|p| p.file == idx && p.message.contains("derived data")), "{report:?}");
    // A read-only store refuses to repair.
    assert!(matches!(Store::open_existing(dir.path()).unwrap().repair(), Err(forklog::Error::ReadOnlyStore { .. })));
    store.repair().unwrap();
    assert_eq!(fs::read(&idx).unwrap(), before);
    assert!(store.verify().unwrap().is_clean());
    // A missing sealed index is rebuilt too.
    fs::remove_file(&idx).unwrap();
    assert!(!store.verify().unwrap().is_clean());
    store.repair().unwrap();
    assert_eq!(fs::read(&idx).unwrap(), before);
}

/// SplitMix64's finalizer (docs/FORMAT.md).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_close_record_that_miscounts_metadata_is_corruption_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    w.set_meta(forklog::MetaPatch::new().name("x")).unwrap();
    w.log(metrics! { "a" => 1.0 }).unwrap();
    w.finish(0).unwrap();
    let run = dir.path().join("runs/r");
    let head = fs::read(run.join("v0.head")).unwrap();
    let nonce = forklog::internals::VersionHeader::decode(&run.join("v0.head"), &head).unwrap().nonce;
    let salt = mix(nonce ^ mix(1));
    let idx = run.join("v0-0.idx");
    let good = fs::read(&idx).unwrap();
    // Rewrite the close record with a count of 0 and a valid CRC (as FORMAT.md specifies it).
    let mut b = good.clone();
    let at = b.len() - 64;
    assert_eq!(b[at + 16..at + 24], 1u64.to_le_bytes(), "the close record counts one Meta event");
    b[at + 16..at + 24].copy_from_slice(&0u64.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(b"FLKCLOSE");
    h.update(&b[at..at + 60]);
    let crc = h.finalize();
    b[at + 60..].copy_from_slice(&crc.to_le_bytes());
    fs::write(&idx, &b).unwrap();
    let report = store.verify().unwrap();
    let p = report.problems.iter().find(|p| p.file == idx).expect("reported");
    assert_eq!((p.kind, p.offset), (ProblemKind::Corrupt, at as u64));
    store.repair().unwrap();
    assert_eq!(fs::read(&idx).unwrap(), good);
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(store.meta("r").unwrap().name.as_deref(), Some("x"));
}
