//! Real processes, real files, real SIGKILLs: a child process writing a run with `SyncPolicy::Always`
//! prints each step once the call that wrote it has returned; the parent kills it with SIGKILL at random
//! moments (mid-frame, mid-fsync, mid-segment-roll, mid-key-table write), over and over, each new child
//! resuming the same run. After every kill, every acknowledged step is in the history with its exact
//! values, the history is a clean prefix of what the children attempted, `verify()` is clean, and once
//! the next writer has recovered the run, `verify()` is still clean and the history unchanged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use forklog::{Error, Key, Metrics, Options, Store, SyncPolicy, Value};

/// Set (to the store directory) in the environment of the child process.
const CHILD_ENV: &str = "FORKLOG_PROCESS_KILL_CHILD";

/// The values of step `s`: deterministic, so the parent can check them exactly. Every seventh step
/// brings a new key (a key-table write and fsync), and padding makes segments roll often.
fn values(s: u64) -> Metrics {
    let mut m = Metrics::new();
    m.insert(Key::from("loss"), Value::Float(1.0 / (s as f64 + 2.0)));
    m.insert(Key::from("step"), Value::Int(s as i64));
    m.insert(Key::from("pad"), Value::Str("x".repeat((s % 97) as usize)));
    if s % 7 == 3 {
        m.insert(Key::from(format!("key{s}")), Value::Bool(s.is_multiple_of(2)));
    }
    m
}

fn options() -> Options {
    Options::default().sync(SyncPolicy::Always).segment_size(8 << 10)
}

/// The child: resumes (or creates) run `r` and logs until killed, acknowledging each durable step.
fn child(dir: &Path) {
    let store = Store::open_with(dir, options()).expect("child: open");
    let mut w = match store.resume("r") {
        Ok(w) => w,
        Err(Error::RunNotFound { .. }) => store.create_run("r").expect("child: create"),
        Err(e) => panic!("child: resume: {e}"),
    };
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    // A bound, in case the parent dies without killing us.
    while started.elapsed() < Duration::from_secs(30) {
        let s = w.next_step();
        let acked: Vec<u64> = match s % 5 {
            0 => {
                let rows = (s..s + 3).map(|t| (Some(t), values(t)));
                w.log_batch(rows).expect("child: log_batch");
                (s..s + 3).collect()
            }
            3 => {
                w.set_config(forklog::metrics! { "at" => s as i64 }).expect("child: config");
                w.log_at(s, values(s)).expect("child: log_at");
                vec![s]
            }
            _ => {
                assert_eq!(w.log(values(s)).expect("child: log"), s);
                vec![s]
            }
        };
        for a in acked {
            writeln!(out, "ack {a}").expect("child: stdout");
        }
        out.flush().expect("child: flush stdout");
    }
}

/// Runs as the child when the parent re-executes this test binary; a no-op in a normal test run.
#[test]
fn child_process_entry() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Checks the store after a kill; returns the number of rows.
fn check(dir: &Path, acked: &BTreeMap<u64, ()>, ctx: &str) -> usize {
    let store = Store::open_with(dir, options()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
    let rows: Vec<(u64, Metrics)> = match store.history("r") {
        Ok(h) => h
            .map(|r| r.map(|r| (r.step, r.metrics)))
            .collect::<forklog::Result<_>>()
            .unwrap_or_else(|e| panic!("{ctx}: {e}")),
        Err(Error::RunNotFound { .. }) if acked.is_empty() => return 0,
        Err(e) => panic!("{ctx}: history: {e}"),
    };
    for (i, (step, m)) in rows.iter().enumerate() {
        assert_eq!(*step, i as u64, "{ctx}: steps are 0, 1, 2, ... with no gap");
        assert_eq!(m, &values(*step), "{ctx}: values of step {step}");
    }
    if let Some((&last, _)) = acked.last_key_value() {
        assert!(rows.len() as u64 > last, "{ctx}: acknowledged step {last} lost ({} rows survived)", rows.len());
    }
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.is_clean(), "{ctx}: verify before recovery: {:#?}", report.problems);
    let w = store.resume("r").unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
    drop(w);
    let after = store.history("r").map(|h| h.count()).unwrap_or_else(|e| panic!("{ctx}: history: {e}"));
    assert_eq!(after, rows.len(), "{ctx}: recovery changed the history");
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.is_clean(), "{ctx}: verify after recovery: {:#?}", report.problems);
    assert!(report.problems.is_empty(), "{ctx}: recovery left a torn tail: {:#?}", report.problems);
    rows.len()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let seed = std::env::var("FORKLOG_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xC0FFEE);
    let mut rng = Rng(seed);
    let mut acked: BTreeMap<u64, ()> = BTreeMap::new();
    let rounds = 30;
    let mut rows = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["child_process_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(step) = line.strip_prefix("ack ").and_then(|s| s.trim().parse::<u64>().ok()) {
                    if tx.send(step).is_err() {
                        return;
                    }
                }
            }
        });
        // Kill after a random number of acknowledgements, plus a random delay: anywhere in a write.
        let want = 1 + rng.below(150);
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got < want && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(step) => {
                    acked.insert(step, ());
                    got += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("round {round}: child exited early: {status}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "round {round}: the child was not killed: {status}");
        // Acknowledgements already in the pipe were printed before the kill: they count.
        reader.join().expect("reader");
        acked.extend(rx.try_iter().map(|s| (s, ())));
        assert!(got > 0 || round > 0, "round {round}: the child never acknowledged anything");
        let ctx = format!("seed {seed} round {round} (killed after {got} acks, {} acked in all)", acked.len());
        let now = check(dir.path(), &acked, &ctx);
        assert!(now >= rows, "{ctx}: rows went from {rows} to {now}");
        rows = now;
    }
    let segments = std::fs::read_dir(dir.path().join("runs").join("r"))
        .expect("run dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg")))
        .count();
    eprintln!("{rounds} kills, {rows} rows, {segments} segments, in {:?}", started.elapsed());
    assert!(segments > 1, "segments rolled");
}
