//! `forklog import --format wandb|tensorboard|mlflow|trackio` and `forklog export RUN... --format ...`
//! through the real binary: the exact JSON line per imported run, exit 2 naming file and byte offset with
//! the other runs kept, the truncated-W&B warning, `--prefix`/`--as`, and exports (`--tree`, `--flat`, the
//! original `export RUN FILE`).

mod cli_support;

use std::path::PathBuf;

use cli_support::*;
use serde_json::json;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/interop")
}

fn fx(p: &str) -> String {
    fixtures().join(p).to_string_lossy().into_owned()
}

#[test]
fn import_wandb_prints_one_exact_line_per_run() {
    let (_t, s) = temp_store();
    let out = ok(&s, &["import", "--format", "wandb", &fx("wandb")], "");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    // Exactly these keys, in this order.
    for l in out.lines() {
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l).unwrap().keys().cloned().collect();
        assert_eq!(keys, ["source", "run", "version", "rows", "parent", "fork_step"]);
    }
    assert_eq!(lines[1]["run"], json!("fork-run-b"));
    assert_eq!(lines[1]["parent"], json!("base-run-a@v0"));
    assert_eq!(lines[1]["fork_step"], json!(20));
    assert_eq!(lines[1]["rows"], json!(31));
    assert_eq!(lines[2]["run"], json!("base-run-a"));
    assert_eq!(lines[2]["version"], json!(1));
    assert!(lines[0]["source"].as_str().unwrap().ends_with("run-base-run-a.wandb"));
    assert_eq!(steps(&s, "fork-run-b", &[]), (0..=30).collect::<Vec<_>>());
    assert_eq!(steps(&s, "base-run-a", &[]), (0..=25).collect::<Vec<_>>());
    assert_eq!(steps(&s, "base-run-a@v0", &[]), (0..30).collect::<Vec<_>>());
}

#[test]
fn import_with_a_damaged_source_exits_2_naming_file_and_offset_and_keeps_the_rest() {
    let (t, s) = temp_store();
    let src = fixtures().join("tensorboard/native");
    let mut files: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let logdir = t.path().join("logs");
    for (run, damage) in [("good", false), ("bad", true)] {
        std::fs::create_dir_all(logdir.join(run)).unwrap();
        for f in &files {
            let mut data = std::fs::read(f).unwrap();
            if damage && f == &files[0] {
                data[100] ^= 0xff;
            }
            std::fs::write(logdir.join(run).join(f.file_name().unwrap()), data).unwrap();
        }
    }
    let out = run(&s, &["import", "--format", "tensorboard", "--prefix", "x-", logdir.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["run"], json!("x-good"));
    let err = one_error_line(&out);
    assert!(err.contains("bad") && err.contains("events.out.tfevents") && err.contains("byte offset"), "{err}");
    let listed = runs(&s, false);
    assert!(listed.contains_key("x-good@v1") && !listed.keys().any(|k| k.starts_with("x-bad")), "{listed:?}");
}

#[test]
fn truncated_wandb_file_warns_with_dropped_bytes() {
    let (t, s) = temp_store();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap();
    let src = fixtures().join("wandb").join(exp["wandb"]["files"][0].as_str().unwrap());
    let data = std::fs::read(src).unwrap();
    let f = t.path().join("run-x.wandb");
    std::fs::write(&f, &data[..data.len() - 3]).unwrap();
    let out = run(&s, &["import", "--format", "wandb", "--as", "cut", f.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("warning: ") && stderr.contains("bytes"), "{stderr}");
    assert_eq!(json_lines(&String::from_utf8(out.stdout).unwrap())[0]["run"], json!("cut"));
}

#[test]
fn import_mlflow_trackio_and_jsonl_still_works() {
    let (t, s) = temp_store();
    let out = ok(&s, &["import", "--format", "mlflow", &fx("mlflow/mlflow.db")], "");
    assert_eq!(json_lines(&out).len(), 2);
    let out = ok(&s, &["import", "--format", "trackio", &fx("trackio/fixture.db")], "");
    assert_eq!(json_lines(&out)[0]["run"], json!("trk-base"));
    let f = t.path().join("rows.jsonl");
    std::fs::write(&f, "{\"a\": 1}\n{\"a\": 2}\n").unwrap();
    ok(&s, &["import", "--format", "jsonl", "j", f.to_str().unwrap()], "");
    ok(&s, &["import", "j2", f.to_str().unwrap()], "");
    assert_eq!(steps(&s, "j2", &[]), [0, 1]);
    let err = fails(&s, &["import", "--format", "jsonl", "--prefix", "p", "j3", f.to_str().unwrap()], "");
    assert!(err.contains("--prefix"));
}

#[test]
fn export_formats_tree_and_flat() {
    let (t, s) = temp_store();
    log(&s, "base", "{\"loss\": 1.0}\n{\"loss\": 0.5}\n{\"loss\": 0.25}\n");
    ok(&s, &["fork", "f", "base?_step=1"], "");
    log(&s, "f", "{\"loss\": 0.4, \"lr\": 3}\n");
    // The original `export RUN FILE`: history's JSONL, no _run.
    let legacy = t.path().join("base.jsonl");
    ok(&s, &["export", "base", legacy.to_str().unwrap()], "");
    assert_eq!(std::fs::read_to_string(&legacy).unwrap(), ok(&s, &["history", "base"], ""));
    // --tree base: base and its fork; each stored row once, labelled by origin.
    let out = t.path().join("tree.jsonl");
    ok(&s, &["export", "--tree", "base", "--format", "jsonl", out.to_str().unwrap()], "");
    let rows = json_lines(&std::fs::read_to_string(&out).unwrap());
    let labels: Vec<(String, u64)> =
        rows.iter().map(|r| (r["_run"].as_str().unwrap().to_string(), r["_step"].as_u64().unwrap())).collect();
    assert_eq!(labels, [("base@v0".into(), 0), ("base@v0".into(), 1), ("base@v0".into(), 2), ("f@v0".into(), 2)]);
    // --flat: every run's whole history, labelled by the run.
    let out = t.path().join("flat.csv");
    ok(&s, &["export", "base", "f", "--flat", "--format", "csv", out.to_str().unwrap()], "");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "_run,_step,_timestamp,loss,lr");
    assert_eq!(lines.len(), 1 + 3 + 3);
    assert!(lines[6].starts_with("f,2,") && lines[6].ends_with(",0.4,3"), "{}", lines[6]);
    for fmt in ["parquet", "arrow"] {
        let out = t.path().join(format!("x.{fmt}"));
        ok(&s, &["export", "base", "f", "--format", fmt, out.to_str().unwrap()], "");
        assert!(std::fs::metadata(&out).unwrap().len() > 100);
    }
    let tb = t.path().join("tb");
    ok(&s, &["export", "--tree", "base", "--format", "tensorboard", tb.to_str().unwrap()], "");
    assert!(tb.join("base").is_dir() && tb.join("f").is_dir());
    let err = fails(&s, &["export", "nope", "--format", "parquet", t.path().join("y.parquet").to_str().unwrap()], "");
    assert!(err.contains("nope"), "{err}");
    assert!(!t.path().join("y.parquet").exists());
}
