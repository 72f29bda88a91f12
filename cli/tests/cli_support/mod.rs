//! Helpers shared by the `cli*.rs` tests: run the real `forklog` binary against a temporary store
//! and look at its stdout, stderr, exit status and files.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value as Json;

/// The keys of a `runs --json` line, in the contract's order: the original ones, then `name, tags, group`.
pub const RUNS_JSON_KEYS: [&str; 12] = [
    "id",
    "version",
    "parent",
    "fork_step",
    "first_step",
    "last_step",
    "rows",
    "state",
    "created",
    "name",
    "tags",
    "group",
];

/// A temporary directory and the (not yet created) store path inside it.
pub fn temp_store() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("store");
    (tmp, path)
}

/// The path of the built `forklog` binary.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("forklog")
}

/// A `forklog --store <store>` command with `FORKLOG_STORE` cleared.
pub fn forklog(store: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_remove("FORKLOG_STORE").arg("--store").arg(store);
    cmd
}

/// Runs `forklog --store <store> <args>` with `stdin` and returns its output.
pub fn run(store: &Path, args: &[&str], stdin: &str) -> Output {
    forklog(store).args(args).write_stdin(stdin).output().expect("run forklog")
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(store: &Path, args: &[&str], stdin: &str) -> String {
    let out = run(store, args, stdin);
    assert!(
        out.status.success(),
        "forklog {args:?} failed with {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs a command that must fail with status 2 and one `error: ` line on stderr; returns that line
/// (without the trailing newline).
pub fn fails(store: &Path, args: &[&str], stdin: &str) -> String {
    let out = run(store, args, stdin);
    assert_eq!(out.status.code(), Some(2), "forklog {args:?}: {out:?}");
    one_error_line(&out)
}

/// Asserts stderr is exactly one line starting with `error: ` and returns it.
pub fn one_error_line(out: &Output) -> String {
    let err = String::from_utf8(out.stderr.clone()).expect("utf-8 stderr");
    assert!(err.starts_with("error: "), "stderr: {err:?}");
    assert!(err.ends_with('\n'), "stderr: {err:?}");
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(!err.contains("panicked"), "stderr: {err:?}");
    err.trim_end().to_string()
}

/// Logs `input` (JSON Lines) into `run`, which must succeed.
pub fn log(store: &Path, run: &str, input: &str) {
    ok(store, &["log", run], input);
}

/// Logs rows `{"_step": s, "x": s * 10}` for each step in `steps` into `run`.
pub fn log_steps(store: &Path, run: &str, steps: impl IntoIterator<Item = u64>) {
    let input: String = steps.into_iter().map(|s| format!("{{\"_step\": {s}, \"x\": {}}}\n", s * 10)).collect();
    log(store, run, &input);
}

/// Parses JSON Lines.
pub fn json_lines(text: &str) -> Vec<Json> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"))).collect()
}

/// `history RUN <extra>` parsed as JSON rows.
pub fn history(store: &Path, run: &str, extra: &[&str]) -> Vec<Json> {
    let mut args = vec!["history", run];
    args.extend_from_slice(extra);
    json_lines(&ok(store, &args, ""))
}

/// The `_step` of each history row of `run`.
pub fn steps(store: &Path, run: &str, extra: &[&str]) -> Vec<u64> {
    history(store, run, extra).iter().map(|r| r["_step"].as_u64().expect("_step is an integer")).collect()
}

/// `runs --json [--all]` as a map from `id@vK` to the JSON object.
pub fn runs(store: &Path, all: bool) -> BTreeMap<String, Json> {
    let args: &[&str] = if all { &["runs", "--json", "--all"] } else { &["runs", "--json"] };
    json_lines(&ok(store, args, ""))
        .into_iter()
        .map(|r| {
            let key = format!("{}@v{}", r["id"].as_str().expect("id"), r["version"]);
            (key, r)
        })
        .collect()
}

/// Every file under `dir` with its bytes: a snapshot to prove a failed command changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).expect("read file");
                files.insert(path.strip_prefix(dir).expect("prefix").to_path_buf(), bytes);
            }
        }
    }
    files
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let names = |s: &BTreeMap<PathBuf, Vec<u8>>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "{what}: the set of files changed");
    for (path, bytes) in before {
        assert!(after[path] == *bytes, "{what}: {} changed", path.display());
    }
}

/// A small xorshift generator for the randomized tests (which print their seed, so a failure can be replayed).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
