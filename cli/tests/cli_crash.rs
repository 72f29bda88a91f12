//! What `forklog log` promises across processes: with `--sync always --ack`, every acknowledged row
//! survives a SIGKILL at any moment and `verify` stays clean afterwards (repeated kills at random
//! times, resuming the same run each time); a run another process is writing cannot be written,
//! rewound or deleted (exit 2, store unchanged) but can be read; and `--ack` keeps acknowledging
//! while stdin is idle under `--sync interval`.

mod cli_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cli_support::*;

/// Spawns `forklog --store <store> <args>` with piped stdin, stdout and stderr.
fn spawn(store: &Path, args: &[&str]) -> Child {
    Command::new(bin())
        .env_remove("FORKLOG_STORE")
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forklog")
}

/// Reads acknowledgement lines on a thread and forwards each step.
fn ack_reader(stdout: ChildStdout) -> (mpsc::Receiver<u64>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let step = line.trim().parse::<u64>().unwrap_or_else(|_| panic!("bad ack line {line:?}"));
            if tx.send(step).is_err() {
                return;
            }
        }
    });
    (rx, handle)
}

/// Writes one line and flushes it.
fn send(stdin: &mut ChildStdin, line: &str) {
    stdin.write_all(line.as_bytes()).expect("write stdin");
    stdin.write_all(b"\n").expect("write stdin");
    stdin.flush().expect("flush stdin");
}

#[test]
fn acknowledged_rows_survive_sigkill_at_random_moments() {
    let seed = std::env::var("FORKLOG_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64 | 1);
    eprintln!("crash test seed: {seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("store");
    let mut total_acked = 0;
    for round in 0..15u64 {
        let mut child = spawn(&s, &["log", "crash", "--sync", "always", "--ack"]);
        let mut stdin = child.stdin.take().expect("stdin");
        let (acks, reader) = ack_reader(child.stdout.take().expect("stdout"));
        // Feed rows until the pipe breaks; row k of this round carries round and k.
        let feeder = thread::spawn(move || {
            for k in 0u64.. {
                let line = format!("{{\"round\": {round}, \"k\": {k}, \"v\": {}}}\n", k as f64 / 7.0);
                if stdin.write_all(line.as_bytes()).is_err() || stdin.flush().is_err() {
                    return;
                }
                if k % 64 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        });
        // Kill at a random moment; the first rounds aim at start-up (store and run creation).
        let delay = if round < 3 { rng.next() % 8 } else { rng.next() % 120 };
        thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), None, "round {round}: the child must die from the signal");
        feeder.join().expect("feeder");
        reader.join().expect("ack reader");
        let acked: Vec<u64> = acks.try_iter().collect();
        total_acked += acked.len();
        eprintln!("round {round}: killed after {delay} ms, {} rows acknowledged", acked.len());

        // Killed before the store or the run existed: nothing can have been acknowledged. (A store whose
        // creation was cut short, before its store file, is no store yet: read commands refuse it.)
        if !s.join("forklog.store").exists() || !runs(&s, true).contains_key("crash@v0") {
            assert!(acked.is_empty(), "seed {seed} round {round}: acks without a run");
            continue;
        }
        // Every acknowledged step is present, with the metrics of the row it acknowledged.
        let rows = history(&s, "crash", &[]);
        for (k, step) in acked.iter().enumerate() {
            let row = rows
                .iter()
                .find(|r| r["_step"] == *step)
                .unwrap_or_else(|| panic!("seed {seed} round {round}: acked step {step} (row {k}) lost"));
            assert_eq!(row["round"], round, "seed {seed} round {round} step {step}");
            assert_eq!(row["k"], k as u64, "seed {seed} round {round} step {step}");
            assert_eq!(row["v"], k as f64 / 7.0);
        }
        let steps: Vec<u64> = rows.iter().map(|r| r["_step"].as_u64().expect("step")).collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "seed {seed}: steps not increasing");
        let out = run(&s, &["verify"], "");
        assert_eq!(
            out.status.code(),
            Some(0),
            "seed {seed} round {round}: verify after kill: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(total_acked > 0, "seed {seed}: no row was ever acknowledged");
    // After all the kills the run is still writable and the log ends cleanly.
    let before = steps(&s, "crash", &[]).len();
    log(&s, "crash", "{\"round\": 99}\n");
    assert_eq!(steps(&s, "crash", &[]).len(), before + 1);
    assert_eq!(runs(&s, false)["crash@v0"]["state"], "finished");
}

#[test]
fn a_killed_log_leaves_a_crashed_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("store");
    let mut child = spawn(&s, &["log", "k", "--sync", "always", "--ack"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let (acks, _reader) = ack_reader(child.stdout.take().expect("stdout"));
    send(&mut stdin, "{\"a\": 1}");
    assert_eq!(acks.recv_timeout(Duration::from_secs(20)), Ok(0));
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert_eq!(runs(&s, false)["k@v0"]["state"], "crashed");
    assert_eq!(steps(&s, "k", &[]), [0]);
}

#[test]
fn a_run_another_process_is_writing_is_busy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("store");
    log_steps(&s, "busy", 0..3);
    let mut holder = spawn(&s, &["log", "busy", "--sync", "always", "--ack"]);
    let mut stdin = holder.stdin.take().expect("stdin");
    let (acks, _reader) = ack_reader(holder.stdout.take().expect("stdout"));
    send(&mut stdin, "{\"x\": 30}");
    assert_eq!(acks.recv_timeout(Duration::from_secs(20)), Ok(3), "the holder acknowledges its row");

    let before = snapshot(&s);
    for args in [
        &["log", "busy"][..],
        &["log", "busy", "--resume-from", "busy?_step=1"],
        &["rewind", "busy?_step=1"],
        &["delete", "busy"],
        &["import", "busy", "/dev/null"],
    ] {
        let err = fails(&s, args, "{\"x\": -1}\n");
        assert_eq!(err, "error: run busy is busy: another writer has it open; close that writer first", "{args:?}");
    }
    assert_same(&before, &snapshot(&s), "refused writes to a busy run");
    // Readers are not blocked, and see the holder's durable row.
    assert_eq!(steps(&s, "busy", &[]), [0, 1, 2, 3]);
    assert_eq!(runs(&s, false)["busy@v0"]["state"], "running");
    // Forking a busy run is a read of its history: allowed.
    ok(&s, &["fork", "child", "busy?_step=3"], "");
    assert_eq!(steps(&s, "child", &[]), [0, 1, 2, 3]);

    send(&mut stdin, "{\"x\": 40}");
    drop(stdin);
    let out = holder.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(acks.recv_timeout(Duration::from_secs(20)), Ok(4));
    let xs: Vec<i64> = history(&s, "busy", &[]).iter().map(|r| r["x"].as_i64().expect("x")).collect();
    assert_eq!(xs, [0, 10, 20, 30, 40]);
    assert_eq!(runs(&s, false)["busy@v0"]["state"], "finished");
}

#[test]
fn acks_flow_while_stdin_is_idle_under_interval_sync() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("store");
    let mut child = spawn(&s, &["log", "idle", "--sync", "interval", "--ack"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let (acks, _reader) = ack_reader(child.stdout.take().expect("stdout"));
    for expect in 0..3u64 {
        let sent = Instant::now();
        send(&mut stdin, &format!("{{\"i\": {expect}}}"));
        assert_eq!(acks.recv_timeout(Duration::from_secs(10)), Ok(expect));
        assert!(sent.elapsed() < Duration::from_secs(5));
        // Visible to readers while the writer is still running.
        assert_eq!(steps(&s, "idle", &[]).len() as u64, expect + 1);
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    assert!(acks.try_recv().is_err(), "no ack twice");
}
