//! Sharing: `Store` is `Send + Sync + Clone`; threads write different runs at once while others read them;
//! reads through the same `Store` see a writer's buffered rows (read-your-writes), and readers never block
//! on a writer.

use std::sync::Arc;
use std::thread;

use forklog::{metrics, ForkPoint, Store};

#[test]
fn store_and_writer_are_shareable() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send::<forklog::RunWriter>();
}

#[test]
fn threads_write_different_runs_while_others_read_and_fork() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = 3000u64;
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                let mut w = store.create_run(&format!("run{t}")).unwrap();
                for i in 0..n {
                    w.log(metrics! { "t" => t as i64, "i" => i as i64 }).unwrap();
                }
            })
        })
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for t in 0..4 {
                        if let Ok(h) = store.history(&format!("run{t}")) {
                            let steps: Vec<u64> = h.map(|r| r.unwrap().step).collect();
                            assert!(steps.iter().enumerate().all(|(i, s)| *s == i as u64), "a prefix, in order");
                            reads += 1;
                        }
                    }
                }
                reads
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    for t in 0..4 {
        assert_eq!(store.history(&format!("run{t}")).unwrap().count() as u64, n);
        drop(store.fork(&format!("f{t}"), &ForkPoint::new(format!("run{t}"), n / 2)).unwrap());
        assert_eq!(store.info(&format!("f{t}")).unwrap().rows, n / 2 + 1);
    }
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn reads_through_the_same_store_see_buffered_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.create_run("live").unwrap();
    w.log(metrics! { "a" => 1 }).unwrap();
    assert_eq!(store.history("live").unwrap().count(), 1);
    assert_eq!(store.info("live").unwrap().rows, 1);
    // Another Store handle on the same directory (as another process would) sees rows once flushed.
    let other = Store::open(dir.path()).unwrap();
    w.log(metrics! { "a" => 2 }).unwrap();
    w.flush().unwrap();
    assert_eq!(other.history("live").unwrap().count(), 2);
}
