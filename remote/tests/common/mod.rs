//! Helpers shared by the in-memory and the S3 tests.

use std::sync::Barrier;

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
