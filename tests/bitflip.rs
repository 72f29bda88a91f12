//! Bit flips: every single-bit flip in a store's files is detected. By default (CI, seconds) a deterministic
//! sample that covers every file kind: every 8th bit of the store file, the tombstone, and of the first version
//! header and the fixed header of the first segment, step index, zone map and key table; every 64th header bit
//! (at an offset that moves from file to file) of the other files of each kind; and 8 bits spread over the rest
//! of every segment, step index, zone map and key table. `FORKLOG_BITFLIP_LONG=1` flips every bit of every
//! header, version header, key and tombstone and 200 more of every file (`FORKLOG_BITFLIP_SAMPLE` sets how many).
//! For each flip, `verify()` reports a `Corrupt` problem (the only exceptions are the two regions a crash
//! may legitimately leave invalid: the last frame of an active segment, which then reads as a torn tail,
//! and the step index of an active segment, which is unsynced derived data that readers and recovery
//! ignore when it does not check out); every read returns exactly the original records or stops with an
//! error (a prefix of exact records, never a wrong one); nothing panics; and no flipped length makes
//! the reader allocate more than the file could hold.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use forklog::testing::faultfs::{FaultFs, Snapshot};
use forklog::{metrics, EventRecord, ForkPoint, Key, Metrics, Options, ProblemKind, Store, SyncPolicy, Value};

/// Tracks the largest single allocation of the process: a reader that trusts a garbage length shows up
/// here as an allocation far larger than any file of the test store.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is updated.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// No allocation may exceed this while reading a store of a few dozen KiB.
const ALLOCATION_LIMIT: usize = 4 << 20;

fn opts(fs: &Arc<FaultFs>) -> Options {
    Options::default().vfs(fs.clone()).sync(SyncPolicy::Always).buffer_size(200).segment_size(4096)
}

fn row(i: u64) -> Metrics {
    // Padding makes segments roll every few rows: many segments, few events to decode per flip.
    let pad = Value::Bytes((0..700).map(|b| (b as u64 * 31 + i) as u8).collect());
    let mut m = metrics! { "loss" => 1.0 / (i as f64 + 1.0), "step_x2" => (2 * i) as i64, "pad" => pad };
    if i.is_multiple_of(4) {
        m.insert(Key::from(format!("k{}", i % 24)), Value::Str(format!("v{i}")));
    }
    if i.is_multiple_of(9) {
        m.insert(Key::from("nested"), Value::List(vec![Value::Null, Value::Bool(true), Value::Bytes(vec![1, 2, 3])]));
    }
    m
}

/// Sealed segments and indexes, key tables, headers, a fork, a fork of an archived version, a rewind, a
/// deleted run kept for its fork, config, summary, system samples and finish markers.
fn build() -> Arc<FaultFs> {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs)).expect("open");
    let mut base = store.create_run("base").expect("create");
    base.set_config(metrics! { "lr" => 0.01, "model" => "mlp" }).expect("config");
    for i in 0..24 {
        base.log(row(i)).expect("log");
        if i % 10 == 0 {
            base.log_system(metrics! { "gpu" => 0.5 }).expect("system");
        }
    }
    base.set_summary(metrics! { "best" => 0.1 }).expect("summary");
    drop(base);
    let mut fork = store.fork("fork", &ForkPoint::new("base", 8)).expect("fork");
    for _ in 0..5 {
        let s = fork.next_step();
        fork.log(row(s)).expect("log");
    }
    fork.finish(0).expect("finish");
    let mut rew = store.rewind("base", 12).expect("rewind");
    for _ in 0..4 {
        let s = rew.next_step();
        rew.log(row(s)).expect("log");
    }
    drop(rew);
    let mut old = store.fork("old", &"base@v0?_step=18".parse().expect("spec")).expect("fork v0");
    old.log(row(19)).expect("log");
    drop(old);
    let mut gone = store.create_run("gone").expect("create");
    for i in 0..8 {
        gone.log(row(i)).expect("log");
    }
    drop(gone);
    drop(store.fork("orphan", &ForkPoint::new("gone", 4)).expect("fork"));
    store.delete_run("gone").expect("delete");
    assert!(store.verify().expect("verify").is_clean());
    fs
}

/// Everything readable from a store, per run name (`ID` and `ID@vK`): its events, or the error text.
type Reads = BTreeMap<String, (Vec<EventRecord>, Option<String>)>;

fn names(fs: &Arc<FaultFs>) -> Vec<String> {
    let store = Store::open_with(FaultFs::store_path(), opts(fs)).expect("open");
    let mut out: Vec<String> = store.runs().expect("runs").into_iter().map(|i| i.id).collect();
    for info in store.runs_all().expect("runs_all") {
        if info.archived || info.deleted {
            out.push(format!("{}@v{}", info.id, info.version));
        }
    }
    out.push("gone".into());
    out.sort();
    out.dedup();
    out
}

/// Reads every name through `events` (and with `extras`, exercises every other read for panics).
fn read_all(store: &Store, names: &[String], extras: bool) -> Reads {
    let mut out = Reads::new();
    for name in names {
        let mut recs = Vec::new();
        let mut err = None;
        match store.events(name) {
            Ok(it) => {
                for r in it {
                    match r {
                        Ok(rec) => recs.push(rec),
                        Err(e) => {
                            err = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
            Err(e) => err = Some(e.to_string()),
        }
        let _ = store.info(name);
        if !extras {
            out.insert(name.clone(), (recs, err));
            continue;
        }
        let _ = store.summary(name);
        let _ = store.config(name);
        let _ = store.lineage(name);
        let _ =
            store.history_with(name, &forklog::HistoryOptions::new().from_step(33).keys(["loss"])).map(|h| h.count());
        out.insert(name.clone(), (recs, err));
    }
    if extras {
        let _ = store.runs();
        let _ = store.runs_all();
    }
    out
}

/// The bits of `len` bytes to flip in a file: for segments, indexes, key tables and zone maps the bits of the
/// fixed header and `sample` more spread over the rest; for other (small) files the whole file is the header.
/// Of the header, every `stride`-th bit, from an offset that moves with the file's length (so the files of a
/// kind cover different bits).
fn bits_for(path: &Path, len: usize, sample: usize, stride: usize) -> Vec<usize> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let header = if name.ends_with(".seg") {
        80
    } else if name.ends_with(".idx") || name.ends_with(".keys") || name.ends_with(".zmap") {
        32
    } else {
        return (len % stride..len * 8).step_by(stride).collect();
    };
    let mut bits: Vec<usize> = (len % stride..header.min(len) * 8).step_by(stride).collect();
    let rest = (len.saturating_sub(header)) * 8;
    // Zone maps are derived data checked the same way; a quarter of the sample keeps the test's time.
    let sample = if name.ends_with(".zmap") && sample > 100 { sample / 4 } else { sample };
    let mut x = len as u64 ^ 0x5EED;
    for _ in 0..sample.min(rest) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        bits.push(header * 8 + ((z ^ (z >> 31)) % rest as u64) as usize);
    }
    bits.sort_unstable();
    bits.dedup();
    bits
}

/// Byte ranges where a flip may go unreported by verify: the last frame of every active segment (it reads
/// as a torn tail) and every active step index (derived data, ignored when it does not check out).
fn lenient_ranges(fs: &Arc<FaultFs>) -> BTreeMap<PathBuf, (usize, usize)> {
    let mut out = BTreeMap::new();
    let runs = FaultFs::store_path().join("runs");
    for run in fs
        .files_under(&runs)
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect::<std::collections::BTreeSet<_>>()
    {
        let files: Vec<PathBuf> = fs.files_under(&run);
        let seg_of = |p: &PathBuf| -> Option<(u32, u32)> {
            let n = p.file_name()?.to_str()?.strip_prefix('v')?;
            let (v, rest) = n.split_once('-')?;
            let (s, ext) = rest.split_once('.')?;
            (ext == "seg").then_some(())?;
            Some((v.parse().ok()?, s.parse().ok()?))
        };
        let Some((v, s)) = files.iter().filter_map(seg_of).max() else { continue };
        let seg = run.join(format!("v{v}-{s}.seg"));
        let bytes = fs.contents(&seg).expect("segment");
        let (mut off, mut last) = (80usize, None);
        while off + 12 <= bytes.len() {
            last = Some(off);
            off += 12 + u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]) as usize;
        }
        if let Some(l) = last {
            out.insert(seg, (l, bytes.len()));
        }
        let idx = run.join(format!("v{v}-{s}.idx"));
        if let Ok(b) = fs.contents(&idx) {
            out.insert(idx, (0, b.len()));
        }
        // The active segment's zone map is unsynced derived data too.
        let zmap = run.join(format!("v{v}-{s}.zmap"));
        if let Ok(b) = fs.contents(&zmap) {
            out.insert(zmap, (0, b.len()));
        }
    }
    out
}

/// One flip: what went wrong, if anything.
fn check_flip(
    snap: &Snapshot,
    names: &[String],
    want: &Reads,
    path: &Path,
    bit: usize,
    lenient: bool,
) -> Option<String> {
    let extras = bit.is_multiple_of(16);
    let fs = FaultFs::from_snapshot(snap);
    fs.corrupt(path, (bit / 8) as u64, 1 << (bit % 8)).expect("flip");
    let ctx = format!("{} bit {bit} (byte {})", path.display(), bit / 8);
    let res = catch_unwind(AssertUnwindSafe(|| -> Option<String> {
        let store = match Store::open_with(FaultFs::store_path(), opts(&fs)) {
            Ok(s) => s,
            // Only the store file is read at open; a flip there must be reported as corruption.
            Err(e) if e.is_corruption() => return None,
            Err(e) => return Some(format!("{ctx}: open: {e}")),
        };
        let report = match store.verify() {
            Ok(r) => r,
            Err(e) => return Some(format!("{ctx}: verify failed instead of reporting: {e}")),
        };
        let corrupt = report.problems.iter().any(|p| p.kind == ProblemKind::Corrupt);
        let got = read_all(&store, names, extras);
        let mut changed = false;
        for (name, (recs, err)) in &got {
            let (orig, orig_err) = &want[name];
            if recs.len() > orig.len() || recs[..] != orig[..recs.len()] {
                return Some(format!("{ctx}: {name} returned wrong data"));
            }
            if recs.len() < orig.len() || err != orig_err {
                changed = true;
                if err.is_none() && !lenient {
                    return Some(format!("{ctx}: {name} silently lost records ({} of {})", recs.len(), orig.len()));
                }
            }
        }
        if !corrupt && !lenient {
            return Some(format!("{ctx}: verify is clean (reads changed: {changed}): {:?}", report.problems));
        }
        None
    }));
    match res {
        Ok(r) => r,
        Err(p) => Some(format!(
            "{ctx}: PANIC {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

fn flips(sample: usize, long: bool) {
    let started = Instant::now();
    let fs = build();
    let names = names(&fs);
    let want = {
        let store = Store::open_with(FaultFs::store_path(), opts(&fs)).expect("open");
        read_all(&store, &names, true)
    };
    // The names whose reads touch each run directory: the run itself and every run forked from it.
    let affected: BTreeMap<String, Vec<String>> = {
        let store = Store::open_with(FaultFs::store_path(), opts(&fs)).expect("open");
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in &names {
            let id = name.split('@').next().unwrap_or(name).to_string();
            let mut dirs = vec![id];
            if let Ok(lineage) = store.lineage(name) {
                dirs.extend(lineage.into_iter().map(|e| e.run.id));
            }
            for d in dirs {
                m.entry(d).or_default().push(name.clone());
            }
        }
        for v in m.values_mut() {
            v.sort();
            v.dedup();
        }
        m
    };
    let names_for = |path: &Path| -> Vec<String> {
        let run = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or_default();
        match path.parent().and_then(|p| p.parent()).is_some_and(|p| p.ends_with("runs")) {
            true => affected.get(run).cloned().unwrap_or_default(),
            false => names.clone(),
        }
    };
    assert!(want["base@v0"].0.len() > 24 && want["orphan"].0.len() == 5, "the store is what the test expects");
    let lenient = lenient_ranges(&fs);
    let snap = fs.snapshot();
    let mut cases: Vec<(PathBuf, usize, bool)> = Vec::new();
    // The first file of each kind (its extension, or its name) gets a denser share of header bits.
    let mut kinds = std::collections::BTreeSet::new();
    for path in fs.files() {
        let len = fs.contents(&path).expect("file").len();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let kind = name.rsplit_once('.').map_or(name.clone(), |(_, e)| e.to_string());
        let stride = match (long, kinds.insert(kind)) {
            (true, _) => 1,
            (false, true) => 8,
            (false, false) => 64,
        };
        for bit in bits_for(&path, len, sample, stride) {
            let l = lenient.get(&path).is_some_and(|(a, b)| (*a..*b).contains(&(bit / 8)));
            cases.push((path.clone(), bit, l));
        }
    }
    let segments = fs.files().iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).count();
    assert!(segments >= 6, "only {segments} segments");
    LARGEST.store(0, Ordering::Relaxed);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let chunk = cases.len().div_ceil(threads);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                let (snap, want, names_for) = (&snap, &want, &names_for);
                s.spawn(move || {
                    part.iter()
                        .filter_map(|(p, bit, l)| check_flip(snap, &names_for(p), want, p, *bit, *l))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
    });
    let largest = LARGEST.load(Ordering::Relaxed);
    eprintln!(
        "{} flips over {} files ({segments} segments) in {:?}; largest allocation {largest} bytes",
        cases.len(),
        fs.files().len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} flips went wrong; first ones:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(12)].join("\n")
    );
    assert!(largest < ALLOCATION_LIMIT, "a flipped length made the reader allocate {largest} bytes");
}

#[test]
fn every_flip_is_detected_and_never_misread() {
    let long = std::env::var_os("FORKLOG_BITFLIP_LONG").is_some();
    let sample = std::env::var("FORKLOG_BITFLIP_SAMPLE").ok().and_then(|s| s.parse().ok());
    flips(sample.unwrap_or(if long { 200 } else { 8 }), long);
}
