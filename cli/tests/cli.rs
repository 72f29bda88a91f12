//! The `forklog` command-line contract for writing and reading runs, through the real binary: what
//! `log` writes and `history` prints (exact number formatting, CSV, step and key filters, `--own`,
//! `--origin`), `--ack` under each sync policy, `fork`, `rewind` and `--resume-from`, where the store
//! is (`--store`, `FORKLOG_STORE`, the default), `--help`, and `history` into a closed pipe.

mod cli_support;

use std::io::Read;
use std::process::Stdio;

use cli_support::*;
use serde_json::json;

#[test]
fn values_round_trip_with_exact_number_formatting() {
    let (_tmp, s) = temp_store();
    let line = concat!(
        r#"{"_step": 0, "_timestamp": 1700000000.25, "int": 3, "float": 0.1, "whole": 2.0, "big": 1e300,"#,
        r#" "neg0": -0.0, "s": "a,\"b\"", "t": true, "n": null, "list": [1, 2.5, "x"],"#,
        r#" "obj": {"b": 1, "a": {"c": [true]}}, "huge": 18446744073709551615, "negint": -7}"#
    );
    log(&s, "r", line);
    let out = ok(&s, &["history", "r"], "");
    assert_eq!(
        out,
        concat!(
            r#"{"_step":0,"_timestamp":1700000000.25,"big":1e+300,"float":0.1,"huge":1.8446744073709552e+19,"#,
            r#""int":3,"list":[1,2.5,"x"],"n":null,"neg0":-0.0,"negint":-7,"obj":{"a":{"c":[true]},"b":1},"#,
            r#""s":"a,\"b\"","t":true,"whole":2.0}"#,
            "\n"
        )
    );
}

#[test]
fn log_assigns_next_steps_skips_blank_lines_and_appends() {
    let (_tmp, s) = temp_store();
    log(&s, "r", "{\"a\": 1}\n\n   \n{\"a\": 2}\n");
    assert_eq!(steps(&s, "r", &[]), [0, 1]);
    log(&s, "r", "{\"a\": 3}\r\n{\"_step\": 10, \"a\": 4}\n{\"a\": 5}");
    assert_eq!(steps(&s, "r", &[]), [0, 1, 2, 10, 11]);
    let rows = history(&s, "r", &[]);
    let a: Vec<i64> = rows.iter().map(|r| r["a"].as_i64().expect("a")).collect();
    assert_eq!(a, [1, 2, 3, 4, 5]);
    // Without `_timestamp`, rows get the current time.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let t = rows[0]["_timestamp"].as_f64().expect("_timestamp is a float");
    assert!((now - t).abs() < 600.0, "timestamp {t} vs now {now}");
    let info = &runs(&s, false)["r@v0"];
    assert_eq!(info["state"], "finished");
    assert_eq!(info["rows"], 5);
}

#[test]
fn ack_prints_every_durable_step_under_each_policy() {
    let (_tmp, s) = temp_store();
    let input = "{\"a\": 1}\n{\"a\": 2}\n{\"_step\": 7, \"a\": 3}\n{\"a\": 4}\n";
    for (i, sync) in ["always", "interval", "never"].into_iter().enumerate() {
        let run = format!("r{i}");
        let out = ok(&s, &["log", &run, "--sync", sync, "--ack"], input);
        assert_eq!(out, "0\n1\n7\n8\n", "--sync {sync}");
    }
    // Default policy, appending: acks continue from the existing history.
    assert_eq!(ok(&s, &["log", "r0", "--ack"], "{\"a\": 5}\n{\"a\": 6}\n"), "9\n10\n");
    // Without --ack nothing is printed.
    assert_eq!(ok(&s, &["log", "r0"], "{\"a\": 7}\n"), "");
}

#[test]
fn fork_shares_the_prefix_and_history_filters_by_origin() {
    let (_tmp, s) = temp_store();
    log_steps(&s, "base", 0..5);
    assert_eq!(ok(&s, &["fork", "f", "base?_step=2"], ""), "");
    assert_eq!(steps(&s, "f", &[]), [0, 1, 2]);
    assert_eq!(steps(&s, "f", &["--own"]), Vec::<u64>::new());
    log(&s, "f", "{\"x\": 99}\n");
    assert_eq!(steps(&s, "f", &[]), [0, 1, 2, 3]);
    assert_eq!(steps(&s, "f", &["--own"]), [3]);
    let rows = history(&s, "f", &["--origin"]);
    let origins: Vec<&str> = rows.iter().map(|r| r["_run"].as_str().expect("_run")).collect();
    assert_eq!(origins, ["base@v0", "base@v0", "base@v0", "f@v0"]);
    assert_eq!(rows[3]["x"], 99);
    assert_eq!(rows[2]["x"], 20);
    // `_run` is the last key.
    let keys: Vec<&String> = rows[0].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["_step", "_timestamp", "x", "_run"]);
    // The parent is untouched.
    assert_eq!(steps(&s, "base", &[]), [0, 1, 2, 3, 4]);

    // `log --fork-from` forks and writes in one go.
    ok(&s, &["log", "g", "--fork-from", "f?_step=3"], "{\"y\": 1}\n{\"_step\": 9, \"y\": 2}\n");
    assert_eq!(steps(&s, "g", &[]), [0, 1, 2, 3, 4, 9]);
    assert_eq!(
        ok(&s, &["lineage", "g"], ""),
        concat!(
            r#"[{"run":"base@v0","fork_step":null},{"run":"f@v0","fork_step":2},"#,
            r#"{"run":"g@v0","fork_step":3}]"#,
            "\n"
        )
    );
}

#[test]
fn rewind_archives_the_old_version_and_resume_from_rewinds_then_logs() {
    let (_tmp, s) = temp_store();
    log_steps(&s, "base", 0..5);
    assert_eq!(ok(&s, &["rewind", "base?_step=1"], ""), "");
    assert_eq!(steps(&s, "base", &[]), [0, 1]);
    assert_eq!(steps(&s, "base@v0", &[]), [0, 1, 2, 3, 4]);
    log(&s, "base", "{\"z\": 1}\n");
    assert_eq!(steps(&s, "base", &[]), [0, 1, 2]);
    assert_eq!(ok(&s, &["summary", "base"], ""), "{\"x\":10,\"z\":1}\n");

    ok(&s, &["log", "base", "--resume-from", "base?_step=0"], "{\"w\": 5}\n");
    let rows = history(&s, "base", &[]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["_step"], 1);
    assert_eq!(rows[1]["w"], 5);
    assert!(rows[1].get("x").is_none());
    assert_eq!(ok(&s, &["summary", "base"], ""), "{\"w\":5,\"x\":0}\n");
    // Every archived version stays readable and forkable.
    assert_eq!(steps(&s, "base@v1", &[]), [0, 1, 2]);
    ok(&s, &["fork", "old", "base@v0?_step=4"], "");
    assert_eq!(steps(&s, "old", &[]), [0, 1, 2, 3, 4]);
    let all = runs(&s, true);
    for (key, archived) in [("base@v0", true), ("base@v1", true), ("base@v2", false), ("old@v0", false)] {
        assert_eq!(all[key]["archived"], archived, "{key}");
        assert_eq!(all[key]["deleted"], false, "{key}");
    }
    assert_eq!(all["base@v2"]["rows"], 2);
    assert!(!runs(&s, false).contains_key("base@v0"));
}

#[test]
fn history_step_range_and_key_filters() {
    let (_tmp, s) = temp_store();
    let input: String = (0..10)
        .map(|i| if i % 2 == 0 { format!("{{\"x\": {i}, \"e\": {i}}}\n") } else { format!("{{\"x\": {i}}}\n") })
        .collect();
    log(&s, "r", &input);
    assert_eq!(steps(&s, "r", &["--from-step", "3", "--to-step", "6"]), [3, 4, 5, 6]);
    assert_eq!(steps(&s, "r", &["--from-step", "8"]), [8, 9]);
    assert_eq!(steps(&s, "r", &["--to-step", "0"]), [0]);
    let rows = history(&s, "r", &["--keys", "e"]);
    assert_eq!(rows.len(), 5);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(*row, json!({"_step": 2 * i, "_timestamp": row["_timestamp"], "e": 2 * i}));
    }
    assert_eq!(steps(&s, "r", &["--keys", "e,x"]).len(), 10);
    assert_eq!(steps(&s, "r", &["--keys", "nope"]).len(), 0);
}

#[test]
fn history_csv_has_the_union_of_keys_and_quotes_cells() {
    let (_tmp, s) = temp_store();
    let input = concat!(
        r#"{"_step": 0, "_timestamp": 100.5, "b": 1, "a": "x,y"}"#,
        "\n",
        r#"{"_step": 1, "_timestamp": 101, "c": true, "a": "say \"hi\""}"#,
        "\n",
        r#"{"_step": 2, "_timestamp": 102.25, "a": 2.5, "l": [1, 2], "n": null}"#,
        "\n"
    );
    log(&s, "c", input);
    assert_eq!(
        ok(&s, &["history", "c", "--format", "csv"], ""),
        concat!(
            "_step,_timestamp,a,b,c,l,n\n",
            "0,100.5,\"x,y\",1,,,\n",
            "1,101.0,\"say \"\"hi\"\"\",,true,,\n",
            "2,102.25,2.5,,,\"[1,2]\",\n"
        )
    );
    ok(&s, &["fork", "d", "c?_step=0"], "");
    log(&s, "d", "{\"_timestamp\": 200, \"z\": -1}\n");
    assert_eq!(
        ok(&s, &["history", "d", "--format", "csv", "--origin"], ""),
        "_step,_timestamp,a,b,z,_run\n0,100.5,\"x,y\",1,,c@v0\n1,200.0,,,-1,d@v0\n"
    );
    assert_eq!(ok(&s, &["history", "d", "--format", "csv", "--own"], ""), "_step,_timestamp,z\n1,200.0,-1\n");
}

#[test]
fn store_location_flag_env_and_default() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let env_store = tmp.path().join("from-env");
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.env("FORKLOG_STORE", &env_store).args(["log", "e"]).write_stdin("{\"a\": 1}\n").assert().success();
    assert_eq!(steps(&env_store, "e", &[]), [0]);
    // --store wins over the environment, and may follow the command.
    let flag_store = tmp.path().join("from-flag");
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.env("FORKLOG_STORE", &env_store)
        .args(["log", "g", "--store"])
        .arg(&flag_store)
        .write_stdin("{\"a\": 1}\n")
        .assert()
        .success();
    assert!(runs(&flag_store, false).contains_key("g@v0"));
    assert!(!runs(&env_store, false).contains_key("g@v0"));
    // Default: ./forklog-store.
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.env_remove("FORKLOG_STORE")
        .current_dir(tmp.path())
        .args(["log", "d"])
        .write_stdin("{\"a\": 1}\n")
        .assert()
        .success();
    assert!(runs(&tmp.path().join("forklog-store"), false).contains_key("d@v0"));
}

#[test]
fn help_and_version_exit_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let help = ok(tmp.path(), &["--help"], "");
    for cmd in [
        "log", "fork", "rewind", "history", "runs", "summary", "config", "lineage", "verify", "delete", "gc", "import",
        "export", "demo",
    ] {
        assert!(help.contains(&format!("\n  {cmd} ")), "{cmd} missing from help");
    }
    assert!(help.contains("FORKLOG_STORE"));
    assert!(ok(tmp.path(), &["history", "--help"], "").contains("--origin"));
    assert!(ok(tmp.path(), &["--version"], "").starts_with("forklog "));
}

#[test]
fn history_into_a_closed_pipe_stops_quietly() {
    let (_tmp, s) = temp_store();
    let rows: String = (0..5000).map(|i| format!("{{\"i\": {i}, \"pad\": \"{}\"}}\n", "z".repeat(40))).collect();
    ok(&s, &["log", "big", "--sync", "never"], &rows);
    let mut child = std::process::Command::new(bin())
        .env_remove("FORKLOG_STORE")
        .arg("--store")
        .arg(&s)
        .args(["history", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    child.stdout.take().expect("stdout").read_exact(&mut first).expect("read");
    // The read end is now closed; history must stop without a panic.
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(&first[..9], b"{\"_step\":");
}
