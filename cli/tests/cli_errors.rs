//! Every error path of the `forklog` tool exits with status 2 and exactly one `error: ` line on
//! stderr that says what and where (line number, run id, step), never a panic; a bad input line keeps
//! every earlier line and writes nothing from that line on (not even the Finish event); and a
//! command refused before writing (bad spec, unknown run, taken id, bad id) leaves the store's files
//! byte-for-byte unchanged.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::*;
use tempfile::TempDir;

/// A store holding `base` (steps 0..=4, finished) and `taken` (a fork of base at step 1).
fn setup() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("store");
    log_steps(&s, "base", 0..5);
    ok(&s, &["fork", "taken", "base?_step=1"], "");
    (tmp, s)
}

/// Runs a command that must fail, asserts the store's files did not change, and returns the error.
fn refused(s: &Path, args: &[&str], stdin: &str) -> String {
    let before = snapshot(s);
    let err = fails(s, args, stdin);
    assert_same(&before, &snapshot(s), &format!("forklog {args:?}"));
    err
}

/// The state `runs --json --all` reports for `key` (`id@vK`).
fn state(s: &Path, key: &str) -> String {
    runs(s, true)[key]["state"].as_str().expect("state").to_string()
}

#[test]
fn a_malformed_line_keeps_earlier_lines_and_writes_nothing_after() {
    let (_tmp, s) = setup();
    let input = "{\"a\": 1}\n\n{\"a\": 2}\n{\"a\": }\n{\"a\": 4}\n";
    let out = run(&s, &["log", "r", "--ack", "--sync", "never"], input);
    assert_eq!(out.status.code(), Some(2));
    let err = one_error_line(&out);
    assert!(err.starts_with("error: line 4: invalid JSON at column 7: "), "{err}");
    // The earlier rows were made durable and acknowledged before the exit.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n");
    let rows = history(&s, "r", &[]);
    assert_eq!(rows.iter().map(|r| r["a"].as_i64().expect("a")).collect::<Vec<_>>(), [1, 2]);
    assert_ne!(state(&s, "r@v0"), "finished", "no Finish event after an error");
    // The run can be appended to afterwards.
    log(&s, "r", "{\"a\": 5}\n");
    assert_eq!(steps(&s, "r", &[]), [0, 1, 2]);
}

#[test]
fn lines_that_are_not_objects_are_named() {
    let (_tmp, s) = setup();
    for (bad, what) in [("[1, 2]", "array"), ("\"s\"", "string"), ("3", "number"), ("null", "null")] {
        let input = format!("{{\"a\": 1}}\n{bad}\n");
        let err = fails(&s, &["log", &format!("obj-{what}")], &input);
        assert_eq!(err, "error: line 2: expected a JSON object", "{bad}");
    }
    let err = fails(&s, &["log", "two"], "{\"a\": 1} {\"b\": 2}\n");
    assert!(err.starts_with("error: line 1: invalid JSON"), "{err}");
    let err = fails(&s, &["log", "bin"], "{\"a\": \"\u{0}\"}\n");
    assert!(err.starts_with("error: line 1: invalid JSON"), "{err}");
}

#[test]
fn bad_step_and_timestamp_values_are_named() {
    let (_tmp, s) = setup();
    let cases = [("-1", "-1"), ("1.5", "1.5"), ("\"2\"", "\"2\""), ("null", "null"), ("1e3", "1000.0")];
    for (i, (value, shown)) in cases.into_iter().enumerate() {
        let input = format!("{{\"_step\": 0}}\n{{\"_step\": {value}, \"x\": 1}}\n");
        let err = fails(&s, &["log", &format!("steps-{i}")], &input);
        let want = format!("error: line 2: _step must be a non-negative integer, got {shown}");
        assert_eq!(err, want);
    }
    let err = fails(&s, &["log", "times"], "{\"_timestamp\": \"noon\"}\n");
    let want = "error: line 1: _timestamp must be a number of unix seconds, got a string";
    assert_eq!(err, want);
}

#[test]
fn a_step_that_does_not_increase_stops_at_its_line() {
    let (_tmp, s) = setup();
    let input =
        "{\"_step\": 5, \"a\": 1}\n{\"_step\": 9, \"a\": 2}\n\n{\"_step\": 9, \"a\": 3}\n{\"_step\": 10, \"a\": 4}\n";
    let err = fails(&s, &["log", "r1"], input);
    assert_eq!(err, "error: line 4: run r1: step 9 is not greater than the last step 9; nothing was written");
    assert_eq!(steps(&s, "r1", &[]), [5, 9]);
    // Appending to an existing run: the first line is already too low.
    let err = fails(&s, &["log", "base"], "{\"_step\": 3}\n");
    assert_eq!(err, "error: line 1: run base: step 3 is not greater than the last step 4; nothing was written");
    assert_eq!(steps(&s, "base", &[]), [0, 1, 2, 3, 4]);
    // A fresh fork starts after its fork step.
    let err = fails(&s, &["log", "f", "--fork-from", "base?_step=2"], "{\"_step\": 2}\n");
    assert!(err.starts_with("error: line 1: run f: step 2 is not greater than the last step 2"), "{err}");
}

#[test]
fn bad_specs_are_refused_before_anything_is_written() {
    let (_tmp, s) = setup();
    for spec in ["base", "base?_step=", "base?_step=-1", "base?step=1", "base?_step=1.5", "?_step=1", "base@x?_step=1"]
    {
        let err = refused(&s, &["fork", "new", spec], "");
        assert!(err.starts_with(&format!("error: invalid run spec {spec:?}")), "{err}");
        let err = refused(&s, &["rewind", spec], "");
        assert!(err.starts_with("error: invalid run spec"), "{err}");
        let err = refused(&s, &["log", "new", "--fork-from", spec], "{\"a\": 1}\n");
        assert!(err.starts_with("error: invalid run spec"), "{err}");
        let err = refused(&s, &["log", "base", "--resume-from", spec], "{\"a\": 1}\n");
        assert!(err.starts_with("error: invalid run spec"), "{err}");
    }
    assert!(!runs(&s, true).contains_key("new@v0"));
}

#[test]
fn unknown_runs_are_named() {
    let (tmp, s) = setup();
    let file = tmp.path().join("out.jsonl");
    let file = file.to_str().expect("path");
    let cases: [&[&str]; 12] = [
        &["history", "nope"],
        &["history", "base@v7"],
        &["summary", "nope"],
        &["config", "nope"],
        &["lineage", "nope"],
        &["fork", "new", "nope?_step=0"],
        &["fork", "new", "base@v3?_step=0"],
        &["rewind", "nope?_step=0"],
        &["delete", "nope"],
        &["export", "nope", file],
        &["log", "new", "--fork-from", "nope?_step=1"],
        &["history", "nope", "--format", "csv"],
    ];
    for args in cases {
        let err = refused(&s, args, "{\"a\": 1}\n");
        assert!(err.contains("not found"), "{args:?}: {err}");
        assert!(err.contains("nope") || err.contains("base@v"), "{args:?}: {err}");
    }
}

#[test]
fn forking_onto_an_existing_id_is_refused() {
    let (_tmp, s) = setup();
    let err = refused(&s, &["fork", "taken", "base?_step=3"], "");
    assert!(err.starts_with("error: run taken already exists"), "{err}");
    let err = refused(&s, &["log", "taken", "--fork-from", "base?_step=3"], "{\"a\": 1}\n");
    assert!(err.starts_with("error: run taken already exists"), "{err}");
    let err = refused(&s, &["fork", "base", "base?_step=3"], "");
    assert!(err.contains("base"), "{err}");
    assert_eq!(steps(&s, "taken", &[]), [0, 1]);
}

#[test]
fn resume_from_must_name_the_same_run() {
    let (_tmp, s) = setup();
    let err = refused(&s, &["log", "taken", "--resume-from", "base?_step=0"], "{\"a\": 1}\n");
    assert!(err.contains("--resume-from base?_step=0 names run base, not taken"), "{err}");
    let err = refused(&s, &["log", "ghost", "--resume-from", "ghost?_step=0"], "{\"a\": 1}\n");
    assert!(err.contains("ghost") && err.contains("not found"), "{err}");
}

#[test]
fn invalid_ids_and_archived_versions_cannot_be_written() {
    let (_tmp, s) = setup();
    let err = refused(&s, &["log", "a/b"], "{\"a\": 1}\n");
    assert!(err.starts_with("error: invalid run id \"a/b\""), "{err}");
    let err = refused(&s, &["fork", "", "base?_step=1"], "");
    assert!(err.starts_with("error: invalid run id"), "{err}");
    ok(&s, &["rewind", "base?_step=2"], "");
    for args in [&["log", "base@v0"][..], &["delete", "base@v0"], &["rewind", "base@v0?_step=1"]] {
        let err = refused(&s, args, "{\"a\": 1}\n");
        assert!(err.contains("base@v0"), "{args:?}: {err}");
    }
}

#[test]
fn read_commands_never_create_a_missing_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("typo");
    for args in [
        &["history", "r"][..],
        &["runs"],
        &["summary", "r"],
        &["config", "r"],
        &["lineage", "r"],
        &["verify"],
        &["delete", "r"],
        &["gc"],
        &["export", "r", "/dev/null"],
        &["fork", "a", "b?_step=1"],
        &["rewind", "b?_step=1"],
    ] {
        let err = fails(&s, args, "");
        assert!(err.starts_with(&format!("error: no store at {}", s.display())), "{args:?}: {err}");
        assert!(!s.exists(), "{args:?} created the store");
    }
    // An existing empty directory is not a store either (issue 9): read commands refuse it and leave it empty.
    std::fs::create_dir(&s).expect("mkdir");
    let err = fails(&s, &["runs", "--json"], "");
    assert!(err.starts_with(&format!("error: no store at {}", s.display())), "{err}");
    assert_eq!(std::fs::read_dir(&s).expect("read_dir").count(), 0);
}

#[test]
fn usage_errors_are_one_line() {
    let (tmp, s) = setup();
    for args in [
        &[][..],
        &["frobnicate"],
        &["log"],
        &["log", "r", "--sync", "sometimes"],
        &["history", "base", "--from-step", "-1"],
        &["history", "base", "--format", "xml"],
        &["runs", "--json", "--tree"],
        &["log", "r", "--fork-from", "base?_step=1", "--resume-from", "r?_step=1"],
        &["import", "--format", "csv", "r", "f"],
        &["demo", "--rows", "5"],
    ] {
        let err = refused(&s, args, "");
        assert!(!err.contains("Usage:\n"), "{err}");
    }
    let missing = tmp.path().join("missing.jsonl");
    let err = refused(&s, &["import", "r", missing.to_str().expect("path")], "");
    assert!(err.starts_with("error: cannot read ") && err.contains("missing.jsonl"), "{err}");
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"a\": 1}\n{\"a\": 2}\nnot json\n").expect("write");
    let err = fails(&s, &["import", "imp", bad.to_str().expect("path")], "");
    assert!(err.contains("bad.jsonl: line 3: invalid JSON"), "{err}");
    assert_eq!(steps(&s, "imp", &[]), [0, 1]);
}
