//! The writers a store handle has open, and the background syncer of their `EveryMillis` deadlines.
//!
//! Readers of this process use the registry to see a writer's buffered events ([`Registry::tail`]) and its
//! statistics without doing the writer's I/O. The syncer sleeps until the earliest deadline (or until a writer
//! starts a new one) and fsyncs outside the writer's lock ([`sync_unlocked`]): an application's `log` never
//! waits for an fsync it did not ask for.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::stats::Stats;
use crate::writer::{Tail, WriterCore};

/// A writer's shared state.
pub(crate) type Core = Arc<Mutex<WriterCore>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks a writer's state. A poisoned lock (a panic inside an earlier call left the state unknown, say a
/// frame written but its length not recorded) poisons the writer: `Error::Poisoned`.
pub(crate) fn lock_core(core: &Mutex<WriterCore>) -> Result<MutexGuard<'_, WriterCore>> {
    match core.lock() {
        Ok(c) => Ok(c),
        Err(p) => {
            let mut c = p.into_inner();
            c.set_poisoned(|| "a panic inside the writer left its state unknown".into());
            c.check()?;
            Err(Error::Poisoned { run: c.id.clone(), cause: "a panic inside the writer".into() })
        }
    }
}

/// Syncs a writer with the fsync outside its lock: the buffer is written out under the lock, the segment is
/// fsynced without it (appends go on meanwhile), and what became durable is published under the lock again.
pub(crate) fn sync_unlocked(core: &Mutex<WriterCore>) -> Result<()> {
    let ticket = lock_core(core)?.begin_sync()?;
    if let Some(t) = ticket {
        let res = t.fsync();
        lock_core(core)?.end_sync(t, res)?;
    }
    Ok(())
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
    writers: Mutex<HashMap<String, Weak<Mutex<WriterCore>>>>,
    wake: Arc<Wake>,
    syncer: Mutex<bool>,
}

impl Registry {
    /// Registers the writer of run `id`.
    pub(crate) fn register(&self, id: &str, core: &Core) {
        lock(&self.writers).insert(id.to_string(), Arc::downgrade(core));
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
        let core = self.get(id)?;
        let c = core.lock().ok()?;
        c.tail()
    }

    /// The version, header nonce and statistics (buffered events included) of this process's live writer of `id`.
    pub(crate) fn live_stats(&self, id: &str) -> Option<(u32, u64, Stats)> {
        let core = self.get(id)?;
        let c = core.lock().ok()?;
        c.is_live().then_some((c.version, c.nonce, c.total))
    }

    /// Starts the syncer thread (once per store handle); false if it could not be started.
    pub(crate) fn ensure_syncer(self: &Arc<Self>) -> bool {
        let mut started = lock(&self.syncer);
        if *started {
            return true;
        }
        let me = self.clone();
        *started = std::thread::Builder::new().name("forklog-sync".into()).spawn(move || me.run_syncer()).is_ok();
        *started
    }

    /// Ends the syncer (the store handle is gone).
    pub(crate) fn stop(&self) {
        self.wake.stop();
    }

    fn run_syncer(&self) {
        loop {
            let cores: Vec<Core> = lock(&self.writers).values().filter_map(Weak::upgrade).collect();
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for core in cores {
                let due = match core.try_lock() {
                    Ok(c) => c.sync_deadline(),
                    // Busy appending: look again very soon.
                    Err(TryLockError::WouldBlock) => Some(now + Duration::from_millis(1)),
                    Err(TryLockError::Poisoned(_)) => None,
                };
                match due {
                    // A failure poisons the writer, which reports it on its next call.
                    Some(d) if d <= now => {
                        let _ = sync_unlocked(&core);
                    }
                    Some(d) => next = Some(next.map_or(d, |n: Instant| n.min(d))),
                    None => {}
                }
            }
            if !self.wake.sleep(next) {
                return;
            }
        }
    }
}
