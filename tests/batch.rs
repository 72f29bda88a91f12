//! `log_batch` and `log_columns` are all or nothing: a batch rejected for any reason (a step, a size, a value,
//! an I/O error) leaves no row and no new key behind, and a crash at any moment of a batch keeps every row of
//! it or none.

use forklog::testing::faultfs::{CrashMode, FaultFs};
use forklog::{metrics, Error, Key, Metrics, Options, Store, SyncPolicy, Value};

fn rows(store: &Store, run: &str) -> Vec<(u64, Metrics)> {
    store.history(run).unwrap().map(|r| r.map(|r| (r.step, r.metrics)).unwrap()).collect()
}

fn key_table(store: &Store, run: &str) -> Vec<u8> {
    std::fs::read(store.path().join("runs").join(run).join("v0.keys")).unwrap_or_default()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A batch whose second row is over the event limit is refused whole: its first row is not visible, neither
/// row's new key reaches the key table, and the writer goes on at the same step.
#[test]
fn oversized_row_rejects_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    w.log(metrics! { "kept_key" => 1.0 }).unwrap();
    let big = Value::Bytes(vec![7u8; 65 << 20]);
    let batch =
        vec![(None, metrics! { "first_of_batch" => 2.0 }), (None, Metrics::from([(Key::from("rejected_big"), big)]))];
    match w.log_batch(batch) {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(w.next_step(), 1);
    assert_eq!(rows(&store, "r"), vec![(0, metrics! { "kept_key" => 1.0 })]);
    w.log(metrics! { "after" => 3.0 }).unwrap();
    w.finish(0).unwrap();
    assert_eq!(rows(&store, "r"), vec![(0, metrics! { "kept_key" => 1.0 }), (1, metrics! { "after" => 3.0 })]);
    let keys = key_table(&store, "r");
    assert!(contains(&keys, "kept_key") && contains(&keys, "after"));
    assert!(!contains(&keys, "first_of_batch"), "a rejected batch left its key in the key table");
    assert!(!contains(&keys, "rejected_big"), "a rejected row left its key in the key table");
    // Reopened, the key ids still line up with the rows.
    let w = store.resume("r").unwrap();
    drop(w);
    assert_eq!(rows(&store, "r").len(), 2);
    assert!(store.verify().unwrap().is_clean());
}

/// A single oversized `log`/`set_config` leaves no key id behind either (the next new key takes its id).
#[test]
fn oversized_event_leaves_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let big = Value::Bytes(vec![7u8; 65 << 20]);
    assert!(matches!(w.log(Metrics::from([(Key::from("rejected_big"), big.clone())])), Err(Error::TooLarge { .. })));
    assert!(matches!(w.set_config(Metrics::from([(Key::from("rejected_cfg"), big)])), Err(Error::TooLarge { .. })));
    w.log(metrics! { "x" => 1.0 }).unwrap();
    w.finish(0).unwrap();
    let keys = key_table(&store, "r");
    assert!(!contains(&keys, "rejected_big") && !contains(&keys, "rejected_cfg"));
    assert_eq!(rows(&store, "r"), vec![(0, metrics! { "x" => 1.0 })]);
}

/// An oversized columns batch is refused whole too.
#[test]
fn oversized_columns_batch_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let n = 2_000_000usize;
    let steps: Vec<u64> = (0..n as u64).collect();
    let col = vec![0.5f64; n];
    let cols: Vec<(String, &[f64])> = (0..5).map(|k| (format!("c{k}"), &col[..])).collect();
    let cols: Vec<(&str, &[f64])> = cols.iter().map(|(k, c)| (k.as_str(), *c)).collect();
    assert!(matches!(w.log_columns(&steps, &cols), Err(Error::TooLarge { .. })));
    assert_eq!(w.next_step(), 0);
    w.log_columns(&steps[..1000], &cols.iter().map(|(k, c)| (*k, &c[..1000])).collect::<Vec<_>>()).unwrap();
    drop(w);
    assert_eq!(rows(&store, "r").len(), 1000);
}

fn big_row(i: u64) -> Metrics {
    metrics! { "i" => i as i64, "blob" => vec![i as u8; 64 << 10] }
}

/// An I/O error at any write of a 4.3 MiB batch (once split into 4 MiB frames): after the crash, the run holds
/// the rows before the batch and either the whole batch or none of it.
#[test]
fn io_error_mid_batch_keeps_all_or_nothing() {
    for policy in [SyncPolicy::Never, SyncPolicy::Always] {
        for n in 0..5u64 {
            let fs = FaultFs::new();
            let opts = Options::default().vfs(fs.clone()).sync(policy);
            let store = Store::open_with(FaultFs::store_path(), opts.clone()).unwrap();
            let mut w = store.create_run("r").unwrap();
            for i in 0..3 {
                w.log(big_row(i)).unwrap();
            }
            w.sync().unwrap();
            fs.fail_writes_after(n);
            let batch: Vec<(Option<u64>, Metrics)> = (3..72).map(|i| (None, big_row(i))).collect();
            let res = w.log_batch(batch).and_then(|_| w.sync());
            drop(w);
            drop(store);
            fs.crash(CrashMode::PROCESS_KILL);
            let store = Store::open_with(FaultFs::store_path(), opts).unwrap();
            let got = rows(&store, "r");
            let ctx = format!("{policy:?}, writes failing after {n}: {res:?}");
            assert!(got.len() == 3 || got.len() == 72, "{ctx}: {} rows survived", got.len());
            for (i, (step, m)) in got.iter().enumerate() {
                assert_eq!((*step, m), (i as u64, &big_row(i as u64)), "{ctx}");
            }
            if res.is_ok() {
                assert_eq!(got.len(), 72, "{ctx}");
            }
            drop(store.resume("r").unwrap());
            assert!(store.verify().unwrap().is_clean(), "{ctx}");
        }
    }
}
