//! [`RunWriter`]: the one writer of a run. It validates steps, buffers encoded events into a frame, writes
//! frames to the active segment (rolling and sealing segments as they fill), maintains the step index and
//! the key table, and makes data durable according to its [`SyncPolicy`].
//!
//! Life of a write: `log` checks the step and encodes the row into the buffer (nothing is written if the
//! check fails); when the buffer is full, or the policy asks, the buffer becomes one frame written with one
//! `pwrite`; under `Always` (or at the policy's interval) the segment is fsynced. New key names are written
//! and fsynced to the key table before the first frame that uses them. An I/O error poisons the writer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crate::active::ActiveSeg;
use crate::catalog::{Catalog, SegKey, VersionView};
use crate::codec::{encode_dense_columns, encode_dense_row, encode_event, encode_prefix, EncEvent};
use crate::error::{Error, Result};
use crate::format::{self, now_micros, secs_to_micros, FRAME_HEADER_LEN, INDEX_INTERVAL, MAX_FRAME_LEN};
use crate::index::{encode_index_header, IndexEntry};
use crate::keys::{encode_key_record, encode_keys_header};
use crate::meta::MetaPatch;
use crate::options::{Options, SyncPolicy};
use crate::recovery::{recover_active, recover_keys, table_order};
use crate::registry::{LiveWriter, Registry};
use crate::replay::Tail;
use crate::report::{Cut, RecoveryReport};
use crate::segment::{frame_header, SegmentHeader};
use crate::stats::Stats;
use crate::value::{Key, Metrics, Value};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// What a sync started under the writer's lock fsyncs without it (see [`WriterCore::begin_sync`]).
pub(crate) struct SyncTicket {
    file: Arc<dyn VfsFile>,
    seq: u32,
    len: u64,
    last_log: Option<u64>,
}

impl SyncTicket {
    /// The fsync itself.
    pub(crate) fn fsync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
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
    // New key records first, fsynced without the lock too: the frame naming them is written after.
    let keys = lock_core(core)?.begin_keys_sync()?;
    if let Some(t) = keys {
        let res = t.fsync();
        lock_core(core)?.end_keys_sync(t, res)?;
    }
    let ticket = lock_core(core)?.begin_sync()?;
    if let Some(t) = ticket {
        let res = t.fsync();
        lock_core(core)?.end_sync(t, res)?;
    }
    Ok(())
}

impl std::fmt::Debug for WriterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterCore").field("id", &self.id).field("version", &self.version).finish()
    }
}

/// The registry's view of a writer (src/registry.rs): its syncer and this process's readers use it.
impl LiveWriter for Mutex<WriterCore> {
    fn sync_deadline(&self, now: Instant) -> Option<Instant> {
        match self.try_lock() {
            Ok(c) => c.sync_deadline(),
            // Busy appending: look again very soon.
            Err(TryLockError::WouldBlock) => Some(now + Duration::from_millis(1)),
            Err(TryLockError::Poisoned(_)) => None,
        }
    }

    fn sync(&self) -> Result<()> {
        sync_unlocked(self)
    }

    fn sync_if_writing(&self, key: &SegKey) -> Result<bool> {
        {
            // A poisoned lock (a panic inside the writer) poisons the writer: it is not used.
            let Ok(c) = self.lock() else { return Ok(false) };
            let same = c.version == key.1 && c.nonce == key.2 && c.seg.as_ref().is_some_and(|s| s.seq == key.3);
            if !same || !c.is_live() {
                return Ok(false);
            }
        }
        sync_unlocked(self)?;
        Ok(true)
    }

    fn flush(&self) -> Result<bool> {
        let Ok(mut c) = self.lock() else { return Ok(false) };
        if c.is_live() && c.has_pending() {
            c.flush_frame()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn tail(&self) -> Option<Tail> {
        self.lock().ok()?.tail()
    }

    fn live_stats(&self) -> Option<(u32, u64, Stats)> {
        let c = self.lock().ok()?;
        c.is_live().then_some((c.version, c.nonce, c.total))
    }
}

/// Mutable state of a writer, shared with the store's background syncer.
pub(crate) struct WriterCore {
    id: String,
    version: u32,
    dir: PathBuf,
    nonce: u64,
    vfs: Arc<dyn Vfs>,
    /// The store's catalog: the writer tells it how much of the active segment is valid and durable.
    cat: Arc<Catalog>,
    lock: Option<Box<dyn VfsFile>>,
    /// The exclusive lock on the version's header that tells readers the run is running.
    running: Option<Box<dyn VfsFile>>,
    keys: HashMap<Key, u32>,
    /// Key names by id (the inverse of `keys`), shared with readers' snapshots.
    key_list: Arc<Vec<Key>>,
    /// The previous row's keys and ids, by position (a cache in front of `keys`).
    last_row_keys: Vec<(Key, u32)>,
    keys_file: Option<Arc<dyn VfsFile>>,
    keys_len: u64,
    /// How much of the key table is known durable: frames naming a key are written only once its record is.
    keys_synced: u64,
    pending_keys: Vec<u8>,
    seg: Option<ActiveSeg>,
    next_seq: u32,
    segment_size: u64,
    buffer_size: usize,
    buf: Vec<u8>,
    buf_count: u32,
    buf_base: (u64, i64),
    buf_prev: (u64, i64),
    buf_stats: Stats,
    /// Key ids of the buffer's most recent keyed `Log` event: rows with exactly these keys, all floats, are
    /// encoded as dense rows (docs/FORMAT.md, tag 5).
    buf_template: Vec<u32>,
    /// Scratch for a float row's key ids.
    scratch_ids: Vec<u32>,
    /// The buffer holds an event kind of format version 2 (a `Meta` event).
    buf_needs_v2: bool,
    /// `Meta` events in this version's own data, written or buffered (`None`: unknown, e.g. a resumed version
    /// whose last writer did not close cleanly). Recorded in the close record.
    own_meta: Option<u64>,
    frame: Vec<u8>,
    policy: SyncPolicy,
    last_sync: Instant,
    /// When the oldest event not yet covered by a sync was appended (the `EveryMillis` deadline runs from it).
    dirty_since: Option<Instant>,
    /// Wakes the store's syncer when `dirty_since` is set (`None`: no syncer, `EveryMillis` syncs inline).
    wake: Option<Arc<crate::registry::Wake>>,
    /// Own events written to segments (not the buffer).
    own: Stats,
    /// Everything visible: inherited, written and buffered.
    total: Stats,
    /// The fork or rewind step of this version (steps must exceed it).
    floor: Option<u64>,
    written_last_log: Option<u64>,
    durable_last_log: Option<u64>,
    unsynced: bool,
    /// Why the writer refuses every call: the first failure (an I/O error, a panic, an internal check).
    poisoned: Option<String>,
    closed: bool,
}

/// The most encoded event bytes one frame holds (the frame limit less room for the header and payload prefix).
const MAX_FRAME_EVENTS: usize = MAX_FRAME_LEN as usize - 64;

/// The writer's in-memory state before an append, restored if the append fails: a failed call leaves no
/// buffered event, no new key id and no pending key-table record behind.
struct Mark {
    buf_len: usize,
    buf_count: u32,
    buf_base: (u64, i64),
    buf_prev: (u64, i64),
    buf_stats: Stats,
    buf_template: Vec<u32>,
    total: Stats,
    keys: usize,
    pending_keys: usize,
}

/// Room kept in front of the buffered events for the frame header and the payload prefix (at most 5 + 9 + 9 + 9
/// bytes of varints), so a frame is written from the buffer without copying it.
const FRAME_GAP: usize = FRAME_HEADER_LEN + 32;

/// Scratch for resolving a row's keys to ids.
type KeyedRow<'a> = Vec<(u32, &'a Value)>;

impl WriterCore {
    /// A writer core positioned after recovery.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        version: u32,
        dir: PathBuf,
        nonce: u64,
        cat: Arc<Catalog>,
        lock: Box<dyn VfsFile>,
        policy: SyncPolicy,
        segment_size: u64,
        buffer_size: usize,
    ) -> WriterCore {
        WriterCore {
            id,
            version,
            dir,
            nonce,
            vfs: cat.vfs.clone(),
            cat,
            lock: Some(lock),
            running: None,
            keys: HashMap::new(),
            key_list: Arc::new(Vec::new()),
            last_row_keys: Vec::new(),
            keys_file: None,
            keys_len: 0,
            keys_synced: 0,
            pending_keys: Vec::new(),
            seg: None,
            next_seq: 0,
            segment_size,
            buffer_size,
            buf: Vec::with_capacity(buffer_size.min(1 << 20) + 256),
            buf_count: 0,
            buf_base: (0, 0),
            buf_prev: (0, 0),
            buf_stats: Stats::default(),
            buf_template: Vec::new(),
            scratch_ids: Vec::new(),
            buf_needs_v2: false,
            own_meta: None,
            frame: Vec::new(),
            policy,
            last_sync: Instant::now(),
            dirty_since: None,
            wake: None,
            own: Stats::default(),
            total: Stats::default(),
            floor: None,
            written_last_log: None,
            durable_last_log: None,
            unsynced: false,
            poisoned: None,
            closed: false,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            buf_len: self.buf.len(),
            buf_count: self.buf_count,
            buf_base: self.buf_base,
            buf_prev: self.buf_prev,
            buf_stats: self.buf_stats,
            buf_template: self.buf_template.clone(),
            total: self.total,
            keys: self.keys.len(),
            pending_keys: self.pending_keys.len(),
        }
    }

    fn rollback(&mut self, m: Mark) {
        self.buf.truncate(m.buf_len);
        self.buf_count = m.buf_count;
        self.buf_base = m.buf_base;
        self.buf_prev = m.buf_prev;
        self.buf_stats = m.buf_stats;
        self.buf_template = m.buf_template;
        self.total = m.total;
        if self.keys.len() > m.keys {
            let n = m.keys as u32;
            self.keys.retain(|_, id| *id < n);
            Arc::make_mut(&mut self.key_list).truncate(m.keys);
            // The row-key cache may name the ids just dropped.
            self.last_row_keys.clear();
        }
        self.pending_keys.truncate(m.pending_keys);
    }

    /// Encodes one call's events into the buffer with `encode`, all or nothing: on any error the buffer, the
    /// key ids and the statistics are as before the call. The call's events always end up in one frame (with
    /// events buffered before them, or after writing those out when together they would be too large), so a
    /// crash keeps all of them or none. `TooLarge` when they do not fit in a frame on their own.
    fn encode_whole(&mut self, mut encode: impl FnMut(&mut WriterCore) -> Result<()>) -> Result<()> {
        let mark = self.mark();
        let had = mark.buf_count > 0;
        let res = encode(self);
        let size = self.buf.len().saturating_sub(FRAME_GAP);
        if res.is_ok() && size <= MAX_FRAME_EVENTS {
            return Ok(());
        }
        self.rollback(mark);
        res?;
        if had {
            // Together with the events buffered before them they overflow a frame: write those out first.
            self.flush_frame()?;
            let mark = self.mark();
            let res = encode(self);
            let size = self.buf.len().saturating_sub(FRAME_GAP);
            if res.is_ok() && size <= MAX_FRAME_EVENTS {
                return Ok(());
            }
            self.rollback(mark);
            res?;
        }
        Err(Error::TooLarge { what: "batch", size: size as u64, limit: MAX_FRAME_EVENTS as u64 })
    }

    /// Tells the catalog that the active segment is valid up to its length (the writer wrote every frame of
    /// it, or recovery checked them), and durable up to what was synced.
    fn note_known(&self) {
        if let Some(seg) = &self.seg {
            let key = (self.id.clone(), self.version, self.nonce, seg.seq);
            self.cat.known.note(&key, seg.len, seg.synced);
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if let Some(cause) = &self.poisoned {
            return Err(Error::Poisoned { run: self.id.clone(), cause: cause.clone() });
        }
        if self.closed {
            return Err(Error::Poisoned { run: self.id.clone(), cause: "the writer is closed".into() });
        }
        Ok(())
    }

    /// True while the writer accepts calls (not poisoned, not closed).
    pub(crate) fn is_live(&self) -> bool {
        self.poisoned.is_none() && !self.closed
    }

    /// Poisons the writer with `cause` (the first cause is kept).
    pub(crate) fn set_poisoned(&mut self, cause: impl FnOnce() -> String) {
        if self.poisoned.is_none() {
            self.poisoned = Some(cause());
        }
    }

    /// Poisons the writer because an internal check failed, and returns the error.
    fn broken<T>(&mut self, what: &str) -> Result<T> {
        self.set_poisoned(|| format!("internal error: {what}"));
        self.check()?;
        unreachable_err(&self.id)
    }

    /// The step `Log` steps must exceed: the last visible `Log` step or the fork/rewind step.
    pub(crate) fn last(&self) -> Option<u64> {
        match (self.total.last_log, self.floor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when events are buffered but not yet written.
    pub(crate) fn has_pending(&self) -> bool {
        self.buf_count > 0
    }

    /// The step non-`Log` events are positioned at.
    fn current_step(&self) -> u64 {
        self.last().unwrap_or(0)
    }

    fn key_ids<'a>(&mut self, m: &'a Metrics) -> Result<KeyedRow<'a>> {
        let mut out = Vec::with_capacity(m.len());
        for (i, (k, v)) in m.iter().enumerate() {
            // Rows usually repeat the previous row's keys: compare with it before hashing.
            if let Some((ck, id)) = self.last_row_keys.get(i) {
                if Arc::ptr_eq(ck, k) || **ck == **k {
                    out.push((*id, v));
                    continue;
                }
            }
            let id = match self.keys.get(k) {
                Some(id) => *id,
                None => {
                    if k.len() > format::MAX_KEY_LEN as usize {
                        self.last_row_keys.clear();
                        return Err(Error::TooLarge {
                            what: "metric key",
                            size: k.len() as u64,
                            limit: format::MAX_KEY_LEN.into(),
                        });
                    }
                    let id = self.keys.len() as u32;
                    encode_key_record(&mut self.pending_keys, self.nonce, id, k);
                    self.keys.insert(k.clone(), id);
                    Arc::make_mut(&mut self.key_list).push(k.clone());
                    id
                }
            };
            out.push((id, v));
            if i < self.last_row_keys.len() {
                self.last_row_keys[i] = (k.clone(), id);
            } else {
                self.last_row_keys.push((k.clone(), id));
            }
        }
        self.last_row_keys.truncate(out.len());
        Ok(out)
    }

    /// Resolves float-row keys (validated: sorted, unique, not too long) to ids, new keys getting ids and
    /// pending key-table records; the previous row's keys are tried first, by position.
    fn str_key_ids(&mut self, keys: impl Iterator<Item = impl AsRef<str>>, out: &mut Vec<u32>) {
        out.clear();
        for (i, k) in keys.enumerate() {
            let k = k.as_ref();
            if let Some((ck, id)) = self.last_row_keys.get(i) {
                if &**ck == k {
                    out.push(*id);
                    continue;
                }
            }
            let (key, id) = match self.keys.get_key_value(k) {
                Some((key, id)) => (key.clone(), *id),
                None => {
                    let id = self.keys.len() as u32;
                    let key = Key::from(k);
                    encode_key_record(&mut self.pending_keys, self.nonce, id, &key);
                    self.keys.insert(key.clone(), id);
                    Arc::make_mut(&mut self.key_list).push(key.clone());
                    (key, id)
                }
            };
            out.push(id);
            if i < self.last_row_keys.len() {
                self.last_row_keys[i] = (key, id);
            } else {
                self.last_row_keys.push((key, id));
            }
        }
        self.last_row_keys.truncate(out.len());
    }

    /// True when `keys` are the previous row's keys (so already checked: sorted and unique).
    fn same_keys_as_last_row<'k>(&self, keys: impl ExactSizeIterator<Item = &'k str>) -> bool {
        keys.len() == self.last_row_keys.len() && keys.zip(&self.last_row_keys).all(|(a, (b, _))| a == &**b)
    }

    /// Checks a row before anything of it is buffered: key lengths and the nesting depth of its values.
    fn check_values(&self, m: &Metrics) -> Result<()> {
        for (k, v) in m {
            if k.len() > format::MAX_KEY_LEN as usize {
                return Err(Error::TooLarge {
                    what: "metric key",
                    size: k.len() as u64,
                    limit: format::MAX_KEY_LEN.into(),
                });
            }
            if matches!(v, Value::List(_) | Value::Map(_)) && crate::codec::depth(v) > crate::codec::MAX_DEPTH {
                return Err(Error::Value {
                    reason: format!("value of {k:?} is nested deeper than {} levels", crate::codec::MAX_DEPTH),
                });
            }
        }
        Ok(())
    }

    /// Starts an event in the buffer: a new frame takes the event's step and time as its base.
    #[inline]
    fn begin_event(&mut self, step: u64, time_us: Option<i64>) {
        if self.buf_count == 0 {
            self.buf_base = (step, time_us.unwrap_or(0));
            self.buf_prev = self.buf_base;
            self.buf.clear();
            self.buf.resize(FRAME_GAP, 0);
            self.buf_template.clear();
        }
    }

    /// Counts an event just encoded into the buffer.
    #[inline]
    fn end_event(&mut self, step: u64, is_log: bool, is_finish: bool) {
        self.buf_count += 1;
        self.buf_stats.record(step, is_log, is_finish);
        self.total.record(step, is_log, is_finish);
    }

    /// Encodes one event into the buffer (the caller has validated it).
    fn push(&mut self, ev: &EncEvent<'_>) -> Result<()> {
        self.begin_event(ev.step(), ev.time_us());
        let before = self.buf.len();
        encode_event(&mut self.buf, ev, &mut self.buf_prev.0, &mut self.buf_prev.1);
        let size = self.buf.len() - before;
        if size as u64 > u64::from(MAX_FRAME_LEN) - 64 {
            self.buf.truncate(before);
            return Err(Error::TooLarge { what: "event", size: size as u64, limit: u64::from(MAX_FRAME_LEN) - 64 });
        }
        if let EncEvent::Log { metrics, .. } = ev {
            self.buf_template.clear();
            self.buf_template.extend(metrics.iter().map(|(k, _)| *k));
        }
        let (is_log, is_finish) = (matches!(ev, EncEvent::Log { .. }), matches!(ev, EncEvent::Finish { .. }));
        self.end_event(ev.step(), is_log, is_finish);
        Ok(())
    }

    /// True when a row with key ids `ids` can be a dense row of the current frame.
    #[inline]
    fn fits_template(&self, ids: impl ExactSizeIterator<Item = u32>) -> bool {
        self.buf_count > 0 && ids.len() == self.buf_template.len() && ids.zip(&self.buf_template).all(|(a, b)| a == *b)
    }

    /// Encodes a `Log` row: as a dense row when its keys are the frame's template and its values all floats.
    fn push_log(&mut self, step: u64, time_us: i64, ids: &[(u32, &Value)]) -> Result<()> {
        let floats = !ids.is_empty() && ids.iter().all(|(_, v)| matches!(v, Value::Float(_)));
        if floats && self.fits_template(ids.iter().map(|(k, _)| *k)) {
            let values = ids.iter().map(|(_, v)| if let Value::Float(x) = v { *x } else { 0.0 });
            encode_dense_row(&mut self.buf, step, time_us, values, &mut self.buf_prev);
            self.end_event(step, true, false);
            return Ok(());
        }
        self.push(&EncEvent::Log { step, time_us, metrics: ids })
    }

    /// Encodes a row of floats with key ids `ids` (in that order) and values `values(i)` for `i < ids.len()`.
    #[inline]
    fn push_floats(&mut self, step: u64, time_us: i64, ids: &[u32], values: impl Fn(usize) -> f64) -> Result<()> {
        if !ids.is_empty() && self.fits_template(ids.iter().copied()) {
            encode_dense_row(&mut self.buf, step, time_us, (0..ids.len()).map(values), &mut self.buf_prev);
            self.end_event(step, true, false);
            return Ok(());
        }
        let vals: Vec<Value> = (0..ids.len()).map(|i| Value::Float(values(i))).collect();
        let keyed: KeyedRow<'_> = ids.iter().copied().zip(&vals).collect();
        self.push(&EncEvent::Log { step, time_us, metrics: &keyed })
    }

    /// Appends rows `from..` of `cols` (at `steps`) as dense rows until the buffer is full or the rows end, and
    /// returns the index reached. The caller guarantees the frame's template is the columns' keys.
    fn push_dense_columns(&mut self, steps: &[u64], time_us: i64, cols: &[&[f64]], from: usize) -> usize {
        let i = encode_dense_columns(&mut self.buf, steps, time_us, cols, from, self.buffer_size, &mut self.buf_prev);
        if i > from {
            let (first, last, n) = (steps[from], steps[i - 1], (i - from) as u64);
            self.buf_count += (i - from) as u32;
            self.buf_stats.record_logs(first, last, n);
            self.total.record_logs(first, last, n);
        }
        i
    }

    /// Appends events (all validated by the caller), then writes per buffer size and policy.
    fn append_rows(&mut self, rows: &[(u64, i64, &Metrics)]) -> Result<()> {
        self.encode_whole(|c| {
            for (step, time_us, m) in rows {
                let ids = c.key_ids(m)?;
                c.push_log(*step, *time_us, &ids)?;
            }
            Ok(())
        })?;
        if self.buf.len() >= self.buffer_size {
            self.flush_frame()?;
        }
        self.after_write()
    }

    /// Appends one row of floats whose keys are sorted, unique and valid, then writes per buffer size and policy.
    fn append_floats(&mut self, step: u64, time_us: i64, row: &[(&str, f64)]) -> Result<()> {
        let mut ids = std::mem::take(&mut self.scratch_ids);
        let res = self.encode_whole(|c| {
            c.str_key_ids(row.iter().map(|(k, _)| *k), &mut ids);
            c.push_floats(step, time_us, &ids, |i| row[i].1)
        });
        self.scratch_ids = ids;
        res?;
        if self.buf.len() >= self.buffer_size {
            self.flush_frame()?;
        }
        self.after_write()
    }

    fn append_other(&mut self, kind: Other, m: Option<&Metrics>, exit_code: i32) -> Result<()> {
        self.append_other_at(kind, m, exit_code, None)
    }

    /// [`append_other`](WriterCore::append_other) with an explicit time (microseconds) for a `System` event.
    fn append_other_at(
        &mut self,
        kind: Other,
        m: Option<&Metrics>,
        exit_code: i32,
        time_us: Option<i64>,
    ) -> Result<()> {
        self.check()?;
        let step = self.current_step();
        if let Some(m) = m {
            self.check_values(m)?;
        }
        let empty = Metrics::new();
        let time_us = time_us.unwrap_or_else(now_micros);
        self.encode_whole(|c| {
            let ids = c.key_ids(m.unwrap_or(&empty))?;
            let ev = match kind {
                Other::Config => EncEvent::Config { step, patch: &ids },
                Other::Summary => EncEvent::Summary { step, patch: &ids },
                Other::System => EncEvent::System { step, time_us, metrics: &ids },
                Other::Finish => EncEvent::Finish { step, exit_code },
            };
            c.push(&ev)
        })?;
        if self.buf.len() >= self.buffer_size {
            self.flush_frame()?;
        }
        self.after_write()
    }

    /// Appends a metadata patch at the current step. A `Meta` event needs a segment of format version 2: when
    /// the active segment is older (a resumed version-1 run), what is buffered goes to it first and the event
    /// starts a new segment.
    fn append_meta(&mut self, patch: &MetaPatch) -> Result<()> {
        self.check()?;
        patch.check()?;
        if self.seg.as_ref().is_some_and(|s| s.format < 2) {
            self.flush_frame()?;
        }
        let step = self.current_step();
        self.push(&EncEvent::Meta { step, patch })?;
        self.buf_needs_v2 = true;
        if let Some(n) = &mut self.own_meta {
            *n += 1;
        }
        if self.buf.len() >= self.buffer_size {
            self.flush_frame()?;
        }
        self.after_write()
    }

    /// After an append: under `Always`, sync now; under `EveryMillis`, start the deadline of the first event
    /// a sync does not cover yet (the store's syncer fsyncs by then, outside this writer's lock: a `log` never
    /// waits for an fsync it did not ask for).
    ///
    /// Under `Always` the caller ([`RunWriter`]) syncs after releasing the lock.
    fn after_write(&mut self) -> Result<()> {
        match self.policy {
            SyncPolicy::EveryMillis(n) => {
                if self.dirty_since.is_none() {
                    self.dirty_since = Some(Instant::now());
                    if let Some(w) = &self.wake {
                        w.kick();
                    }
                }
                if self.wake.is_none() && self.last_sync.elapsed().as_millis() >= u128::from(n) {
                    // No syncer thread could be started: sync inline.
                    return self.sync();
                }
                Ok(())
            }
            SyncPolicy::Always | SyncPolicy::Never => Ok(()),
        }
    }

    /// When the store's syncer must sync this writer (`None`: nothing is due).
    pub(crate) fn sync_deadline(&self) -> Option<Instant> {
        match self.policy {
            SyncPolicy::EveryMillis(n) if self.is_live() => {
                self.dirty_since.map(|t| t + std::time::Duration::from_millis(n))
            }
            _ => None,
        }
    }

    fn poison<T>(&mut self, op: &'static str, path: PathBuf, e: std::io::Error) -> Result<T> {
        let err = Error::io(op, path, e);
        self.set_poisoned(|| err.to_string());
        Err(err)
    }

    fn durable(&self) -> bool {
        self.policy != SyncPolicy::Never
    }

    /// Creates segment `seq` (and its index), starting after `own` events.
    /// `zone`: `None` for no zone map, else the zone map's starting state (`Some(None)`: unknown).
    #[allow(clippy::type_complexity)]
    fn create_segment(
        &mut self,
        seq: u32,
        zone: Option<Option<(crate::zonemap::OwnState, Option<u64>)>>,
    ) -> Result<()> {
        let path = self.dir.join(format::seg_name(self.version, seq));
        let ipath = self.dir.join(format::idx_name(self.version, seq));
        let salt = format::segment_salt(self.nonce, seq);
        let header = SegmentHeader { seq, version: self.version, salt, base: self.own }.encode();
        let file: Arc<dyn VfsFile> = match self.vfs.open(&path, OpenMode::CreateNew) {
            Ok(f) => Arc::from(f),
            Err(e) => return self.poison("creating segment", path, e),
        };
        if let Err(e) = file.write_all_at(&header, 0) {
            return self.poison("writing segment header", path, e);
        }
        let idx = match self.vfs.open(&ipath, OpenMode::CreateOrOpen) {
            Ok(f) => f,
            Err(e) => return self.poison("creating index", ipath, e),
        };
        let ih = encode_index_header(self.version, seq, salt);
        if let Err(e) = idx.set_len(0).and_then(|_| idx.write_all_at(&ih, 0)) {
            return self.poison("writing index header", ipath, e);
        }
        // The zone map starts with the state carried over from the sealed segment (issue 12).
        let zone = match zone {
            Some(c) => {
                match crate::zonemap::ZoneLog::create(&*self.vfs, &self.dir, self.version, seq, salt, c)
                    .and_then(|z| z.sync_file().map(|_| z))
                {
                    Ok(z) => Some(z),
                    Err(e) => {
                        return self.poison(
                            "creating zone map",
                            self.dir.join(crate::zonemap::zone_name(self.version, seq)),
                            e,
                        )
                    }
                }
            }
            None => None,
        };
        // Whatever the policy (a segment rolls once per segment_size bytes): an explicit `sync()` under `Never`
        // syncs only the active segment's data, so its directory entry must already be durable.
        if let Err(e) = file.sync_data().and_then(|_| idx.sync_data()) {
            return self.poison("syncing new segment", path, e);
        }
        if let Err(e) = self.vfs.sync_dir(&self.dir) {
            return self.poison("syncing run directory", self.dir.clone(), e);
        }
        self.seg = Some(ActiveSeg {
            seq,
            file,
            len: format::SEG_HEADER_LEN as u64,
            salt,
            idx,
            idx_len: ih.len() as u64,
            last_indexed: None,
            synced: format::SEG_HEADER_LEN as u64,
            inseg: Stats::default(),
            pending_idx: Vec::new(),
            pending_offs: Vec::new(),
            zone,
            format: format::FORMAT_VERSION,
        });
        self.next_seq = seq + 1;
        Ok(())
    }

    /// Makes sure there is an active segment with room, sealing a full one (or one of an older format version
    /// when the buffer holds an event kind that version lacks).
    fn ensure_segment(&mut self) -> Result<()> {
        let full = match &self.seg {
            None => {
                // No segment open. With none before it the version has no own data, so the zone state starts
                // empty; after sealed segments (recovery removed a torn newest one and starts it afresh) the
                // state before it is not at hand: unknown (blocks only, no snapshots; readers use the frames).
                let seq = self.next_seq;
                let start = if seq == 0 { Some(Default::default()) } else { None };
                return self.create_segment(seq, Some(start));
            }
            Some(s) => {
                (s.len >= self.segment_size && s.len > format::SEG_HEADER_LEN as u64)
                    || (self.buf_needs_v2 && s.format < 2)
            }
        };
        if full {
            if let Some(s) = &mut self.seg {
                let path = self.dir.join(format::seg_name(self.version, s.seq));
                if let Err(e) = s
                    .file
                    .sync_data()
                    .and_then(|_| s.write_pending_index())
                    .and_then(|_| s.idx.sync_data())
                    .and_then(|_| s.write_pending_zone(true))
                {
                    return self.poison("sealing segment", path, e);
                }
            }
            let carry = self.seg.as_ref().and_then(|s| s.zone.as_ref()).map(|z| z.carry());
            let seq = self.next_seq;
            self.create_segment(seq, carry)?;
        }
        Ok(())
    }

    /// Writes new key-table records (creating the table if needed), without fsyncing them.
    fn write_key_records(&mut self) -> Result<()> {
        if self.pending_keys.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(format::keys_name(self.version));
        if self.keys_file.is_none() {
            let f = match self.vfs.open(&path, OpenMode::CreateNew) {
                Ok(f) => f,
                Err(e) => return self.poison("creating key table", path, e),
            };
            let h = encode_keys_header(self.version, self.nonce);
            if let Err(e) = f.write_all_at(&h, 0) {
                return self.poison("writing key table header", path, e);
            }
            if let Err(e) = self.vfs.sync_dir(&self.dir) {
                return self.poison("syncing run directory", self.dir.clone(), e);
            }
            self.keys_len = h.len() as u64;
            self.keys_file = Some(Arc::from(f));
        }
        if let Some(f) = &self.keys_file {
            if let Err(e) = f.write_all_at(&self.pending_keys, self.keys_len) {
                return self.poison("writing key table", path, e);
            }
        }
        self.keys_len += self.pending_keys.len() as u64;
        self.pending_keys.clear();
        Ok(())
    }

    /// Writes new key-table records and makes the whole table durable (before any frame naming them is written).
    fn write_keys(&mut self) -> Result<()> {
        self.write_key_records()?;
        if self.keys_synced < self.keys_len {
            if let Some(f) = &self.keys_file {
                if let Err(e) = f.sync_data() {
                    return self.poison("syncing key table", self.dir.join(format::keys_name(self.version)), e);
                }
            }
            self.keys_synced = self.keys_len;
        }
        Ok(())
    }

    /// First half of a sync's key phase, under the lock: writes the new key records and returns what to fsync
    /// without the lock (`None`: the table is durable). A concurrent `log` does not wait for that fsync.
    pub(crate) fn begin_keys_sync(&mut self) -> Result<Option<SyncTicket>> {
        self.check()?;
        self.write_key_records()?;
        match &self.keys_file {
            Some(f) if self.keys_synced < self.keys_len => {
                Ok(Some(SyncTicket { file: f.clone(), seq: u32::MAX, len: self.keys_len, last_log: None }))
            }
            _ => Ok(None),
        }
    }

    /// Second half of the key phase, under the lock again: records what the fsync made durable.
    pub(crate) fn end_keys_sync(&mut self, t: SyncTicket, res: std::io::Result<()>) -> Result<()> {
        if let Err(e) = res {
            return self.poison("syncing key table", self.dir.join(format::keys_name(self.version)), e);
        }
        self.check()?;
        self.keys_synced = self.keys_synced.max(t.len);
        Ok(())
    }

    /// Writes the buffered events as one frame.
    pub(crate) fn flush_frame(&mut self) -> Result<()> {
        if self.buf_count == 0 {
            return Ok(());
        }
        self.check()?;
        self.ensure_segment()?;
        self.write_keys()?;
        if self.seg.is_none() {
            return self.broken("no active segment after creating one");
        }
        let Some(seg) = self.seg.as_mut() else { return unreachable_err(&self.id) };
        // The frame is built in place: the payload prefix and the frame header go into the gap the buffer
        // keeps in front of the events (no copy of the events).
        self.frame.clear();
        encode_prefix(&mut self.frame, self.buf_count, self.buf_base.0, self.buf_base.1, seg.synced);
        let Some(start) = FRAME_GAP.checked_sub(self.frame.len() + FRAME_HEADER_LEN) else {
            return self.broken("frame prefix larger than the room kept for it");
        };
        let frame = &mut self.buf[start..];
        frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + self.frame.len()].copy_from_slice(&self.frame);
        let off = seg.len;
        let h = frame_header(seg.salt, off, &frame[FRAME_HEADER_LEN..]);
        frame[..FRAME_HEADER_LEN].copy_from_slice(&h);
        let frame_len = frame.len() as u64;
        let index_it = seg.last_indexed.is_none_or(|l| off - l >= INDEX_INTERVAL);
        let entry = IndexEntry { first_step: self.buf_base.0, offset: off, before: seg.inseg }.encode(seg.salt);
        if let Err(e) = seg.file.write_all_at(frame, off) {
            let path = self.dir.join(format::seg_name(self.version, seg.seq));
            return self.poison("writing frame to", path, e);
        }
        if let Some(z) = &mut seg.zone {
            z.frame(off, &frame[FRAME_HEADER_LEN..]);
        }
        if index_it {
            // Written after the next fsync of the segment (see `ActiveSeg::pending_idx`).
            seg.pending_idx.extend_from_slice(&entry);
            seg.pending_offs.push(off);
            seg.last_indexed = Some(off);
        }
        seg.len += frame_len;
        seg.inseg = seg.inseg.then(&self.buf_stats);
        self.own = self.own.then(&self.buf_stats);
        if self.buf_stats.last_log.is_some() {
            self.written_last_log = self.buf_stats.last_log;
        }
        self.unsynced = true;
        self.buf.clear();
        self.buf_count = 0;
        self.buf_stats = Stats::default();
        self.buf_needs_v2 = false;
        self.note_known();
        Ok(())
    }

    /// Flushes and fsyncs, holding the lock throughout (for `Always`, `finish` and `close`; other syncs use
    /// [`sync_unlocked`]).
    pub(crate) fn sync(&mut self) -> Result<()> {
        if let Some(t) = self.begin_sync()? {
            let res = t.file.sync_data();
            self.end_sync(t, res)?;
        }
        Ok(())
    }

    /// First half of a sync, under the lock: writes the buffer out and returns what to fsync (`None`: nothing,
    /// everything written is already durable).
    pub(crate) fn begin_sync(&mut self) -> Result<Option<SyncTicket>> {
        self.check()?;
        self.flush_frame()?;
        self.dirty_since = None;
        let Some(seg) = self.seg.as_ref().filter(|_| self.unsynced) else {
            self.durable_last_log = self.written_last_log;
            self.last_sync = Instant::now();
            return Ok(None);
        };
        Ok(Some(SyncTicket { file: seg.file.clone(), seq: seg.seq, len: seg.len, last_log: self.written_last_log }))
    }

    /// Second half of a sync, under the lock again: publishes what the fsync made durable (the synced length,
    /// the index entries of synced frames, the durable step), or poisons the writer if it failed.
    pub(crate) fn end_sync(&mut self, t: SyncTicket, res: std::io::Result<()>) -> Result<()> {
        if let Err(e) = res {
            let path = self.dir.join(format::seg_name(self.version, t.seq));
            return self.poison("syncing", path, e);
        }
        self.check()?;
        let Some(seg) = self.seg.as_mut().filter(|s| s.seq == t.seq) else {
            // The segment was sealed meanwhile (and synced whole by the roll).
            return Ok(());
        };
        seg.synced = seg.synced.max(t.len);
        let clean = seg.len == t.len;
        if let Err(e) = seg.write_pending_index_below(t.len) {
            let path = self.dir.join(format::idx_name(self.version, t.seq));
            return self.poison("writing index", path, e);
        }
        // Zone-map records cover whole pending frames: write them only when everything written was synced
        // (frames appended during the fsync wait for a later sync or the seal; derived data may lag).
        if clean {
            if let Err(e) = seg.write_pending_zone(false) {
                let path = self.dir.join(crate::zonemap::zone_name(self.version, t.seq));
                return self.poison("writing zone map", path, e);
            }
        }
        if clean {
            self.unsynced = false;
        }
        if t.last_log > self.durable_last_log || self.durable_last_log.is_none() {
            self.durable_last_log = t.last_log;
        }
        self.last_sync = Instant::now();
        self.note_known();
        Ok(())
    }

    /// A snapshot of the buffered events for a reader of this process (`None` when nothing is buffered).
    pub(crate) fn tail(&self) -> Option<Tail> {
        if self.buf_count == 0 || !self.is_live() {
            return None;
        }
        let (seq, salt, offset, synced) = match &self.seg {
            Some(s) => (s.seq, s.salt, s.len, s.synced),
            None => {
                let salt = format::segment_salt(self.nonce, self.next_seq);
                let start = format::SEG_HEADER_LEN as u64;
                (self.next_seq, salt, start, start)
            }
        };
        let mut payload = Vec::with_capacity(self.buf.len());
        encode_prefix(&mut payload, self.buf_count, self.buf_base.0, self.buf_base.1, synced);
        payload.extend_from_slice(self.buf.get(FRAME_GAP..)?);
        let mut frame = frame_header(salt, offset, &payload).to_vec();
        frame.extend_from_slice(&payload);
        // Events of a later format version go to a new segment when the active one is older.
        let format = match &self.seg {
            Some(s) if !self.buf_needs_v2 => s.format,
            _ => format::FORMAT_VERSION,
        };
        Some(Tail {
            version: self.version,
            nonce: self.nonce,
            seq,
            salt,
            offset,
            frame,
            keys: self.key_list.clone(),
            format,
        })
    }

    /// Final flush (and sync unless the policy is `Never`), then release the run lock. A clean close (every
    /// event durable) appends a close record to the active segment's index: the index is then complete.
    pub(crate) fn close(&mut self) -> Result<()> {
        let mut res = Ok(());
        if self.is_live() {
            res = if self.durable() { self.sync() } else { self.flush_frame() };
            if res.is_ok() && !self.unsynced && self.buf_count == 0 {
                // Issue 12: a closing snapshot (the segment is synced and its records written), so the summary
                // of a finished run reads one record. Derived data: a failure here loses nothing.
                if let Some(z) = self.seg.as_mut().and_then(|s| s.zone.as_mut()) {
                    let _ = z.write_pending(true);
                }
                res = self.write_close_record();
            }
        }
        self.closed = true;
        if let Some(l) = self.running.take() {
            let _ = l.unlock();
        }
        if let Some(l) = self.lock.take() {
            let _ = l.unlock();
        }
        res
    }
}

/// The error for a state the code above rules out.
pub(crate) fn unreachable_err<T>(run: &str) -> Result<T> {
    Err(Error::Poisoned { run: run.to_string(), cause: "internal error: inconsistent writer state".into() })
}

impl WriterCore {
    /// Appends and fsyncs the close record of the active segment's index (docs/FORMAT.md, Step index; only in
    /// version-2 segments). Called when every event is durable and its index entries are written.
    fn write_close_record(&mut self) -> Result<()> {
        let Some(seg) = self.seg.as_mut() else { return Ok(()) };
        if seg.format < 2 || !seg.pending_idx.is_empty() {
            return Ok(());
        }
        let close = crate::index::Close { seg_len: seg.len, meta_events: self.own_meta };
        let rec = crate::index::encode_close_record(seg.salt, close);
        if let Err(e) = seg.idx.write_all_at(&rec, seg.idx_len).and_then(|_| seg.idx.sync_data()) {
            let path = self.dir.join(format::idx_name(self.version, seg.seq));
            return self.poison("writing the index close record", path, e);
        }
        Ok(())
    }
}

/// Checks the keys of a float row or batch, given in sorted order: each short enough, none repeated.
fn check_float_keys<'k>(sorted: impl Iterator<Item = &'k str>) -> Result<()> {
    let mut prev: Option<&str> = None;
    for k in sorted {
        if k.len() > format::MAX_KEY_LEN as usize {
            return Err(Error::TooLarge {
                what: "metric key",
                size: k.len() as u64,
                limit: format::MAX_KEY_LEN.into(),
            });
        }
        if prev == Some(k) {
            return Err(Error::Value { reason: format!("metric key {k:?} appears twice in one row") });
        }
        prev = Some(k);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Other {
    Config,
    Summary,
    System,
    Finish,
}

/// The writer of one run (one at a time per run, across processes). Dropping it flushes, syncs (unless the
/// policy is [`SyncPolicy::Never`]) and releases the run.
pub struct RunWriter {
    pub(crate) core: Arc<Mutex<WriterCore>>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) recovery: RecoveryReport,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWriter").field("id", &self.id).field("version", &self.version).finish()
    }
}

impl RunWriter {
    /// The writer's state for a call that writes (`Poisoned` after a panic inside an earlier call).
    fn core(&self) -> Result<MutexGuard<'_, WriterCore>> {
        lock_core(&self.core)
    }

    /// After a write call returned `res` (its lock released): under [`SyncPolicy::Always`] the fsync the call
    /// asked for, done outside the lock so this process's readers never wait for it.
    fn then_sync<R>(&self, res: Result<R>) -> Result<R> {
        let r = res?;
        if self.peek().policy == SyncPolicy::Always {
            sync_unlocked(&self.core)?;
        }
        Ok(r)
    }

    /// The writer's state for reading a counter (a poisoned lock still holds the last values).
    fn peek(&self) -> MutexGuard<'_, WriterCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The run version this writer appends to.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What recovery cut when this writer opened the run (every byte removed from any file; empty when
    /// nothing was). For a rewind, this includes what was cut from the version it archived.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The last `Log` step of the run's visible history (inherited rows included).
    pub fn last_step(&self) -> Option<u64> {
        self.peek().total.last_log
    }

    /// The step `log` will use next: 0 for a fresh run, the last step + 1, or the fork step + 1 for a fresh fork.
    pub fn next_step(&self) -> u64 {
        self.peek().last().map_or(0, |l| l.saturating_add(1))
    }

    /// The last `Log` step known to be durable (fsynced by this writer).
    pub fn durable_step(&self) -> Option<u64> {
        self.peek().durable_last_log
    }

    /// Overrides the store's sync policy for this writer.
    pub fn set_sync_policy(&mut self, policy: SyncPolicy) {
        self.peek().policy = policy;
        if matches!(policy, SyncPolicy::EveryMillis(_)) && self.registry.ensure_syncer() {
            self.peek().wake = Some(self.registry.wake());
        }
    }

    /// The step a row will take: `step` if it is greater than `last`, else `StepNotIncreasing`.
    fn resolve_step(&self, step: Option<u64>, last: Option<u64>) -> Result<u64> {
        match (step, last) {
            (Some(s), Some(l)) if s <= l => Err(Error::StepNotIncreasing { run: self.id.clone(), last: l, got: s }),
            (Some(s), _) => Ok(s),
            (None, Some(l)) => {
                l.checked_add(1).ok_or(Error::StepNotIncreasing { run: self.id.clone(), last: l, got: l })
            }
            (None, None) => Ok(0),
        }
    }

    /// Validates every row (steps, keys, values), then appends them all; on any error nothing is written.
    fn log_rows(&mut self, rows: &[(Option<u64>, Option<f64>, &Metrics)]) -> Result<Option<u64>> {
        let mut core = self.core()?;
        core.check()?;
        let now = now_micros();
        let mut last = core.last();
        let mut batch = Vec::with_capacity(rows.len());
        for (step, time, m) in rows {
            core.check_values(m)?;
            let s = self.resolve_step(*step, last)?;
            batch.push((s, time.map_or(now, secs_to_micros), *m));
            last = Some(s);
        }
        core.append_rows(&batch)?;
        Ok(last.filter(|_| !rows.is_empty()))
    }

    /// One row: the hot path of a tracker, with no allocation besides the encoding buffer.
    fn log_one(&mut self, step: Option<u64>, time: Option<f64>, m: &Metrics) -> Result<u64> {
        let mut core = self.core()?;
        core.check()?;
        core.check_values(m)?;
        let s = self.resolve_step(step, core.last())?;
        let t = time.map_or_else(now_micros, secs_to_micros);
        core.append_rows(&[(s, t, m)])?;
        Ok(s)
    }

    /// Logs a history row at the next step and returns that step.
    pub fn log(&mut self, metrics: Metrics) -> Result<u64> {
        let res = self.log_one(None, None, &metrics);
        self.then_sync(res)
    }

    /// Like [`log`](RunWriter::log) but borrows the row, so a caller can reuse one map for every step.
    pub fn log_ref(&mut self, metrics: &Metrics) -> Result<u64> {
        let res = self.log_one(None, None, metrics);
        self.then_sync(res)
    }

    /// Logs a history row at `step`, which must be greater than the last step
    /// ([`Error::StepNotIncreasing`] otherwise, and nothing is written).
    pub fn log_at(&mut self, step: u64, metrics: Metrics) -> Result<()> {
        let res = self.log_one(Some(step), None, &metrics).map(|_| ());
        self.then_sync(res)
    }

    /// Logs a row with an explicit timestamp (seconds since the epoch), at `step` or the next step.
    pub fn log_with_time(&mut self, step: Option<u64>, time: f64, metrics: Metrics) -> Result<u64> {
        let res = self.log_one(step, Some(time), &metrics);
        self.then_sync(res)
    }

    /// Logs any serializable value whose serde form is a map or struct (each field a metric).
    pub fn log_serde<T: serde::Serialize + ?Sized>(&mut self, metrics: &T) -> Result<u64> {
        let m = crate::value_serde::to_metrics(metrics)?;
        self.log(m)
    }

    /// Logs many rows as one frame, all or nothing: every row is checked (steps, keys, values) and encoded
    /// before anything is written, and the batch becomes one frame (with one fsync under
    /// [`SyncPolicy::Always`]), so after any error, or a crash at any moment, either every row of the batch
    /// is there or none is. A rejected batch leaves no row and no new key behind. After an I/O error the
    /// writer is poisoned and the batch may or may not have reached the disk, whole: `resume` shows which.
    /// A batch must fit in one frame (64 MiB encoded): a larger one is [`Error::TooLarge`]. Returns the
    /// last step (`None` for no rows).
    pub fn log_batch<I: IntoIterator<Item = (Option<u64>, Metrics)>>(&mut self, rows: I) -> Result<Option<u64>> {
        let owned: Vec<(Option<u64>, Metrics)> = rows.into_iter().collect();
        if owned.is_empty() {
            return Ok(None);
        }
        let rows: Vec<(Option<u64>, Option<f64>, &Metrics)> = owned.iter().map(|(s, m)| (*s, None, m)).collect();
        let res = self.log_rows(&rows);
        self.then_sync(res)
    }

    /// Logs a row of float metrics at the next step and returns that step: the fastest per-row path (no map,
    /// no `Value`s; a tracker logging the same keys every step pays no per-key allocation or hashing).
    /// Keys may come in any order; a duplicate key is [`Error::Value`] and nothing is written.
    pub fn log_floats(&mut self, row: &[(&str, f64)]) -> Result<u64> {
        let res = self.log_floats_inner(None, row);
        self.then_sync(res)
    }

    /// Like [`log_floats`](RunWriter::log_floats) at `step`, which must exceed the last step.
    pub fn log_floats_at(&mut self, step: u64, row: &[(&str, f64)]) -> Result<()> {
        let res = self.log_floats_inner(Some(step), row).map(|_| ());
        self.then_sync(res)
    }

    fn log_floats_inner(&mut self, step: Option<u64>, row: &[(&str, f64)]) -> Result<u64> {
        let mut core = self.core()?;
        core.check()?;
        let s = self.resolve_step(step, core.last())?;
        let t = now_micros();
        if core.same_keys_as_last_row(row.iter().map(|(k, _)| *k)) {
            core.append_floats(s, t, row)?;
            return Ok(s);
        }
        let mut sorted = row.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        check_float_keys(sorted.iter().map(|(k, _)| *k))?;
        core.append_floats(s, t, &sorted)?;
        Ok(s)
    }

    /// Logs many rows of float metrics given as columns: row `i` is at `steps[i]` with `column[i]` for each
    /// `(key, column)`, all stamped with the current time. The bulk path (imports, client-side batching):
    /// rows are encoded straight from the slices into one frame, one write, one fsync under
    /// [`SyncPolicy::Always`]. All or nothing like [`log_batch`](RunWriter::log_batch): everything is checked
    /// first (equal lengths, unique keys, increasing steps), and on any error no row and no new key is left
    /// behind; a crash keeps the whole batch or none of it. A batch must fit in one frame (64 MiB encoded,
    /// ~1.5 million rows of five floats): a larger one is [`Error::TooLarge`]. Returns the last step (`None`
    /// for no rows).
    pub fn log_columns(&mut self, steps: &[u64], columns: &[(&str, &[f64])]) -> Result<Option<u64>> {
        let res = self.log_columns_inner(steps, columns);
        self.then_sync(res)
    }

    fn log_columns_inner(&mut self, steps: &[u64], columns: &[(&str, &[f64])]) -> Result<Option<u64>> {
        let mut core = self.core()?;
        core.check()?;
        if let Some((k, c)) = columns.iter().find(|(_, c)| c.len() != steps.len()) {
            return Err(Error::Value {
                reason: format!("column {k:?} has {} values for {} steps", c.len(), steps.len()),
            });
        }
        let mut order: Vec<usize> = (0..columns.len()).collect();
        order.sort_by(|a, b| columns[*a].0.cmp(columns[*b].0));
        check_float_keys(order.iter().map(|i| columns[*i].0))?;
        let mut last = core.last();
        for &s in steps {
            last = Some(self.resolve_step(Some(s), last)?);
        }
        if steps.is_empty() {
            return Ok(None);
        }
        // The whole batch is one frame: refuse at once what cannot fit (a dense row takes at least 4 + 8k bytes).
        let least = steps.len().saturating_mul(4 + 8 * columns.len());
        if least > MAX_FRAME_EVENTS {
            return Err(Error::TooLarge { what: "batch", size: least as u64, limit: MAX_FRAME_EVENTS as u64 });
        }
        let t = now_micros();
        let mut ids = Vec::with_capacity(columns.len());
        let cols: Vec<&[f64]> = order.iter().map(|i| columns[*i].1).collect();
        let saved = core.buffer_size;
        core.buffer_size = MAX_FRAME_EVENTS + FRAME_GAP;
        let res = core.encode_whole(|c| {
            c.str_key_ids(order.iter().map(|i| columns[*i].0), &mut ids);
            // After a frame's first row, the frame's template is the columns' keys: the rest are dense rows.
            let mut dense = false;
            let mut i = 0;
            while i < steps.len() {
                if dense {
                    i = c.push_dense_columns(steps, t, &cols, i);
                } else {
                    c.push_floats(steps[i], t, &ids, |j| cols[j][i])?;
                    dense = !ids.is_empty();
                    i += 1;
                }
            }
            Ok(())
        });
        core.buffer_size = saved;
        res?;
        if core.buf.len() >= saved {
            core.flush_frame()?;
        }
        core.after_write()?;
        Ok(last)
    }

    /// Merges a patch into the run's config (positioned at the current step).
    pub fn set_config(&mut self, patch: Metrics) -> Result<()> {
        let res = self.core()?.append_other(Other::Config, Some(&patch), 0);
        self.then_sync(res)
    }

    /// Changes the run's metadata (name, tags, notes, group; see [`MetaPatch`]) with a `Meta` event at the
    /// current step, so forks and rewinds cut it like config. Read it back with
    /// [`Store::meta`](crate::Store::meta) or [`RunInfo::meta`](crate::RunInfo::meta).
    pub fn set_meta(&mut self, patch: MetaPatch) -> Result<()> {
        let res = self.core()?.append_meta(&patch);
        self.then_sync(res)
    }

    /// Sets explicit summary values; they override the automatic last-value summary.
    pub fn set_summary(&mut self, patch: Metrics) -> Result<()> {
        let res = self.core()?.append_other(Other::Summary, Some(&patch), 0);
        self.then_sync(res)
    }

    /// Logs a system-metrics sample at the current step (it does not advance the step).
    pub fn log_system(&mut self, metrics: Metrics) -> Result<()> {
        let res = self.core()?.append_other(Other::System, Some(&metrics), 0);
        self.then_sync(res)
    }

    /// Logs a system-metrics sample taken at `time` (seconds since the epoch) at the current step: what an
    /// importer uses to keep a source's sample times.
    pub fn log_system_with_time(&mut self, time: f64, metrics: Metrics) -> Result<()> {
        let res = self.core()?.append_other_at(Other::System, Some(&metrics), 0, Some(secs_to_micros(time)));
        self.then_sync(res)
    }

    /// Marks the run finished with `exit_code`, makes everything durable and releases the run.
    pub fn finish(self, exit_code: i32) -> Result<()> {
        self.core()?.append_other(Other::Finish, None, exit_code)?;
        sync_unlocked(&self.core)
    }

    /// Writes buffered events to the OS: visible to readers, not yet durable.
    pub fn flush(&mut self) -> Result<()> {
        let mut core = self.core()?;
        core.check()?;
        core.flush_frame()
    }

    /// Makes every event appended so far durable. A failed fsync poisons the writer: it is never retried.
    pub fn sync(&mut self) -> Result<()> {
        sync_unlocked(&self.core)
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        let poisoned = self.core.is_poisoned();
        let mut core = self.peek();
        if poisoned {
            core.set_poisoned(|| "a panic inside the writer left its state unknown".into());
        }
        // A poisoned writer writes nothing more; it only releases the run.
        let _ = core.close();
        drop(core);
        self.registry.unregister(&self.id);
    }
}

/// Opens a writer on the current version `view` of a run whose lock is held. `cuts` are what recovery already
/// cut before (a rewind's archived version); the writer's report lists them first.
pub(crate) fn open_writer(
    cat: &Arc<Catalog>,
    opts: &Options,
    registry: &Arc<Registry>,
    view: &VersionView,
    lock: Box<dyn VfsFile>,
    mut cuts: Vec<Cut>,
) -> Result<RunWriter> {
    let (keys, keys_file, keys_len) = recover_keys(cat, view, &mut cuts)?;
    let rec = recover_active(cat, view, &mut cuts)?;
    let mut core = WriterCore::new(
        view.id.clone(),
        view.version,
        view.dir.clone(),
        view.header.nonce,
        cat.clone(),
        lock,
        opts.sync,
        opts.segment_size,
        opts.buffer_size,
    );
    core.key_list = Arc::new(table_order(&keys));
    core.keys = keys;
    core.keys_file = keys_file.map(Arc::from);
    core.keys_len = keys_len;
    core.keys_synced = keys_len;
    core.seg = rec.seg;
    core.own_meta = rec.own_meta;
    core.next_seq = rec.next_seq;
    core.own = rec.own;
    let inherited = view.header.base.as_ref().map(|b| b.inherited).unwrap_or_default();
    core.total = inherited.then(&rec.own);
    core.floor = view.header.base.as_ref().map(|b| b.step);
    core.written_last_log = core.total.last_log;
    core.durable_last_log = core.total.last_log;
    core.running = Some(cat.running_lock(view)?);
    if matches!(opts.sync, crate::options::SyncPolicy::EveryMillis(_)) && registry.ensure_syncer() {
        core.wake = Some(registry.wake());
    }
    let core = Arc::new(Mutex::new(core));
    registry.register(&view.id, &core);
    Ok(RunWriter {
        core,
        registry: registry.clone(),
        id: view.id.clone(),
        version: view.version,
        recovery: RecoveryReport { run: view.id.clone(), cuts },
    })
}
