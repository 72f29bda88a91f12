//! Invariant: run metadata (name, tags, notes, group) is event-sourced like config: `set_meta` writes a `Meta`
//! event at the current step, `info(..).meta` and `Store::meta` apply every patch of the visible history in
//! order, a fork has its parent's metadata as of the fork step, and a rewind cuts it at the rewind step.

use forklog::{metrics, MetaPatch, RunMeta, Store};

fn meta(name: Option<&str>, tags: &[&str], notes: Option<&str>, group: Option<&str>) -> RunMeta {
    let mut m = RunMeta::default();
    m.name = name.map(str::to_string);
    m.tags = tags.iter().map(|t| t.to_string()).collect();
    m.notes = notes.map(str::to_string);
    m.group = group.map(str::to_string);
    m
}

#[test]
fn metadata_follows_the_visible_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("base").unwrap();
    assert_eq!(store.meta("base").unwrap(), RunMeta::default());
    w.set_meta(MetaPatch::new().name("first").tag("b").tag("a").notes("n1")).unwrap();
    for _ in 0..5 {
        w.log(metrics! { "x" => 1.0 }).unwrap(); // steps 0..=4
    }
    // At step 4: rename, retag, group.
    w.set_meta(MetaPatch::new().name("second").untag("a").tag("c").group("g")).unwrap();
    w.log(metrics! { "x" => 2.0 }).unwrap(); // step 5
    w.set_meta(MetaPatch::new().notes("")).unwrap(); // cleared at step 5
                                                     // Read-your-writes through the same store, before any flush.
    assert_eq!(store.meta("base").unwrap(), meta(Some("second"), &["b", "c"], None, Some("g")));
    w.finish(0).unwrap();
    let info = store.info("base").unwrap();
    assert_eq!(info.meta, meta(Some("second"), &["b", "c"], None, Some("g")));
    assert_eq!(info.rows, 6);

    // A fork at step 3 has the metadata as of step 3; at step 4 the step-4 patch too (events at the step).
    let f3 = store.fork("f3", &"base?_step=3".parse().unwrap()).unwrap();
    drop(f3);
    assert_eq!(store.meta("f3").unwrap(), meta(Some("first"), &["a", "b"], Some("n1"), None));
    let mut f4 = store.fork("f4", &"base?_step=4".parse().unwrap()).unwrap();
    assert_eq!(store.info("f4").unwrap().meta, meta(Some("second"), &["b", "c"], Some("n1"), Some("g")));
    // The fork changes its own metadata without touching the parent's.
    f4.set_meta(MetaPatch::new().tag("fork").name("")).unwrap();
    drop(f4);
    assert_eq!(store.meta("f4").unwrap(), meta(None, &["b", "c", "fork"], Some("n1"), Some("g")));
    assert_eq!(store.meta("base").unwrap().name.as_deref(), Some("second"));

    // A rewind to step 2 drops the later patches; the archived version keeps them.
    let mut r = store.rewind("base", 2).unwrap();
    assert_eq!(store.meta("base").unwrap(), meta(Some("first"), &["a", "b"], Some("n1"), None));
    r.set_meta(MetaPatch::new().group("after-rewind")).unwrap();
    drop(r);
    assert_eq!(store.meta("base").unwrap().group.as_deref(), Some("after-rewind"));
    assert_eq!(store.meta("base@v0").unwrap(), meta(Some("second"), &["b", "c"], None, Some("g")));
    let listed: Vec<(String, RunMeta)> = store.runs().unwrap().into_iter().map(|i| (i.id, i.meta)).collect();
    assert_eq!(listed[0].1.group.as_deref(), Some("after-rewind"));
    assert_eq!(listed.len(), 3);

    // The events replay shows the patches, and everything verifies and survives a reopen.
    let kinds: Vec<&str> = store.events("base@v0").unwrap().map(|e| e.unwrap().event.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "meta").count(), 3);
    assert!(store.verify().unwrap().is_clean());
    drop(store);
    let store = Store::open_existing(dir.path()).unwrap();
    assert_eq!(store.meta("f4").unwrap(), meta(None, &["b", "c", "fork"], Some("n1"), Some("g")));
}

#[test]
fn bad_patches_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("r").unwrap();
    assert!(matches!(w.set_meta(MetaPatch::new().tag("")), Err(forklog::Error::Value { .. })));
    let huge = "x".repeat(70_000);
    assert!(matches!(w.set_meta(MetaPatch::new().name(huge)), Err(forklog::Error::TooLarge { .. })));
    drop(w);
    assert_eq!(store.info("r").unwrap().events, 0);
}

/// The first frame's payload byte of `run`'s segment 0 flipped (its CRC then fails: a full walk errs).
fn damage_first_frame(dir: &std::path::Path, run: &str) {
    let seg = dir.join(format!("runs/{run}/v0-0.seg"));
    let mut b = std::fs::read(&seg).unwrap();
    b[80 + 12 + 3] ^= 0x01;
    std::fs::write(&seg, &b).unwrap();
}

#[test]
fn listings_skip_versions_whose_close_record_counts_no_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), forklog::Options::default().buffer_size(1024)).unwrap();
    for (id, with_meta) in [("plain", false), ("tagged", true)] {
        let mut w = store.create_run(id).unwrap();
        if with_meta {
            w.set_meta(MetaPatch::new().tag("t")).unwrap();
        }
        for i in 0..500 {
            w.log(metrics! { "x" => f64::from(i) }).unwrap();
        }
        w.finish(0).unwrap();
    }
    // Resuming and closing again keeps the count (verify checks it against the data).
    let mut w = store.resume("tagged").unwrap();
    w.set_meta(MetaPatch::new().name("n")).unwrap();
    drop(w);
    store.resume("plain").unwrap().log(metrics! { "x" => 1.0 }).unwrap();
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(store.meta("tagged").unwrap(), meta(Some("n"), &["t"], None, None));

    // Damage early data: the plain run's listing does not read it (its close record counts no Meta event),
    // and neither does the tagged run's since issue 12 (its metadata comes from the zone map's snapshot);
    // a replay meets the damage.
    damage_first_frame(dir.path(), "plain");
    damage_first_frame(dir.path(), "tagged");
    assert_eq!(store.info("plain").unwrap().meta, RunMeta::default());
    assert!(store.history("plain").unwrap().any(|r| r.is_err()));
    assert_eq!(store.info("tagged").unwrap().meta, meta(Some("n"), &["t"], None, None));
    assert!(store.history("tagged").unwrap().any(|r| r.is_err()));
}

#[test]
fn an_archived_version_keeps_its_close_record_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), forklog::Options::default().buffer_size(1024)).unwrap();
    let mut w = store.create_run("r").unwrap();
    for i in 0..600 {
        w.log(metrics! { "x" => f64::from(i) }).unwrap();
    }
    w.finish(0).unwrap();
    let mut r = store.rewind("r", 100).unwrap();
    r.set_meta(MetaPatch::new().group("g")).unwrap();
    drop(r);
    // r@v0 is archived (its segments sealed) and still closed: its listing needs no walk of its data.
    damage_first_frame(dir.path(), "r");
    assert_eq!(store.info("r@v0").unwrap().meta, RunMeta::default());
    assert_eq!(store.info("r").unwrap().meta.group.as_deref(), Some("g"));
    assert_eq!(store.history("r@v0").unwrap().filter(|r| r.is_err()).count(), 1);
}

/// The metadata by replay: every `Meta` event of the visible history applied in order (the model).
fn meta_by_replay(store: &Store, run: &str) -> RunMeta {
    let mut m = RunMeta::default();
    for e in store.events(run).unwrap() {
        if let forklog::Event::Meta { patch, .. } = e.unwrap().event {
            m.apply(&patch);
        }
    }
    m
}

/// Issue 12: `info`, `meta`, `runs` and `runs_table` take the metadata from the zone maps' snapshots and blocks
/// (no walk of the history); it equals the replay's, across snapshots, segments and group records, for forks
/// at a step before, at and after a `Meta` event, a rewind, and reopening.
#[test]
fn metadata_from_snapshots_equals_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let opts = forklog::Options::default().sync(forklog::SyncPolicy::Never).segment_size(300 << 10);
    let store = Store::open_with(dir.path(), opts.clone()).unwrap();
    let mut w = store.create_run("big").unwrap();
    let patches = [
        MetaPatch::new().name("a").tag("x").tag("y").notes("n"),
        MetaPatch::new().untag("x").tag("z").group("g1"),
        MetaPatch::new().name("").tag("x").untag("y"),
        MetaPatch::new().notes("").group("g2").tag("w"),
        MetaPatch::new().untag("z").untag("w").name("b"),
    ];
    let mut meta_steps = Vec::new();
    for chunk in 0..20u64 {
        let steps: Vec<u64> = (chunk * 3_000..(chunk + 1) * 3_000).collect();
        let a: Vec<f64> = steps.iter().map(|s| *s as f64).collect();
        w.log_columns(&steps, &[("loss", &a), ("acc", &a)]).unwrap();
        if chunk % 4 == 1 {
            w.set_meta(patches[(chunk / 4) as usize].clone()).unwrap();
            meta_steps.push(steps[steps.len() - 1]);
        }
        w.sync().unwrap();
    }
    drop(w);
    let mut runs = vec!["big".to_string()];
    for (i, s) in meta_steps.iter().enumerate() {
        for (j, at) in [s - 1, *s, s + 1].into_iter().enumerate() {
            let id = format!("f{i}{j}");
            let mut f = store.fork(&id, &format!("big?_step={at}").parse().unwrap()).unwrap();
            if j == 2 {
                f.set_meta(MetaPatch::new().tag("forked").untag("x")).unwrap();
            }
            drop(f);
            runs.push(id);
        }
    }
    let mut r = store.rewind("f31", meta_steps[1] + 7).unwrap();
    r.set_meta(MetaPatch::new().name("rewound")).unwrap();
    drop(r);
    runs.push("f31@v0".into());
    for run in &runs {
        let want = meta_by_replay(&store, run);
        assert_eq!(store.meta(run).unwrap(), want, "{run}");
        assert_eq!(store.info(run).unwrap().meta, want, "{run}");
    }
    assert_ne!(meta_by_replay(&store, "big"), RunMeta::default());
    let none: [&str; 0] = [];
    for row in store.runs_table(&none).unwrap() {
        assert_eq!(row.info.meta, meta_by_replay(&store, &row.info.id), "{}", row.info.id);
    }
    assert!(store.verify().unwrap().is_clean());
    drop(store);
    let store = Store::open_with(dir.path(), opts).unwrap();
    for run in &runs {
        assert_eq!(store.meta(run).unwrap(), meta_by_replay(&store, run), "{run}");
    }
}
