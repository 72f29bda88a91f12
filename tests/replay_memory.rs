//! Replay memory promise: a replay keeps a bounded part of each memory-mapped sealed segment resident (the
//! reader releases the pages behind it), so peak RSS, which counts resident file-backed pages, does not grow
//! with the segment size or the history length. Rows read through released pages stay exact.

use forklog::{HistoryOptions, Metrics, Options, Store, SyncPolicy, Value};

const SEGMENT: u64 = 8 << 20;
const ROWS: u64 = 6_000;

fn blob(step: u64) -> String {
    (0..4000u64).map(|i| char::from(b'a' + ((step * 7 + i * 13) % 26) as u8)).collect()
}

fn store_with_sealed_segments(dir: &std::path::Path) -> Store {
    let store = Store::open_with(dir, Options::default().segment_size(SEGMENT).sync(SyncPolicy::Never)).unwrap();
    let mut w = store.create_run("big").unwrap();
    for step in 0..ROWS {
        let m = Metrics::from_iter([("blob".into(), Value::Str(blob(step))), ("i".into(), Value::Int(step as i64))]);
        w.log(m).unwrap();
    }
    drop(w);
    let sealed = std::fs::read_dir(dir.join("runs/big")).unwrap().filter_map(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        name.ends_with(".seg").then_some(name)
    });
    assert!(sealed.count() >= 3, "the history spans at least two sealed segments and the active one");
    store
}

/// Resident KiB of each mapping of a segment file of `dir`, from /proc/self/smaps.
#[cfg(target_os = "linux")]
fn resident_segment_maps(dir: &std::path::Path) -> Vec<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let prefix = dir.to_str().unwrap();
    let mut out = Vec::new();
    let mut in_segment = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            in_segment = path.starts_with(prefix) && path.ends_with(".seg");
        } else if in_segment && first == "Rss:" {
            out.push(fields.next().unwrap().parse().unwrap());
        }
    }
    out
}

#[test]
fn replay_over_sealed_segments_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_sealed_segments(dir.path());
    let mut next = 0u64;
    store
        .history("big")
        .unwrap()
        .for_each_row(|r| {
            assert_eq!(r.step, next);
            assert_eq!(r.get("i"), Some(&Value::Int(next as i64)));
            assert_eq!(r.get("blob"), Some(&Value::Str(blob(next))));
            next += 1;
        })
        .unwrap();
    assert_eq!(next, ROWS);
    // Owned rows and a seek into a sealed segment see the same bytes.
    let from = ROWS / 3;
    let rows: Vec<_> =
        store.history_with("big", &HistoryOptions::new().from_step(from)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len() as u64, ROWS - from);
    for (row, step) in rows.iter().zip(from..) {
        assert_eq!((row.step, &row.metrics["blob"]), (step, &Value::Str(blob(step))));
    }
    assert!(store.verify().unwrap().is_clean());
}

#[cfg(target_os = "linux")]
#[test]
fn replay_keeps_little_of_each_mapped_segment_resident() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_sealed_segments(dir.path());
    let canonical = dir.path().canonicalize().unwrap();
    let (mut rows, mut samples, mut peak) = (0u64, 0u64, 0u64);
    store
        .history("big")
        .unwrap()
        .for_each_row(|_| {
            rows += 1;
            if rows.is_multiple_of(16) {
                let maps = resident_segment_maps(&canonical);
                samples += u64::from(!maps.is_empty());
                peak = peak.max(maps.iter().sum());
            }
        })
        .unwrap();
    assert_eq!(rows, ROWS);
    assert!(samples > 100, "the replay read mapped segments ({samples} samples saw one)");
    // The reader releases every whole MiB behind it: about 1 MiB of a mapping stays resident (plus the frame
    // ahead and the kernel's fault-around), not the 8 MiB segment it walks (8 MiB were resident before).
    assert!(peak <= 3072, "{peak} KiB of mapped segments resident during the replay");
}
