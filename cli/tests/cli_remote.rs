//! `forklog --store s3://BUCKET/PREFIX --cache DIR` against a real S3 server (moto, started from the binary
//! named by `FORKLOG_MOTO_SERVER`, which ./test.sh sets; without it the test skips, loudly): one "machine"
//! logs, a second one (another cache) forks and lists, a third reads the histories.
#![cfg(feature = "remote")]

mod cli_support;

use std::path::Path;

use cli_support::*;
use forklog_remote::testing::MotoServer;

/// Runs `forklog --store URL --cache CACHE ARGS` with the server's environment; returns stdout.
fn remote(s: &MotoServer, url: &str, cache: &Path, args: &[&str], stdin: &str) -> String {
    let out = assert_cmd::Command::new(bin())
        .env_remove("FORKLOG_STORE")
        .env_remove("FORKLOG_CACHE")
        .envs(s.env())
        .args(["--store", url, "--cache"])
        .arg(cache)
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap();
    assert!(out.status.success(), "forklog {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn log_fork_and_history_from_other_caches() {
    let Some(bin) = MotoServer::binary() else {
        eprintln!("\n*** SKIPPED: FORKLOG_MOTO_SERVER is not set; ./test.sh installs moto[server] and sets it. ***\n");
        return;
    };
    let s = MotoServer::start(bin).unwrap();
    s.create_bucket("cli").unwrap();
    let url = "s3://cli/team";
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rows: String = (0..300).map(|i| format!("{{\"loss\": {i}}}\n")).collect();
    remote(&s, url, a.path(), &["log", "base"], &rows);
    remote(&s, url, b.path(), &["fork", "child", "base?_step=99"], "");
    let tree = remote(&s, url, b.path(), &["runs", "--tree"], "");
    assert!(tree.contains("base@v0") && tree.contains("child@v0 (fork at step 99)"), "{tree}");
    let child = json_lines(&remote(&s, url, c.path(), &["history", "child"], ""));
    assert_eq!(child.len(), 100);
    assert_eq!(child[99]["loss"], serde_json::json!(99));
    let base = json_lines(&remote(&s, url, c.path(), &["history", "base"], ""));
    assert_eq!(base.len(), 300);
    // The cache is a store directory: verify works on it, and a remote URL without --cache is refused.
    remote(&s, url, c.path(), &["verify"], "");
    let out = assert_cmd::Command::new(cli_support::bin())
        .env_remove("FORKLOG_CACHE")
        .args(["--store", url, "runs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cache"));
}
