//! Helpers and scenarios shared by the in-memory and the S3 tests.

use std::sync::Barrier;
use std::time::Duration;

use forklog::{Error, Store};
use forklog_remote::Remote;
use tempfile::TempDir;

/// One machine: its cache directory, its store and its remote handle.
pub struct Machine {
    pub _dir: TempDir,
    pub store: Store,
    pub remote: Remote,
}

/// The steps of run `id`'s history, in order.
pub fn steps(store: &Store, id: &str) -> Vec<u64> {
    store.history(id).unwrap().map(|r| r.unwrap().step).collect()
}

/// A writes run `live` (4 KiB segments) while B reads it: B sees a growing prefix of sealed segments (polled
/// every `every`, for at most `wait`), B's writer is refused while A writes, and after A's `sync`, then its
/// `finish`, B sees every row, in the same store handle.
pub fn reader_while_writing(a: &Machine, b: &Machine, wait: Duration, every: Duration) {
    let mut w = a.store.create_run("live").unwrap();
    for i in 0..1500 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    let seen = wait_for(wait, every, || steps(&b.store, "live"), |s| !s.is_empty());
    assert!(!seen.is_empty() && seen.len() < 1500, "B saw {} rows", seen.len());
    assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
    let busy = b.store.resume("live").map(|_| ());
    assert!(matches!(busy, Err(Error::RunBusy { .. })), "{busy:?}");
    w.flush().unwrap();
    a.remote.sync().unwrap();
    assert_eq!(steps(&b.store, "live").len(), 1500);
    for i in 1500..1600 {
        w.log_floats(&[("loss", i as f64)]).unwrap();
    }
    w.finish(0).unwrap();
    assert_eq!(steps(&b.store, "live"), (0..1600).collect::<Vec<_>>());
    assert_eq!(b.store.summary("live").unwrap().len(), a.store.summary("live").unwrap().len());
    assert!(b.remote.stats().downloads > 0);
}

/// Runs `op` on every one of `inputs` on its own thread, all released at once, and returns the results in
/// the inputs' order: a race between "machines".
pub fn race<I: Send, T: Send>(inputs: Vec<I>, op: impl Fn(I) -> T + Sync) -> Vec<T> {
    let gate = Barrier::new(inputs.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|input| {
                let (gate, op) = (&gate, &op);
                s.spawn(move || {
                    gate.wait();
                    op(input)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a racing thread panicked")).collect()
    })
}

/// Calls `read` every `every` until `done` holds for what it returned or `timeout` has passed; returns the
/// last value read.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    every: std::time::Duration,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let got = read();
        if done(&got) || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(every);
    }
}
