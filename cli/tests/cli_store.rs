//! The `forklog` commands that look at or maintain a whole store, through the real binary: `runs`
//! (JSON key order and values, the aligned table, the fork tree, `--all`), `summary`, `config`,
//! `lineage`, `verify` (clean, corrupt with file and offset, torn tail), `delete` and `gc`,
//! `export`/`import` round trips, and `demo`.

mod cli_support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use cli_support::*;
use serde_json::json;

#[test]
fn runs_json_has_the_contract_keys_in_order() {
    let (_tmp, s) = temp_store();
    log_steps(&s, "base", 0..5);
    ok(&s, &["fork", "f", "base?_step=2"], "");
    log(&s, "f", "{\"x\": 1}\n");
    log(&s, "empty", "");
    let list = runs(&s, false);
    assert_eq!(list.keys().collect::<Vec<_>>(), ["base@v0", "empty@v0", "f@v0"]);
    let keys: Vec<&String> = list["f@v0"].as_object().expect("object").keys().collect();
    assert_eq!(keys, RUNS_JSON_KEYS);
    let f = &list["f@v0"];
    assert_eq!(
        *f,
        json!({"id": "f", "version": 0, "parent": "base@v0", "fork_step": 2, "first_step": 0,
               "last_step": 3, "rows": 4, "state": "finished", "created": f["created"],
               "name": null, "tags": [], "group": null})
    );
    assert!(f["created"].is_f64());
    let base = &list["base@v0"];
    assert_eq!(base["parent"], json!(null));
    assert_eq!(base["fork_step"], json!(null));
    assert_eq!(
        (base["first_step"].clone(), base["last_step"].clone(), base["rows"].clone()),
        (json!(0), json!(4), json!(5))
    );
    let empty = &list["empty@v0"];
    assert_eq!(
        (empty["first_step"].clone(), empty["last_step"].clone(), empty["rows"].clone()),
        (json!(null), json!(null), json!(0))
    );
    // --all adds `archived` and `deleted` after `created`; the metadata keys (issue 9) come last.
    let all = runs(&s, true);
    let keys: Vec<&String> = all["f@v0"].as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 14);
    assert_eq!(keys[9..], ["archived", "deleted", "name", "tags", "group"]);
}

#[test]
fn runs_table_and_tree() {
    let (_tmp, s) = temp_store();
    log_steps(&s, "base", 0..5);
    ok(&s, &["fork", "f", "base?_step=2"], "");
    log(&s, "f", "{\"x\": 1}\n");
    ok(&s, &["fork", "g", "f?_step=3"], "");
    ok(&s, &["fork", "h", "base?_step=4"], "");
    log_steps(&s, "solo", 0..1);
    assert_eq!(
        ok(&s, &["runs", "--tree"], ""),
        concat!(
            "base@v0\n",
            "├── f@v0 (fork at step 2)\n",
            "│   └── g@v0 (fork at step 3)\n",
            "└── h@v0 (fork at step 4)\n",
            "solo@v0\n"
        )
    );
    let table = ok(&s, &["runs"], "");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with("RUN "), "{table}");
    for (line, id) in lines[1..].iter().zip(["base", "f", "g", "h", "solo"]) {
        assert_eq!(line.split_whitespace().next(), Some(id), "{table}");
    }
    // Columns line up: STATE starts at the same offset in every line.
    let col = lines[0].find("STATE").expect("STATE column");
    for line in &lines[1..] {
        assert!(line[col..].starts_with("finished") || line[col..].starts_with("running"), "{table}");
    }
    // A rewound parent: the fork names the archived version it hangs from.
    ok(&s, &["rewind", "base?_step=0"], "");
    let tree = ok(&s, &["runs", "--tree"], "");
    assert!(tree.contains("f@v0 (fork of base@v0 at step 2)\n"), "{tree}");
    let tree_all = ok(&s, &["runs", "--tree", "--all"], "");
    assert!(tree_all.starts_with("base@v0 [archived]\n├── f@v0 (fork at step 2)\n"), "{tree_all}");
    assert!(tree_all.contains("base@v1 (rewound to step 0)\n"), "{tree_all}");
    assert!(ok(&s, &["runs", "--all"], "").contains("archived"));
}

#[test]
fn summary_config_and_lineage_print_json() {
    let (_tmp, s) = temp_store();
    log(&s, "r", "{\"loss\": 0.5, \"acc\": 0.1}\n{\"loss\": 0.25}\n{\"tag\": \"a\"}\n");
    assert_eq!(ok(&s, &["summary", "r"], ""), "{\"acc\":0.1,\"loss\":0.25,\"tag\":\"a\"}\n");
    assert_eq!(ok(&s, &["config", "r"], ""), "{}\n");
    assert_eq!(ok(&s, &["lineage", "r"], ""), "[{\"run\":\"r@v0\",\"fork_step\":null}]\n");
    ok(&s, &["fork", "f", "r?_step=0"], "");
    assert_eq!(ok(&s, &["summary", "f"], ""), "{\"acc\":0.1,\"loss\":0.5}\n");
}

/// The active segment file of `run`'s version 0 (the last one by name).
fn segment(store: &Path, run: &str) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(store.join("runs").join(run))
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment file")
}

#[test]
fn verify_reports_clean_corrupt_and_torn_tail() {
    let (_tmp, s) = temp_store();
    let rows: String = (0..200).map(|i| format!("{{\"v\": {i}, \"pad\": \"{}\"}}\n", "p".repeat(50))).collect();
    ok(&s, &["log", "r", "--sync", "always"], &rows);
    let out = run(&s, &["verify"], "");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!((words[0], words[2], words[4], words[5]), ("verified", "files,", "bytes:", "clean"), "{text}");
    assert!(words[1].parse::<u64>().expect("file count") >= 1);

    // A torn tail (a crash mid-append) is reported but is not corruption.
    let seg = segment(&s, "r");
    let len = fs::metadata(&seg).expect("metadata").len();
    OpenOptions::new().append(true).open(&seg).expect("open").write_all(&[0x5a; 5]).expect("append");
    let out = run(&s, &["verify"], "");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(": torn tail: "), "{text}");
    assert!(text.lines().last().expect("summary").contains("clean"), "{text}");
    // The next writer cuts the torn tail.
    log(&s, "r", "{\"v\": 200}\n");
    assert_eq!(steps(&s, "r", &[]).len(), 201);
    let text = ok(&s, &["verify"], "");
    assert!(!text.contains("torn tail"), "{text}");

    // A flipped byte in the middle of the segment is corruption: exit 1, file and offset named.
    let mut bytes = fs::read(&seg).expect("read");
    assert!(bytes.len() as u64 > len);
    let at = bytes.len() / 3;
    bytes[at] ^= 0xff;
    fs::write(&seg, &bytes).expect("write");
    let out = run(&s, &["verify"], "");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let name = seg.file_name().expect("name").to_string_lossy().to_string();
    let problem = text.lines().find(|l| l.contains(": corrupt: ")).expect("a corrupt line");
    assert!(problem.contains(&name), "{problem}");
    let offset: u64 = problem.split(':').nth(1).expect("offset").parse().expect("numeric offset");
    assert!(offset <= at as u64, "{problem}");
    assert!(text.lines().last().expect("summary").contains("problem"), "{text}");
}

#[test]
fn delete_then_gc_frees_what_no_fork_needs() {
    let (_tmp, s) = temp_store();
    log_steps(&s, "base", 0..5);
    ok(&s, &["fork", "f", "base?_step=2"], "");
    log_steps(&s, "other", 0..3);
    assert_eq!(ok(&s, &["delete", "base"], ""), "");
    assert!(!runs(&s, false).contains_key("base@v0"));
    assert_eq!(runs(&s, true)["base@v0"]["deleted"], true);
    assert_eq!(steps(&s, "f", &[]), [0, 1, 2]);
    let err = fails(&s, &["history", "base"], "");
    assert!(err.contains("base") && err.contains("not found"), "{err}");
    // base is still needed by f: nothing of it is freed.
    let out = ok(&s, &["gc"], "");
    assert!(out.starts_with("freed ") && out.ends_with("\n"), "{out}");
    assert_eq!(steps(&s, "f", &[]), [0, 1, 2]);
    ok(&s, &["delete", "other"], "");
    ok(&s, &["delete", "f"], "");
    let out = ok(&s, &["gc"], "");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "freed");
    assert!(words[1].parse::<u64>().expect("files") > 0, "{out}");
    assert!(out.contains("runs removed: ") && out.contains("base"), "{out}");
    assert!(runs(&s, true).is_empty());
    assert_eq!(ok(&s, &["gc"], ""), "freed 0 files, 0 bytes; runs removed: none\n");
}

#[test]
fn export_then_import_reproduces_the_history() {
    let (tmp, s) = temp_store();
    log(
        &s,
        "src",
        "{\"_timestamp\": 5.5, \"a\": 1, \"b\": [0.5, \"q\"]}\n{\"_step\": 4, \"_timestamp\": 6, \"a\": 1e-7}\n",
    );
    ok(&s, &["fork", "fk", "src?_step=0"], "");
    log(&s, "fk", "{\"_timestamp\": 7.125, \"c\": {\"d\": false}}\n");
    let file = tmp.path().join("fk.jsonl");
    assert_eq!(ok(&s, &["export", "fk", file.to_str().expect("path")], ""), "");
    let exported = fs::read_to_string(&file).expect("export file");
    assert_eq!(exported, ok(&s, &["history", "fk"], ""));
    assert_eq!(exported.lines().count(), 2);
    assert_eq!(ok(&s, &["import", "--format", "jsonl", "copy", file.to_str().expect("path")], ""), "");
    assert_eq!(ok(&s, &["history", "copy"], ""), exported);
    assert_eq!(runs(&s, false)["copy@v0"]["state"], "finished");
    // Importing again appends only if the steps increase.
    let err = fails(&s, &["import", "copy", file.to_str().expect("path")], "");
    assert!(err.contains("line 1:") && err.contains("step 0 is not greater than the last step 1"), "{err}");
    // A failed export leaves no file.
    let missing = tmp.path().join("missing.jsonl");
    fails(&s, &["export", "nope", missing.to_str().expect("path")], "");
    assert!(!missing.exists());
}

#[test]
fn demo_runs_and_leaves_a_valid_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let dir_s = dir.to_str().expect("path");
    let out = ok(&tmp.path().join("unused"), &["demo", "--dir", dir_s, "--rows", "1000"], "");
    for word in ["write", "rows/s", "fork", "fork of a fork", "rewind", "replay", "columns", "verify", "clean", "total"]
    {
        assert!(out.contains(word), "missing {word:?} in:\n{out}");
    }
    let list = runs(&dir, false);
    let ids: Vec<&String> = list.keys().collect();
    assert_eq!(ids, ["base@v1", "fork-10@v0", "fork-500@v0", "fork-990@v0", "fork-of-fork@v0"]);
    assert_eq!(list["base@v1"]["rows"], 801 + 10);
    assert_eq!(list["fork-990@v0"]["rows"], 991 + 10);
    assert_eq!(ok(&dir, &["verify"], "").lines().last().map(|l| l.ends_with(": clean")), Some(true));
    // Running it again wipes and rebuilds the store.
    ok(&dir, &["demo", "--dir", dir_s, "--rows", "1000"], "");
    assert_eq!(runs(&dir, false).len(), 5);
    // It refuses to wipe a directory that is not a store.
    let precious = tmp.path().join("precious");
    fs::create_dir(&precious).expect("mkdir");
    fs::write(precious.join("thesis.tex"), "keep me").expect("write");
    let err = fails(&dir, &["demo", "--dir", precious.to_str().expect("path")], "");
    assert!(err.contains("refusing"), "{err}");
    assert_eq!(fs::read_to_string(precious.join("thesis.tex")).expect("kept"), "keep me");
}
