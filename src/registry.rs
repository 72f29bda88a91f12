//! The writers a store handle has open, and the background syncer of their `EveryMillis` deadlines.
//!
//! Readers of this process use the registry to see a writer's buffered events ([`Registry::tail`]) and its
//! statistics without doing the writer's I/O. The syncer sleeps until the earliest deadline (or until a writer
//! starts a new one) and fsyncs outside the writer's lock ([`sync_unlocked`]): an application's `log` never
//! waits for an fsync it did not ask for.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::catalog::SegKey;
use crate::error::Result;
use crate::replay::Tail;
use crate::stats::Stats;

/// What the registry, its syncer and the store's read paths need of a live writer. The writer's shared state
/// (`Mutex<WriterCore>`, src/writer.rs) implements it, so the registry sits below the writer in the module graph.
pub(crate) trait LiveWriter: Send + Sync {
    /// When the syncer must sync this writer (`None`: nothing is due, or the writer is poisoned). A writer busy
    /// appending asks to be looked at again soon (`now` + 1 ms) rather than being waited for.
    fn sync_deadline(&self, now: Instant) -> Option<Instant>;
    /// Makes what the writer appended durable, with the fsync outside its lock.
    fn sync(&self) -> Result<()>;
    /// Syncs the writer if it is live and writing segment `key` (its pending index entries are written too).
    /// False when it is not.
    fn sync_if_writing(&self, key: &SegKey) -> Result<bool>;
    /// Writes out the writer's buffer (a fork needs the bytes it points at written). True if it wrote.
    fn flush(&self) -> Result<bool>;
    /// A copy of the writer's buffered events (no I/O).
    fn tail(&self) -> Option<Tail>;
    /// The version, header nonce and statistics (buffered events included) of a live writer.
    fn live_stats(&self) -> Option<(u32, u64, Stats)>;
}

/// A registered writer.
pub(crate) type Core = Arc<dyn LiveWriter>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wakes the syncer.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    state: Mutex<WakeState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct WakeState {
    /// A writer started a new deadline since the syncer last looked.
    kicked: bool,
    /// The store handle is gone: the syncer ends.
    stop: bool,
}

impl Wake {
    /// Tells the syncer a writer has a new deadline.
    pub(crate) fn kick(&self) {
        lock(&self.state).kicked = true;
        self.cv.notify_one();
    }

    fn stop(&self) {
        lock(&self.state).stop = true;
        self.cv.notify_one();
    }

    /// Sleeps until `until` (forever with `None`) or a kick; false when the syncer must end.
    fn sleep(&self, until: Option<Instant>) -> bool {
        let mut s = lock(&self.state);
        if !s.kicked && !s.stop {
            s = match until {
                Some(t) => {
                    let d = t.saturating_duration_since(Instant::now());
                    self.cv.wait_timeout(s, d).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0)
                }
                None => self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
            };
        }
        s.kicked = false;
        !s.stop
    }
}

/// The writers of one store handle, by run id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    writers: Mutex<HashMap<String, Weak<dyn LiveWriter>>>,
    wake: Arc<Wake>,
    syncer: Mutex<bool>,
}

impl Registry {
    /// Registers the writer of run `id`.
    pub(crate) fn register<W: LiveWriter + 'static>(&self, id: &str, core: &Arc<W>) {
        let weak: Weak<W> = Arc::downgrade(core);
        let weak: Weak<dyn LiveWriter> = weak;
        lock(&self.writers).insert(id.to_string(), weak);
    }

    /// Forgets the writer of `id` once it is gone.
    pub(crate) fn unregister(&self, id: &str) {
        let mut w = lock(&self.writers);
        if w.get(id).is_some_and(|c| c.strong_count() == 0) {
            w.remove(id);
        }
    }

    /// The writer of run `id`, if one is open.
    pub(crate) fn get(&self, id: &str) -> Option<Core> {
        lock(&self.writers).get(id).and_then(Weak::upgrade)
    }

    /// What a writer wakes the syncer with.
    pub(crate) fn wake(&self) -> Arc<Wake> {
        self.wake.clone()
    }

    /// A snapshot of the buffered events of this process's writer of `id` (a copy of its buffer: no I/O).
    pub(crate) fn tail(&self, id: &str) -> Option<Tail> {
        self.get(id)?.tail()
    }

    /// The version, header nonce and statistics (buffered events included) of this process's live writer of `id`.
    pub(crate) fn live_stats(&self, id: &str) -> Option<(u32, u64, Stats)> {
        self.get(id)?.live_stats()
    }

    /// Starts the syncer thread (once per registry); false if it could not be started. The syncer holds the
    /// registry weakly: it ends when the registry is gone (the store handle and every writer it opened).
    pub(crate) fn ensure_syncer(self: &Arc<Self>) -> bool {
        let mut started = lock(&self.syncer);
        if *started {
            return true;
        }
        let (me, wake) = (Arc::downgrade(self), self.wake.clone());
        let spawned = std::thread::Builder::new().name("forklog-sync".into()).spawn(move || run_syncer(&me, &wake));
        *started = spawned.is_ok();
        *started
    }
}

impl Drop for Registry {
    /// Ends the syncer: no writer of this registry is left.
    fn drop(&mut self) {
        self.wake.stop();
    }
}

/// The background syncer: syncs every writer whose deadline passed, then sleeps until the next deadline (or a kick).
fn run_syncer(registry: &Weak<Registry>, wake: &Wake) {
    loop {
        let Some(me) = registry.upgrade() else { return };
        let cores: Vec<Core> = lock(&me.writers).values().filter_map(Weak::upgrade).collect();
        drop(me);
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for core in cores {
            match core.sync_deadline(now) {
                // A failure poisons the writer, which reports it on its next call.
                Some(d) if d <= now => {
                    let _ = core.sync();
                }
                Some(d) => next = Some(next.map_or(d, |n: Instant| n.min(d))),
                None => {}
            }
        }
        if !wake.sleep(next) {
            return;
        }
    }
}
