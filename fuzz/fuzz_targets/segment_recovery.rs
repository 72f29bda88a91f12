//! Segment recovery from arbitrary bytes: a real store (built through the public API into an in-memory
//! file system) whose run `r` has fuzz bytes in its active segment (or its index, key table or header);
//! then every read, `verify`, and `resume` (recovery) must return `Ok` or a corruption error, never panic.
//!
//! Input: `template u8 | mode u8 | data`. Templates (see `forklog_fuzz::templates`): a single run, a run
//! with a fork pinning its active segment, a run with several segments and step-index entries, a rewound
//! run. Modes (low 3 bits), applied to run `r`'s active segment, or with mode bit 3 set to `r`'s first
//! segment `v0-0` (sealed in the `rolled` and `rewound` templates, where any bad frame is corruption):
//!  0  the active segment is `data`
//!  1  the real segment header, then `data`
//!  2  the real segment header, then frames crafted from `data` (`push_crafted`: genuine CRCs, so the
//!     payload decoders and the step logic see fuzz bytes)
//!  3  the real segment, cut to a length and xor-ed at offsets from `data` (`len u16`, then `off u16, x u8`...)
//!  4  the real segment, then frames crafted from `data` (a fuzzed tail after genuine frames)
//!  5  the real segment; the step index is its real header then entries crafted from `data` (genuine CRCs)
//!  6  the real segment; the key table is its real header then records crafted from `data`
//!     (`push_crafted_keys`: genuine CRCs, so names, UTF-8 and missing key ids are exercised)
//!  7  the real segment; the step index is `data`
//!
//! Every mode that puts checksummed data in place seals it with the template's own salt or nonce at run
//! time, so an input means the same in every process (the templates get fresh nonces each time).
//!
//! Beyond "no panic", the target checks what recovery promises: it only cuts a torn tail, so when the
//! history read fine before `resume`, it reads the same after, plus the row logged by the resumed
//! writer; and a store `verify` calls clean reads without errors.
#![no_main]

use forklog::{metrics, Error, HistoryOptions, LogRow, Store};
use forklog_fuzz::memfs::MemFs;
use forklog_fuzz::{
    crafted_index_entries, fuzz_options, push_crafted, push_crafted_keys, templates, Template, ROOT, SEG_HEADER_LEN,
    SMALL_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

fn apply(t: &Template, mode: u8, data: &[u8], fs: &MemFs) {
    // Mode bit 3: the first segment of r@v0 instead of the active one (sealed in `rolled` and `rewound`).
    let (seg_path, idx_path, salt) =
        if mode & 8 != 0 { (&t.first_seg, &t.first_idx, t.first_salt) } else { (&t.seg, &t.idx, t.salt) };
    let seg = t.file(seg_path);
    let header = &seg[..SEG_HEADER_LEN];
    match mode & 7 {
        0 => fs.write(seg_path, data.to_vec()),
        1 => fs.write(seg_path, [header, data].concat()),
        2 => {
            let mut s = header.to_vec();
            push_crafted(&mut s, salt, data);
            fs.write(seg_path, s);
        }
        3 => {
            let mut s = seg.clone();
            if data.len() >= 2 {
                let cut = usize::from(u16::from_le_bytes([data[0], data[1]]));
                if cut < s.len() {
                    s.truncate(cut);
                }
                for m in data[2..].chunks_exact(3) {
                    let off = usize::from(u16::from_le_bytes([m[0], m[1]]));
                    if let Some(b) = s.get_mut(off) {
                        *b ^= m[2];
                    }
                }
            }
            fs.write(seg_path, s);
        }
        4 => {
            let mut s = seg.clone();
            push_crafted(&mut s, salt, data);
            fs.write(seg_path, s);
        }
        5 => {
            let idx = t.file(idx_path);
            let mut i = idx[..SMALL_HEADER_LEN.min(idx.len())].to_vec();
            i.extend_from_slice(&crafted_index_entries(salt, data));
            fs.write(idx_path, i);
        }
        6 => {
            let keys = t.file(&t.keys);
            let mut k = keys[..SMALL_HEADER_LEN.min(keys.len())].to_vec();
            push_crafted_keys(&mut k, t.nonce, data);
            fs.write(&t.keys, k);
        }
        _ => fs.write(idx_path, data.to_vec()),
    }
}

/// Every error a damaged file may cause is a corruption error.
fn typed(e: &Error, what: &str) {
    let _ = e.to_string();
    assert!(e.is_corruption(), "{what}: expected a corruption error, got {e:?}");
}

fn history(store: &Store, run: &str, opts: &HistoryOptions) -> Result<Vec<LogRow>, Error> {
    let mut out = Vec::new();
    for (i, r) in store.history_with(run, opts)?.enumerate() {
        out.push(r?);
        assert!(i < 1_000_000, "history does not end");
    }
    Ok(out)
}

/// The steps of every event of `run`.
fn event_steps(store: &Store, run: &str) -> Result<Vec<u64>, Error> {
    let mut out = Vec::new();
    for r in store.events(run)? {
        out.push(r?.event.step());
        assert!(out.len() < 1_000_000, "events do not end");
    }
    Ok(out)
}

fn same_rows(a: &[LogRow], b: &[LogRow]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.step == y.step && x.metrics == y.metrics && x.origin == y.origin && x.time.to_bits() == y.time.to_bits()
        })
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let ts = templates();
    let t = &ts[usize::from(input[0]) % ts.len()];
    let mode = input[1] % 16;
    let data = &input[2..];
    let fs = MemFs::from_snapshot(&t.snap);
    apply(t, mode, data, &fs);

    let store = match Store::open_with(ROOT, fuzz_options(&fs, t.segment_size, 96)) {
        Ok(s) => s,
        Err(e) => panic!("opening the store failed though only run files were damaged: {e:?}"),
    };

    // Reads before recovery.
    let before = history(&store, "r", &HistoryOptions::default());
    if let Err(e) = &before {
        typed(e, "history(r)");
    }
    let steps = event_steps(&store, "r");
    if let Err(e) = &steps {
        typed(e, "events(r)");
    }
    let from = data.first().map_or(0, |b| u64::from(*b % 32));
    let ranged = history(&store, "r", &HistoryOptions::new().from_step(from).to_step(from + 40).keys(["loss", "note"]));
    if let Err(e) = &ranged {
        typed(e, "history_with(r)");
    }
    // Columnar reads walk the same frames with the lean decoder: the same rows as history, or a corruption
    // error.
    for opts in
        [HistoryOptions::default(), HistoryOptions::new().from_step(from).to_step(from + 40).keys(["loss", "note"])]
    {
        let rows = history(&store, "r", &opts);
        match (store.columns("r", &opts), &rows) {
            (Err(e), _) => typed(&e, "columns(r)"),
            (Ok(c), Ok(rows)) => {
                let want = forklog::testing::columns_of(rows, opts.keys.as_deref());
                assert!(
                    forklog::testing::columns_match(&want, &c),
                    "columns differ from history: {opts:?}\nwant {want:?}\ngot  {c:?}"
                );
            }
            // History decodes whole frames, columns stop at the first event past the range: damage beyond the
            // range may fail the one and not the other.
            (Ok(_), Err(_)) => {}
        }
        let mut n = 0usize;
        match store.scan_columns("r", &opts, |c| n += c.len()) {
            Err(e) => typed(&e, "scan_columns(r)"),
            Ok(()) => {
                if let Ok(rows) = &rows {
                    assert_eq!(n, rows.len(), "scan_columns row count differs from history: {opts:?}");
                }
            }
        }
    }
    let others = [store.summary("r").err(), store.config("r").err(), store.info("r").err(), store.lineage("r").err()];
    for e in others.iter().flatten() {
        typed(e, "summary/config/info/lineage(r)");
    }
    if t.name == "forked" {
        if let Err(e) = history(&store, "f", &HistoryOptions::default()) {
            typed(&e, "history(f)");
        }
    }
    if t.name == "rewound" {
        if let Err(e) = history(&store, "r@v0", &HistoryOptions::default()) {
            typed(&e, "history(r@v0)");
        }
    }
    let report = store.verify().unwrap_or_else(|e| panic!("verify failed instead of reporting: {e:?}"));
    if report.is_clean() {
        if let Err(e) = &before {
            panic!("verify is clean but history(r) fails: {e:?}");
        }
        if let Err(e) = &ranged {
            panic!("verify is clean but history_with(r) fails: {e:?}");
        }
    }
    if let (Ok(all), Ok(part), Ok(steps)) = (&before, &ranged, &steps) {
        // Range reads seek and stop early on the writer's invariant (steps never decrease; Log steps
        // strictly increase). CRC-valid crafted frames may break it; compare only when it holds.
        let ordered = all.windows(2).all(|w| w[0].step < w[1].step) && steps.windows(2).all(|w| w[0] <= w[1]);
        if report.is_clean() && ordered {
            let want: Vec<LogRow> = all
                .iter()
                .filter(|r| r.step >= from && r.step <= from + 40)
                .filter_map(|r| {
                    let m: forklog::Metrics = r
                        .metrics
                        .iter()
                        .filter(|(k, _)| ["loss", "note"].contains(&&***k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    (!m.is_empty()).then(|| {
                        let mut row = r.clone();
                        row.metrics = m;
                        row
                    })
                })
                .collect();
            assert!(same_rows(part, &want), "ranged history differs from the filtered full history");
        }
    }

    // Recovery.
    let resumed = store.resume("r");
    match resumed {
        Err(e) => typed(&e, "resume(r)"),
        Ok(mut w) => {
            let step = w.next_step();
            let logged = w.log(metrics! { "resumed" => 1i64 });
            drop(w);
            let after = history(&store, "r", &HistoryOptions::default());
            if let Ok(before) = &before {
                let added = match logged {
                    Ok(s) => {
                        assert_eq!(s, step, "log() did not use next_step()");
                        1
                    }
                    // Crafted frames may have used up the step space (last step u64::MAX).
                    Err(Error::StepNotIncreasing { .. }) if step == u64::MAX => 0,
                    Err(e) => panic!("log after a successful recovery failed: {e:?}"),
                };
                let after = after.unwrap_or_else(|e| panic!("history readable before recovery but not after: {e:?}"));
                assert!(
                    after.len() == before.len() + added && same_rows(&after[..before.len()], before),
                    "recovery changed the readable history: {} rows before, {} after",
                    before.len(),
                    after.len()
                );
                if added == 1 {
                    assert_eq!(after[before.len()].step, step);
                }
            } else if let Err(e) = after {
                typed(&e, "history(r) after resume");
            }
            let report2 = store.verify().unwrap_or_else(|e| panic!("verify failed instead of reporting: {e:?}"));
            assert!(
                report2.problems.iter().all(|p| p.kind != forklog::ProblemKind::TornTail || p.file != t.seg),
                "a torn tail is left in the recovered segment: {:?}",
                report2.problems
            );
            if report.is_clean() {
                assert!(report2.is_clean(), "recovery made a clean store unclean: {:?}", report2.problems);
            }
            // A second resume finds nothing to cut.
            match store.resume("r") {
                Ok(w) => assert!(w.recovery().is_empty(), "second recovery cut bytes: {:?}", w.recovery()),
                Err(e) => typed(&e, "second resume(r)"),
            }
        }
    }
});
