//! The float fast paths: `log_floats` and `log_columns` (dense rows on disk), and columnar reads
//! (`Store::columns`), checked against the row APIs on the same data, across forks, rewinds, segment rolls,
//! filters and reopen; plus their validation (nothing written on a bad call) and the dense row's size.

use forklog::{metrics, Error, ForkPoint, HistoryOptions, Metrics, Options, Store, SyncPolicy, Value};

fn rows(store: &Store, run: &str) -> Vec<(u64, Metrics)> {
    store.history(run).unwrap().map(|r| r.map(|r| (r.step, r.metrics)).unwrap()).collect()
}

fn f(i: u64, j: u64) -> f64 {
    (i * 7 + j) as f64 * 0.25 - 3.0
}

/// Columns as the row API sees them (the reference): every key met, sorted; `None` where absent.
fn expected_columns(store: &Store, run: &str, opts: &HistoryOptions) -> forklog::Columns {
    let rows: Vec<_> = store.history_with(run, opts).unwrap().map(|r| r.unwrap()).collect();
    forklog::testing::columns_of(&rows, opts.keys.as_deref())
}

fn assert_columns(store: &Store, run: &str, opts: &HistoryOptions) {
    let got = store.columns(run, opts).unwrap();
    let want = expected_columns(store, run, opts);
    assert!(forklog::testing::columns_match(&want, &got), "{run} {opts:?}\nwant {want:?}\ngot  {got:?}");
    // The chunked scan, chunks glued back together (columns met later are `None` in earlier chunks).
    let mut glued = forklog::Columns::default();
    store
        .scan_columns(run, opts, |chunk| {
            assert!(!chunk.is_empty());
            let before = glued.len();
            glued.steps.extend(&chunk.steps);
            glued.times.extend(&chunk.times);
            for c in &chunk.columns {
                assert_eq!(c.values.len(), chunk.len());
                let i = match glued.columns.iter().position(|g| g.key == c.key) {
                    Some(i) => i,
                    None => {
                        let mut g = forklog::Column::new(c.key.clone());
                        g.values = vec![None; before];
                        glued.columns.push(g);
                        glued.columns.len() - 1
                    }
                };
                glued.columns[i].values.extend(&c.values);
                glued.columns[i].kinds.insert(c.kinds);
            }
        })
        .unwrap();
    if opts.keys.is_none() {
        glued.columns.sort_by(|a, b| a.key.cmp(&b.key));
    }
    assert!(forklog::testing::columns_match(&want, &glued), "scan {run} {opts:?}\nwant {want:?}\ngot  {glued:?}");
}

#[test]
fn the_three_write_paths_store_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let keys = ["acc", "loss", "lr"];
    let n = 5_000u64;
    let mut a = store.create_run("maps").unwrap();
    let mut b = store.create_run("floats").unwrap();
    let mut c = store.create_run("columns").unwrap();
    for i in 0..n {
        let m: Metrics = keys
            .iter()
            .enumerate()
            .map(|(j, k)| (k.to_string(), f(i, j as u64)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(k, v)| (k.into(), Value::Float(v)))
            .collect();
        a.log_at(i * 2, m).unwrap();
        // Keys in another order than sorted: stored sorted all the same.
        b.log_floats_at(i * 2, &[("lr", f(i, 2)), ("acc", f(i, 0)), ("loss", f(i, 1))]).unwrap();
    }
    let steps: Vec<u64> = (0..n).map(|i| i * 2).collect();
    let cols: Vec<Vec<f64>> = (0..3).map(|j| (0..n).map(|i| f(i, j)).collect()).collect();
    let batch: Vec<(&str, &[f64])> = vec![("loss", &cols[1]), ("lr", &cols[2]), ("acc", &cols[0])];
    assert_eq!(c.log_columns(&steps, &batch).unwrap(), Some((n - 1) * 2));
    assert_eq!(c.next_step(), (n - 1) * 2 + 1);
    drop((a, b, c));
    let want = rows(&store, "maps");
    assert_eq!(want.len() as u64, n);
    assert_eq!(rows(&store, "floats"), want);
    assert_eq!(rows(&store, "columns"), want);
    // The borrowed row view yields keys in order whichever path wrote them.
    store
        .history("floats")
        .unwrap()
        .for_each_row(|r| assert_eq!(r.metrics().map(|(k, _)| k).collect::<Vec<_>>(), keys))
        .unwrap();
    for run in ["maps", "floats", "columns"] {
        assert_columns(&store, run, &HistoryOptions::new());
        let c = store.columns(run, &HistoryOptions::new()).unwrap();
        assert_eq!(c.len() as u64, n);
        assert_eq!(c.column("loss").unwrap().values[17], Some(f(17, 1)));
    }
}

#[test]
fn dense_rows_are_small() {
    // Five floats per row, the same keys every step: a dense row is tag, dstep, dtime, count and 40 bytes.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let n = 200_000u64;
    let keys = ["a", "b", "c", "d", "e"];
    for i in 0..n {
        let row: Vec<(&str, f64)> = keys.iter().enumerate().map(|(j, k)| (*k, f(i, j as u64))).collect();
        w.log_floats(&row).unwrap();
    }
    w.finish(0).unwrap();
    let bytes: u64 =
        std::fs::read_dir(dir.path().join("runs/r")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let per_row = bytes as f64 / n as f64;
    // 44 bytes of dense row, about 2 of zone map (a block record per 256 rows, a group record per 4 blocks since
    // 2026-12-07, when sample traded 0.12 byte per row for a 12% faster bucket edge; snapshots), and the rest.
    assert!(per_row <= 46.5, "{per_row:.1} bytes per row");
}

#[test]
fn columns_follow_forks_rewinds_filters_and_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().segment_size(64 << 10).sync(SyncPolicy::Never);
    let store = Store::open_with(dir.path(), opts).unwrap();
    let mut w = store.create_run("root").unwrap();
    for i in 0..3_000u64 {
        match i % 5 {
            // Rows of other shapes and kinds between dense ones: new templates, non-float values, events.
            0 => w.log(metrics! { "loss" => f(i, 0), "tag" => "x", "n" => i as i64 }).map(|_| ()).unwrap(),
            1 => w.log_floats(&[("loss", f(i, 1))]).map(|_| ()).unwrap(),
            2 => w.set_config(metrics! { "lr" => 0.1 }).unwrap(),
            _ => w.log_floats(&[("loss", f(i, 2)), ("acc", f(i, 3))]).map(|_| ()).unwrap(),
        }
        if i % 977 == 0 {
            w.log_system(metrics! { "gpu" => 0.5 }).unwrap();
        }
    }
    let last = w.last_step().unwrap();
    drop(w);
    let mut fk = store.fork("child", &ForkPoint::new("root", last / 2)).unwrap();
    let steps: Vec<u64> = (0..500).map(|i| last / 2 + 1 + i * 3).collect();
    let loss: Vec<f64> = steps.iter().map(|s| *s as f64).collect();
    fk.log_columns(&steps, &[("loss", &loss), ("acc", &loss)]).unwrap();
    drop(fk);
    let mut gk = store.fork("grandchild", &ForkPoint::new("child", last / 2 + 700)).unwrap();
    gk.log_floats(&[("loss", -1.0)]).unwrap();
    drop(gk);
    drop(store.rewind("root", last / 3).unwrap());
    let mid = last / 2;
    for run in ["root", "root@v0", "child", "grandchild"] {
        for opts in [
            HistoryOptions::new(),
            HistoryOptions::new().from_step(mid - 100).to_step(mid + 800),
            HistoryOptions::new().from_step(mid + 1),
            HistoryOptions::new().keys(["acc", "n", "acc", "nope"]),
            HistoryOptions::new().keys(["tag"]),
            HistoryOptions::new().own_only(true),
        ] {
            assert_columns(&store, run, &opts);
        }
    }
    // Reopened: the same.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_columns(&store, "grandchild", &HistoryOptions::new());
    let c = store.columns("grandchild", &HistoryOptions::new().keys(["tag"])).unwrap();
    assert!(c.columns[0].values.iter().all(Option::is_none), "strings are not numbers");
    assert!(!c.is_empty());
}

#[test]
fn bad_float_calls_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    w.log_floats(&[("a", 1.0)]).unwrap();
    assert!(matches!(w.log_floats(&[("a", 1.0), ("a", 2.0)]), Err(Error::Value { .. })));
    assert!(matches!(w.log_floats_at(0, &[("a", 1.0)]), Err(Error::StepNotIncreasing { last: 0, got: 0, .. })));
    let long = "k".repeat(70_000);
    assert!(matches!(w.log_floats(&[(long.as_str(), 1.0)]), Err(Error::TooLarge { .. })));
    let one = [1.0];
    let two = [1.0, 2.0];
    assert!(matches!(w.log_columns(&[5, 6], &[("a", &two), ("b", &one)]), Err(Error::Value { .. })));
    assert!(matches!(w.log_columns(&[5, 6], &[("a", &two), ("a", &two)]), Err(Error::Value { .. })));
    assert!(matches!(w.log_columns(&[5, 5], &[("a", &two)]), Err(Error::StepNotIncreasing { last: 5, got: 5, .. })));
    assert!(matches!(w.log_columns(&[0], &[("a", &one)]), Err(Error::StepNotIncreasing { last: 0, got: 0, .. })));
    assert_eq!(w.log_columns(&[], &[]).unwrap(), None);
    assert_eq!(w.next_step(), 1);
    drop(w);
    assert_eq!(rows(&store, "r"), vec![(0, metrics! { "a" => 1.0 })]);
    let c = store.columns("r", &HistoryOptions::new()).unwrap();
    assert_eq!((c.steps.clone(), c.columns.len()), (vec![0], 1));
}

#[test]
fn a_big_column_batch_spans_frames_and_syncs_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().sync(SyncPolicy::Always);
    let store = Store::open_with(dir.path(), opts).unwrap();
    let mut w = store.create_run("r").unwrap();
    let n = 300_000u64; // > 4 MiB of dense rows: several frames
    let steps: Vec<u64> = (0..n).collect();
    let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let b: Vec<f64> = (0..n).map(|i| -(i as f64)).collect();
    assert_eq!(w.log_columns(&steps, &[("a", &a), ("b", &b)]).unwrap(), Some(n - 1));
    assert_eq!(w.durable_step(), Some(n - 1));
    drop(w);
    let c = store.columns("r", &HistoryOptions::new()).unwrap();
    assert_eq!(c.steps, steps);
    assert_eq!(c.column("a").unwrap().values, a.iter().map(|x| Some(*x)).collect::<Vec<_>>());
    assert_eq!(c.column("b").unwrap().values[n as usize - 1], Some(-((n - 1) as f64)));
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn column_batches_with_far_apart_steps_round_trip() {
    // Step deltas of every varint width (and a second batch, whose first row's time delta is not zero).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    let steps: Vec<u64> = vec![0, 1, 2, 250, 251, 600, 70_000, 70_001, 1 << 33, (1 << 33) + 1, u64::MAX - 1];
    let a: Vec<f64> = steps.iter().map(|s| *s as f64).collect();
    let b: Vec<f64> = steps.iter().map(|s| -(*s as f64)).collect();
    assert_eq!(w.log_columns(&steps[..6], &[("a", &a[..6]), ("b", &b[..6])]).unwrap(), Some(600));
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(w.log_columns(&steps[6..], &[("b", &b[6..]), ("a", &a[6..])]).unwrap(), Some(u64::MAX - 1));
    drop(w);
    let want: Vec<(u64, Metrics)> =
        steps.iter().map(|s| (*s, metrics! { "a" => *s as f64, "b" => -(*s as f64) })).collect();
    assert_eq!(rows(&store, "r"), want);
    assert_columns(&store, "r", &HistoryOptions::new());
    let times = store.columns("r", &HistoryOptions::new()).unwrap().times;
    assert!(times[5] == times[0] && times[6] > times[5], "one time per batch: {times:?}");
}

#[test]
fn columns_say_which_kinds_of_value_they_were_read_from() {
    use forklog::ValueKinds as K;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    // "f": floats (dense rows after the first); "n": ints then a float; "b": a bool; "s": a string and a null.
    w.log_floats(&[("f", 1.0), ("n", 2.0)]).unwrap();
    w.log_at(1, metrics! { "f" => 1.5, "n" => 3i64, "b" => true, "s" => "x" }).unwrap();
    w.log_at(2, metrics! { "f" => 2.5, "s" => Value::Null }).unwrap();
    for i in 3..3000u64 {
        w.log_columns(&[i], &[("f", &[i as f64][..])]).unwrap();
        if i % 1500 == 0 {
            w.flush().unwrap(); // a frame ends: chunks end at frame ends
        }
    }
    drop(w);
    let all = store.columns("r", &HistoryOptions::new()).unwrap();
    let kinds = |c: &forklog::Columns, k: &str| c.column(k).unwrap().kinds;
    assert_eq!(kinds(&all, "f"), K::FLOAT);
    assert_eq!(kinds(&all, "n"), K::FLOAT | K::INT);
    assert_eq!(kinds(&all, "b"), K::BOOL);
    assert_eq!(kinds(&all, "s"), K::OTHER | K::NULL);
    assert!(kinds(&all, "s").contains(K::NULL) && !kinds(&all, "s").contains(K::FLOAT));
    // Chunks: each says what its own rows held; the later all-float chunks say FLOAT (or nothing).
    let mut chunks = Vec::new();
    store
        .scan_columns("r", &HistoryOptions::new(), |c| {
            chunks.push(c.columns.iter().map(|col| (col.key.to_string(), col.kinds)).collect::<Vec<_>>())
        })
        .unwrap();
    assert!(chunks.len() > 1, "several chunks");
    assert!(chunks[0].contains(&("s".to_string(), K::OTHER | K::NULL)));
    for later in &chunks[1..] {
        for (k, kinds) in later {
            let want = if k == "f" { K::FLOAT } else { K::NONE };
            assert_eq!(*kinds, want, "{k} in a later chunk");
        }
    }
}
