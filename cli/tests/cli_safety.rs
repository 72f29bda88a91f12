//! Issue 9 through the real binary: forklog never touches what is not its own (store creation, the demo,
//! gc), a failed `log` leaves no run, NaN and the infinities round-trip through JSON, config / summary /
//! metadata from the CLI, mistakes are refused, and verify sees damage in a cleanly closed run's index.

mod cli_support;

use std::fs;

use cli_support::*;
use proptest::prelude::*;

/// Every command that only reads (or cleans up), with the arguments it needs.
const READERS: &[&[&str]] = &[
    &["runs"],
    &["runs", "--json"],
    &["verify"],
    &["history", "x"],
    &["summary", "x"],
    &["config", "x"],
    &["lineage", "x"],
    &["delete", "x"],
    &["gc"],
    &["fork", "y", "x?_step=1"],
    &["rewind", "x?_step=1"],
    &["set", "x", "--name", "n"],
];

#[test]
fn read_commands_never_create_or_change_anything() {
    let tmp = tempfile::tempdir().unwrap();
    // A folder with someone's files, and an empty folder.
    let proj = tmp.path().join("proj");
    fs::create_dir(&proj).unwrap();
    fs::write(proj.join("train.py"), "code\n").unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for dir in [&proj, &empty] {
        let before = snapshot(dir);
        for args in READERS {
            let line = fails(dir, args, "");
            if dir == &proj {
                assert!(line.contains("is not a forklog store (it holds other files)"), "{args:?}: {line}");
            } else {
                assert!(line.contains("no store at"), "{args:?}: {line}");
            }
            assert_same(&before, &snapshot(dir), &format!("{args:?}"));
        }
        let out_file = tmp.path().join("out.jsonl");
        let line = fails(dir, &["export", "x", out_file.to_str().unwrap()], "");
        assert!(line.starts_with("error: "), "{line}");
        assert!(!out_file.exists());
        assert_same(&before, &snapshot(dir), "export");
    }
    // Writing commands refuse a folder with other files too, exactly as the contract words it.
    let line = fails(&proj, &["log", "r"], "{\"a\": 1}\n");
    assert_eq!(line, format!("error: {} is not a forklog store (it holds other files)", proj.display()));
    assert_eq!(fs::read_to_string(proj.join("train.py")).unwrap(), "code\n");
    assert_eq!(fs::read_dir(&proj).unwrap().count(), 1);
    // ...and create a store in an empty one.
    ok(&empty, &["log", "r"], "{\"a\": 1}\n");
    assert!(empty.join("forklog.store").is_file());
}

#[test]
fn the_demo_never_deletes_what_it_did_not_create() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    fs::create_dir(&proj).unwrap();
    fs::write(proj.join("train.py"), "code\n").unwrap();
    fails(&proj, &["summary", "x"], "");
    let out = forklog(&proj).args(["demo", "--dir", proj.to_str().unwrap(), "--rows", "100"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(fs::read_to_string(proj.join("train.py")).unwrap(), "code\n");
    assert_eq!(fs::read_dir(&proj).unwrap().count(), 1);
    // A missing folder, then the same folder again (a previous demo's store is replaced).
    let demo = tmp.path().join("demo");
    for _ in 0..2 {
        let out = forklog(&demo).args(["demo", "--dir", demo.to_str().unwrap(), "--rows", "100"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    // A previous demo's store with a user's file added is refused and kept.
    fs::write(demo.join("notes.txt"), "mine").unwrap();
    let out = forklog(&demo).args(["demo", "--dir", demo.to_str().unwrap(), "--rows", "100"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read_to_string(demo.join("notes.txt")).unwrap(), "mine");
    assert!(demo.join("forklog.store").is_file());
}

#[test]
fn a_failed_log_leaves_no_new_run() {
    let (_tmp, store) = temp_store();
    // A bad first line: no store, no run.
    let line = fails(&store, &["log", "r"], "{bad\n{\"a\": 1}\n");
    assert!(line.starts_with("error: line 1: invalid JSON"), "{line}");
    assert!(!store.exists());
    log(&store, "base", "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n");
    for (args, input) in [
        (&["log", "r"][..], "\n{\"_step\": -1}\n"),
        (&["log", "f", "--fork-from", "base?_step=1"][..], "{\"a\": 1}x\n"),
        (&["log", "f", "--fork-from", "base?_step=1"][..], "{\"_step\": 1, \"a\": 1}\n"),
        (&["log", "r", "--config", "[1]"][..], "{\"a\": 1}\n"),
        (&["log", "r"][..], "{\"_config\": {\"lr\": 1}}\n{\"_summary\": 3}\n"),
    ] {
        let before = snapshot(&store);
        let line = fails(&store, args, input);
        assert!(line.starts_with("error: "), "{line}");
        assert_same(&before, &snapshot(&store), &format!("{args:?} {input:?}"));
        assert_eq!(runs(&store, true).keys().collect::<Vec<_>>(), ["base@v0"], "{args:?}");
    }
    // A bad first line after --resume-from: no rewind either.
    fails(&store, &["log", "base", "--resume-from", "base?_step=1"], "{\"_step\": 0}\n");
    assert_eq!(runs(&store, true).len(), 1);
    // Rows before a bad line are kept, as the contract says.
    fails(&store, &["log", "r2"], "{\"a\": 1}\n{\"a\": 2}\n{oops\n");
    assert_eq!(steps(&store, "r2", &[]), [0, 1]);
}

#[test]
fn non_finite_floats_round_trip_and_strings_stay_strings() {
    let (_tmp, store) = temp_store();
    let input =
        "{\"_step\": 0, \"a\": NaN, \"b\": Infinity, \"c\": -Infinity, \"s\": \"NaN\", \"z\": -0.0, \"l\": [NaN, 1]}\n";
    log(&store, "r", input);
    let out = ok(&store, &["history", "r"], "");
    assert!(out.contains("\"a\":NaN,\"b\":Infinity,\"c\":-Infinity"), "{out}");
    assert!(out.contains("\"l\":[NaN,1],\"s\":\"NaN\",\"z\":-0.0}"), "{out}");
    let strict = ok(&store, &["--json-nonfinite", "string", "history", "r"], "");
    assert!(strict.contains("\"a\":\"NaN\",\"b\":\"Infinity\",\"c\":\"-Infinity\""), "{strict}");
    let null = ok(&store, &["history", "r", "--json-nonfinite", "null"], "");
    let row: serde_json::Value = serde_json::from_str(null.trim()).unwrap();
    assert_eq!((row["a"].is_null(), row["s"].as_str()), (true, Some("NaN")));
    ok(&store, &["set", "r", "--summary", "{\"best\": -Infinity}"], "");
    assert!(ok(&store, &["summary", "r", "--json-nonfinite", "string"], "").contains("\"best\":\"-Infinity\""));
    assert!(ok(&store, &["summary", "r"], "").contains("\"best\":-Infinity"));
    // history | log reproduces the row; export | import too.
    let again = ok(&store, &["history", "r"], "");
    log(&store, "copy", &again);
    assert_eq!(ok(&store, &["history", "copy"], ""), again);
    let file = store.parent().unwrap().join("r.jsonl");
    ok(&store, &["export", "r", file.to_str().unwrap()], "");
    ok(&store, &["import", "--format", "jsonl", "imported", file.to_str().unwrap()], "");
    assert_eq!(ok(&store, &["history", "imported"], ""), again);
}

/// A float from raw bits; NaNs are canonical (their payload cannot survive JSON text).
fn canonical(bits: u64) -> f64 {
    let x = f64::from_bits(bits);
    if x.is_nan() {
        f64::NAN
    } else {
        x
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
    /// Random floats (any bits: subnormals, ±0, ±inf, NaNs with payloads) logged through the binary come back
    /// bit for bit through `history | log` and `export`/`import` (NaN as the canonical NaN).
    #[test]
    fn every_float_round_trips_through_the_binary(
        bits in proptest::collection::vec(prop_oneof![any::<u64>(), Just(0x8000_0000_0000_0000u64),
            Just(0x7ff0_0000_0000_0001), Just(0xfff8_0000_dead_beef), Just(1u64), Just(0x7ff0_0000_0000_0000)], 1..40),
    ) {
        let (_tmp, store) = temp_store();
        let vals: Vec<f64> = bits.iter().map(|b| canonical(*b)).collect();
        let mut input = String::new();
        for (i, x) in vals.iter().enumerate() {
            let mut v = Vec::new();
            forklog_interop_write(&mut v, *x);
            input.push_str(&format!("{{\"_step\": {i}, \"x\": {}, \"s\": \"NaN\"}}\n", String::from_utf8(v).unwrap()));
        }
        log(&store, "r", &input);
        let first = ok(&store, &["history", "r"], "");
        log(&store, "c", &first);
        prop_assert_eq!(&ok(&store, &["history", "c"], ""), &first);
        let file = store.parent().unwrap().join("e.jsonl");
        ok(&store, &["export", "c", file.to_str().unwrap()], "");
        ok(&store, &["import", "i", file.to_str().unwrap()], "");
        prop_assert_eq!(&ok(&store, &["history", "i"], ""), &first);
        // The values themselves, bit for bit.
        for (line, want) in first.lines().zip(&vals) {
            let got = line.split("\"x\":").nth(1).unwrap().split(',').next().unwrap().trim_end_matches('}');
            let parsed = match got { "NaN" => f64::NAN, "Infinity" => f64::INFINITY, "-Infinity" => f64::NEG_INFINITY,
                t => t.parse::<f64>().unwrap() };
            prop_assert_eq!(parsed.to_bits(), want.to_bits(), "{}", line);
            prop_assert!(line.contains("\"s\":\"NaN\""));
        }
    }
}

/// Writes a float the way Python's `json.dumps` does (bare non-finite literals, `repr` for the rest).
fn forklog_interop_write(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.extend_from_slice(format!("{x:?}").as_bytes());
    }
}

#[test]
fn config_summary_and_metadata_from_the_cli() {
    let (tmp, store) = temp_store();
    let cfg = tmp.path().join("cfg.json");
    fs::write(&cfg, "{\"bs\": 32}").unwrap();
    log(&store, "a", "{\"loss\": 1}\n");
    ok(&store, &["log", "r", "--config", "{\"lr\": 0.1, \"opt\": \"adam\"}"], "{\"loss\": 1}\n{\"_config\": {\"wd\": 0}, \"_summary\": {\"best\": 0.5}, \"loss\": 0.5}\n{\"_summary\": {\"note\": \"ok\"}}\n");
    assert_eq!(ok(&store, &["config", "r"], "").trim(), "{\"lr\":0.1,\"opt\":\"adam\",\"wd\":0}");
    assert_eq!(ok(&store, &["summary", "r"], "").trim(), "{\"best\":0.5,\"loss\":0.5,\"note\":\"ok\"}");
    assert_eq!(steps(&store, "r", &[]), [0, 1]);
    ok(&store, &["log", "r2", "--config-file", cfg.to_str().unwrap()], "{\"loss\": 1}\n");
    assert_eq!(ok(&store, &["config", "r2"], "").trim(), "{\"bs\":32}");

    ok(
        &store,
        &[
            "set",
            "r",
            "--config",
            "{\"lr\": 0.2}",
            "--name",
            "first try",
            "--tag",
            "sweep",
            "--tag",
            "b",
            "--notes",
            "n",
            "--group",
            "g1",
        ],
        "",
    );
    ok(&store, &["set", "r", "--untag", "b", "--summary", "{\"final\": true}"], "");
    ok(&store, &["set", "a", "--tag", "sweep", "--group", "g2"], "");
    assert_eq!(ok(&store, &["config", "r"], "").trim(), "{\"lr\":0.2,\"opt\":\"adam\",\"wd\":0}");
    // A finished run stays finished.
    let listed = runs(&store, false);
    assert_eq!(listed["r@v0"]["state"], "finished");
    assert_eq!(listed["r@v0"]["name"], "first try");
    assert_eq!(listed["r@v0"]["tags"], serde_json::json!(["sweep"]));
    assert_eq!(listed["r@v0"]["group"], "g1");
    assert_eq!(listed["r2@v0"]["name"], serde_json::Value::Null);
    // The keys, in order: the old ones, then name, tags, group.
    let line = ok(&store, &["runs", "--json"], "");
    let first: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(keys, RUNS_JSON_KEYS);
    let ids = |args: &[&str]| -> Vec<String> {
        json_lines(&ok(&store, args, "")).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&["runs", "--json", "--tag", "sweep"]), ["a", "r"]);
    assert_eq!(ids(&["runs", "--json", "--tag", "sweep", "--group", "g1"]), ["r"]);
    assert_eq!(ids(&["runs", "--json", "--group", "none"]), Vec::<String>::new());
    assert!(ok(&store, &["runs", "--tag", "sweep"], "").contains("\na "));
    // A fork inherits the metadata as of the fork step.
    ok(&store, &["fork", "f", "r?_step=1"], "");
    assert_eq!(runs(&store, false)["f@v0"]["group"], "g1");
    // Mistakes: nothing to set, an empty tag, bad JSON.
    fails(&store, &["set", "r"], "");
    fails(&store, &["set", "r", "--tag", ""], "");
    fails(&store, &["set", "r", "--config", "{"], "");
    fails(&store, &["set", "nope", "--name", "x"], "");
}

#[test]
fn mistakes_are_refused_and_empty_rows_kept() {
    let (_tmp, store) = temp_store();
    log(&store, "r", "{}\n{\"a\": 1}\n{}\n");
    assert_eq!(steps(&store, "r", &[]), [0, 1, 2]);
    let line = fails(&store, &["history", "r", "--from-step", "5", "--to-step", "2"], "");
    assert!(line.contains("--from-step 5"), "{line}");
    assert_eq!(steps(&store, "r", &["--from-step", "2", "--to-step", "2"]), [2]);
    // Steps past i64 are taken from their literal exactly (a float would round them).
    log(&store, "big", "{\"_step\": 9223372036854775809, \"a\": 1}\n{\"_step\": 18446744073709551615}\n");
    assert_eq!(steps(&store, "big", &[]), [9223372036854775809, u64::MAX]);
    fails(&store, &["log", "big2"], "{\"_step\": 1e3}\n");
}

#[test]
fn verify_sees_damage_in_a_cleanly_closed_runs_index_and_repair_rebuilds_it() {
    let (_tmp, store) = temp_store();
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!("{{\"loss\": {i}.5, \"acc\": 0.{i}}}\n"));
    }
    log(&store, "r", &input);
    let idx = store.join("runs/r/v0-0.idx");
    let mut b = fs::read(&idx).unwrap();
    assert!(b.len() > 32 + 64, "at least one entry and the close record");
    b[32 + 3] ^= 0x10; // inside the first entry
    fs::write(&idx, &b).unwrap();
    let out = run(&store, &["verify"], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("{}:32: corrupt: ", idx.display())), "{text}");
    assert!(text.contains("derived data"), "{text}");
    // Reads are still right.
    assert_eq!(steps(&store, "r", &[]).len(), 3000);
    let out = run(&store, &["verify", "--repair"], "");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8(out.stdout).unwrap().contains("clean"));
    assert_eq!(run(&store, &["verify"], "").status.code(), Some(0));
}
