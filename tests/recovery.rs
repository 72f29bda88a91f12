//! Recovery: a torn tail (cut at every byte offset of the last record, or zero-filled) is truncated and
//! reported before the next append and never breaks reads; corruption in the middle of a segment, in a
//! sealed segment or in a header is a typed `Corrupt` error, never a silent loss. Also: deleting a parent
//! keeps its forks readable, and `gc` frees exactly what no live run reaches.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use forklog::{metrics, Error, ForkPoint, Options, ProblemKind, Store, SyncPolicy};

fn opts() -> Options {
    Options::default().sync(SyncPolicy::Always)
}

fn seg(dir: &Path, run: &str, name: &str) -> PathBuf {
    dir.join("runs").join(run).join(name)
}

fn steps(store: &Store, run: &str) -> forklog::Result<Vec<u64>> {
    store.history(run)?.map(|r| r.map(|r| r.step)).collect()
}

/// A run of `n` rows, each its own frame (SyncPolicy::Always); returns the segment length before the last frame.
fn build(dir: &Path, n: u64) -> u64 {
    let store = Store::open_with(dir, opts()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let mut before_last = 0;
    for i in 0..n {
        if i + 1 == n {
            before_last = fs::metadata(seg(dir, "r", "v0-0.seg")).unwrap().len();
        }
        w.log(metrics! { "x" => i as f64 }).unwrap();
    }
    before_last
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut_and_reported() {
    let src = tempfile::tempdir().unwrap();
    let before_last = build(src.path(), 5);
    let full = fs::read(seg(src.path(), "r", "v0-0.seg")).unwrap();
    assert!(full.len() as u64 > before_last + 12);
    for cut in before_last..full.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = seg(dir.path(), "r", "v0-0.seg");
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let store = Store::open_with(dir.path(), opts()).unwrap();
        let torn = cut != before_last;
        // Readers see the intact prefix; verify reports a torn tail, not corruption.
        assert_eq!(steps(&store, "r").unwrap(), vec![0, 1, 2, 3], "cut at {cut}");
        let report = store.verify().unwrap();
        assert!(report.is_clean(), "cut at {cut}: {:?}", report.problems);
        assert_eq!(report.problems.iter().any(|p| p.kind == ProblemKind::TornTail), torn, "cut at {cut}");
        // The next writer cuts the tail, reports it, and appends after the valid prefix.
        let mut w = store.resume("r").unwrap();
        let cuts: Vec<_> = w.recovery().cuts.iter().map(|c| (c.file.clone(), c.valid_len, c.bytes_cut)).collect();
        if torn {
            assert_eq!(cuts, vec![(path.clone(), before_last, cut - before_last)], "cut at {cut}");
        } else {
            assert!(cuts.is_empty(), "cut at {cut}: {cuts:?}");
        }
        assert_eq!(w.log(metrics! { "x" => 99.0 }).unwrap(), 4);
        drop(w);
        assert_eq!(steps(&store, "r").unwrap(), vec![0, 1, 2, 3, 4]);
        assert!(store.verify().unwrap().problems.is_empty());
    }
}

#[test]
fn zero_filled_or_garbage_tail_never_parses_as_records() {
    for fill in [0u8, 0xff, 0x5a] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 4);
        let path = seg(dir.path(), "r", "v0-0.seg");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&vec![fill; 4096]).unwrap();
        drop(f);
        let store = Store::open_with(dir.path(), opts()).unwrap();
        assert_eq!(steps(&store, "r").unwrap(), vec![0, 1, 2, 3]);
        let w = store.resume("r").unwrap();
        assert_eq!(w.recovery().bytes_cut(), 4096);
        assert_eq!(w.recovery().cuts.len(), 1);
    }
}

#[test]
fn corruption_followed_by_valid_records_is_an_error_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 6);
    let path = seg(dir.path(), "r", "v0-0.seg");
    let mut bytes = fs::read(&path).unwrap();
    // Flip a bit in the length field of the second frame (80-byte header, then frames).
    let first_len = u32::from_le_bytes(bytes[80..84].try_into().unwrap()) as usize;
    let second = 80 + 12 + first_len;
    bytes[second] ^= 0x04;
    fs::write(&path, &bytes).unwrap();
    let store = Store::open_with(dir.path(), opts()).unwrap();
    let err = steps(&store, "r").unwrap_err();
    assert!(matches!(&err, Error::Corrupt { offset, .. } if *offset == second as u64), "{err}");
    assert!(matches!(store.resume("r"), Err(Error::Corrupt { .. })));
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    assert!(report.problems.iter().any(|p| p.kind == ProblemKind::Corrupt && p.file == path));
    // Nothing was truncated.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn corruption_in_a_sealed_segment_or_header_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_with(
            dir.path(),
            Options::default().segment_size(4096).buffer_size(256).sync(SyncPolicy::Never),
        )
        .unwrap();
        let mut w = store.create_run("r").unwrap();
        for i in 0..2000u64 {
            w.log(metrics! { "x" => i as f64 }).unwrap();
        }
    }
    let path = seg(dir.path(), "r", "v0-1.seg");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // the last byte of a sealed segment: no torn-tail excuse there
    fs::write(&path, &bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(steps(&store, "r"), Err(Error::Corrupt { .. })));
    assert!(!store.verify().unwrap().is_clean());
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(steps(&store, "r").unwrap().len(), 2000);
    let head = seg(dir.path(), "r", "v0.head");
    let mut h = fs::read(&head).unwrap();
    h[20] ^= 0x10;
    fs::write(&head, &h).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(store.info("r"), Err(Error::Corrupt { .. })));
    assert!(!store.verify().unwrap().is_clean());
}

#[test]
fn deleting_a_parent_keeps_its_forks_and_gc_frees_only_unreachable_files() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), Options::default().segment_size(4096).buffer_size(256).sync(SyncPolicy::Never))
            .unwrap();
    let mut w = store.create_run("parent").unwrap();
    for i in 0..3000u64 {
        w.log(metrics! { "x" => i as f64 }).unwrap();
    }
    drop(w);
    drop(store.fork("child", &ForkPoint::new("parent", 500)).unwrap());
    let mut lonely = store.create_run("lonely").unwrap();
    lonely.log(metrics! { "y" => 1 }).unwrap();
    drop(lonely);
    store.delete_run("parent").unwrap();
    store.delete_run("lonely").unwrap();
    assert!(matches!(store.history("parent").err(), Some(Error::RunNotFound { .. })));
    assert!(matches!(store.create_run("parent"), Err(Error::RunExists { .. })));
    assert_eq!(store.runs().unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["child"]);
    assert!(store.runs_all().unwrap().iter().any(|r| r.id == "parent" && r.deleted));
    let segs_before = count(&dir.path().join("runs/parent"), ".seg");
    let report = store.gc().unwrap();
    assert_eq!(report.runs_removed, ["lonely"]);
    assert!(report.bytes_freed > 0 && report.files_removed > 0);
    let segs_after = count(&dir.path().join("runs/parent"), ".seg");
    assert!(segs_after < segs_before, "segments past the fork point are freed: {segs_before} -> {segs_after}");
    assert_eq!(steps(&store, "child").unwrap(), (0..=500).collect::<Vec<_>>());
    assert!(store.verify().unwrap().is_clean());
    // Once the child goes too, everything goes; the id is free again.
    store.delete_run("child").unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.runs_removed, ["child", "parent"]);
    assert!(store.runs_all().unwrap().is_empty());
    store.create_run("parent").unwrap();
}

fn count(dir: &Path, ext: &str) -> usize {
    fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(ext)).count()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Regression (found by the CLI SIGKILL loop): a writer killed between creating its first segment, index
/// or key table and writing their headers left empty files; reads and `verify` called them corrupt.
#[test]
fn files_whose_creation_was_cut_short_read_as_empty_and_are_recreated() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 3);
    let store = Store::open_with(dir.path(), opts()).unwrap();
    drop(store.fork("f", &ForkPoint::new("r", 1)).unwrap());
    for name in ["v0-0.seg", "v0-0.idx", "v0.keys"] {
        fs::write(seg(dir.path(), "f", name), b"").unwrap();
    }
    assert_eq!(steps(&store, "f").unwrap(), vec![0, 1]);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    // The segment and the key table (the index of an unreadable segment is not looked at).
    assert_eq!(report.problems.iter().filter(|p| p.kind == ProblemKind::TornTail).count(), 2);
    let mut w = store.resume("f").unwrap();
    // The empty segment and the empty key table were removed (the empty index went with its segment).
    let mut cut: Vec<String> =
        w.recovery().cuts.iter().map(|c| c.file.file_name().unwrap().to_string_lossy().into_owned()).collect();
    cut.sort();
    assert_eq!(cut, vec!["v0-0.idx", "v0-0.seg", "v0.keys"]);
    w.log(metrics! { "new_key" => 1.0 }).unwrap();
    drop(w);
    assert_eq!(steps(&store, "f").unwrap(), vec![0, 1, 2]);
    assert!(store.verify().unwrap().problems.is_empty());
}

/// A run `r` of 400 one-row frames, none of them ever synced (so its step index has no entries yet: they are
/// written only after their frame is durable).
fn unsynced_run(dir: &Path) {
    let store = Store::open_with(dir, Options::default().sync(SyncPolicy::Never).buffer_size(1)).unwrap();
    let mut w = store.create_run("r").unwrap();
    for i in 0..400u64 {
        w.log(metrics! { "x" => i as f64 }).unwrap();
    }
}

/// Zeroes the 11th frame of `r`: every frame was written unsynced, so this is a crash's hole, not corruption.
fn zero_the_11th_frame(dir: &Path) {
    let path = seg(dir, "r", "v0-0.seg");
    let mut bytes = fs::read(&path).unwrap();
    let mut off = 80usize;
    for _ in 0..10 {
        off += 12 + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    }
    let len = 12 + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    bytes[off..off + len].fill(0);
    fs::write(&path, &bytes).unwrap();
}

/// Regression (found by fuzz/segment_recovery): after a crash left a hole in unsynced data with later
/// unsynced frames surviving, a full read stopped at the hole (a torn tail) but a seek through the step index
/// jumped past it and returned rows beyond it. Index entries are now written only after their frame is durable,
/// so none lies past such a hole.
#[test]
fn a_seek_never_jumps_past_an_unsynced_hole() {
    let dir = tempfile::tempdir().unwrap();
    unsynced_run(dir.path());
    zero_the_11th_frame(dir.path());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(steps(&store, "r").unwrap(), (0..10).collect::<Vec<_>>());
    let late: Vec<u64> = store
        .history_with("r", &forklog::HistoryOptions::new().from_step(300))
        .unwrap()
        .map(|r| r.unwrap().step)
        .collect();
    assert!(late.is_empty(), "a seek returned rows past the hole: {late:?}");
    assert_eq!(store.info("r").unwrap().rows, 10);
    assert!(store.verify().unwrap().is_clean());
    let mut w = store.resume("r").unwrap();
    assert_eq!(w.log(metrics! { "x" => 1.0 }).unwrap(), 10);
}

/// The same hole, met by a fork before any recovery: the lookup has no index entry past the hole to start
/// from, meets the hole as a full read does, so the fork pins only what a full read shows and the parent's next
/// writer can still cut the hole. Without the hole, the fork sees everything.
#[test]
fn a_fork_never_pins_past_an_unsynced_hole() {
    for hole in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        unsynced_run(dir.path());
        if hole {
            zero_the_11th_frame(dir.path());
        }
        let store = Store::open(dir.path()).unwrap();
        drop(store.fork("f", &forklog::ForkPoint::new("r", 300)).unwrap());
        let want: Vec<u64> = if hole { (0..10).collect() } else { (0..=300).collect() };
        assert_eq!(steps(&store, "f").unwrap(), want, "hole: {hole}");
        let mut w = store.resume("r").unwrap();
        assert_eq!(w.log(metrics! { "x" => 1.0 }).unwrap(), if hole { 10 } else { 400 });
        drop(w);
        assert_eq!(steps(&store, "f").unwrap(), want, "hole: {hole}");
        assert!(store.verify().unwrap().is_clean());
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Every byte recovery removes is in the report: garbage after the key table's last record, and a torn
/// segment tail, both listed (neither overwrites the other) with their file, size and valid length.
#[test]
fn every_cut_is_reported_key_table_and_segment_alike() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 4);
    let segp = seg(dir.path(), "r", "v0-0.seg");
    let keysp = seg(dir.path(), "r", "v0.keys");
    let (seg_len, keys_len) = (fs::metadata(&segp).unwrap().len(), fs::metadata(&keysp).unwrap().len());
    append(&keysp, &[0x5a; 17]);
    append(&segp, &[0x5a; 300]);
    let store = Store::open_with(dir.path(), opts()).unwrap();
    let w = store.resume("r").unwrap();
    let cuts: Vec<_> = w.recovery().cuts.iter().map(|c| (c.file.clone(), c.bytes_cut, c.valid_len)).collect();
    assert_eq!(cuts, vec![(keysp.clone(), 17, keys_len), (segp.clone(), 300, seg_len)]);
    assert_eq!(w.recovery().bytes_cut(), 317);
    assert_eq!(fs::metadata(&keysp).unwrap().len(), keys_len);
    drop(w);
    // A clean reopen cuts nothing.
    assert!(store.resume("r").unwrap().recovery().is_empty());
}

/// A rewind recovers the version it archives first; what it cuts there is in the new writer's report.
#[test]
fn rewind_reports_the_tail_it_cuts_from_the_archived_version() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 4);
    let segp = seg(dir.path(), "r", "v0-0.seg");
    let seg_len = fs::metadata(&segp).unwrap().len();
    append(&segp, &[0; 64]);
    let store = Store::open_with(dir.path(), opts()).unwrap();
    let w = store.rewind("r", 1).unwrap();
    let cuts: Vec<_> = w.recovery().cuts.iter().map(|c| (c.file.clone(), c.bytes_cut, c.valid_len)).collect();
    assert_eq!(cuts, vec![(segp, 64, seg_len)]);
    drop(w);
    assert_eq!(steps(&store, "r").unwrap(), vec![0, 1]);
    assert_eq!(steps(&store, "r@v0").unwrap(), vec![0, 1, 2, 3]);
    assert!(store.verify().unwrap().problems.is_empty());
}

/// A run with sealed segments v0-0, v0-1 and an active v0-2 (segments of 4 KiB).
fn build_sealed(dir: &Path) -> Store {
    let store = Store::open_with(dir, opts().segment_size(4096)).unwrap();
    let mut w = store.create_run("r").unwrap();
    let mut i = 0u64;
    while !seg(dir, "r", "v0-2.seg").exists() {
        w.log(metrics! { "x" => i as f64, "pad" => "p".repeat(300) }).unwrap();
        i += 1;
    }
    drop(w);
    store
}

/// Bytes that were ever sealed are never cut or appended to: when recovery removes a torn newest segment, the
/// sealed one before it stays byte for byte as it was (the writer starts the removed segment afresh), and a bad
/// tail in it is corruption, not a torn tail to cut.
#[test]
fn sealed_bytes_are_never_cut_even_after_removing_a_torn_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = build_sealed(dir.path());
    let rows = steps(&store, "r").unwrap();
    // A crash right after a roll created v0-3 (its header never written): v0-2 was sealed by the roll.
    let sealed = fs::read(seg(dir.path(), "r", "v0-2.seg")).unwrap();
    drop(store);
    fs::write(seg(dir.path(), "r", "v0-3.seg"), b"").unwrap();
    let store = Store::open_with(dir.path(), opts().segment_size(1 << 20)).unwrap();
    let mut w = store.resume("r").unwrap();
    let cut: Vec<_> = w.recovery().cuts.iter().map(|c| c.file.clone()).collect();
    assert_eq!(cut, vec![seg(dir.path(), "r", "v0-3.seg")]);
    let next = w.log(metrics! { "x" => -1.0 }).unwrap();
    assert_eq!(next, *rows.last().unwrap() + 1);
    drop(w);
    assert!(fs::read(seg(dir.path(), "r", "v0-2.seg")).unwrap() == sealed, "a sealed segment was modified");
    assert!(seg(dir.path(), "r", "v0-3.seg").exists());
    let mut want = rows.clone();
    want.push(next);
    assert_eq!(steps(&store, "r").unwrap(), want);
    assert!(store.verify().unwrap().problems.is_empty());

    // Garbage after the last frame of a sealed segment, with a torn segment after it: corruption, nothing cut.
    let dir = tempfile::tempdir().unwrap();
    build_sealed(dir.path());
    let p1 = seg(dir.path(), "r", "v0-1.seg");
    let mut damaged = fs::read(&p1).unwrap();
    damaged.extend_from_slice(&[0x5a; 100]);
    fs::write(&p1, &damaged).unwrap();
    fs::remove_file(seg(dir.path(), "r", "v0-2.seg")).unwrap();
    fs::write(seg(dir.path(), "r", "v0-2.seg"), b"").unwrap();
    let store = Store::open_with(dir.path(), opts().segment_size(4096)).unwrap();
    match store.resume("r") {
        Err(e) => assert!(e.is_corruption(), "{e:?}"),
        Ok(w) => panic!("resumed over damaged sealed bytes: {:?}", w.recovery()),
    }
    assert!(fs::read(&p1).unwrap() == damaged, "sealed bytes were cut");
}
