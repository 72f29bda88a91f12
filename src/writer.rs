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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::catalog::Catalog;
use crate::codec::{encode_event, encode_prefix, EncEvent};
use crate::error::{Error, Result};
use crate::format::{self, now_micros, secs_to_micros, FRAME_HEADER_LEN, INDEX_INTERVAL, MAX_FRAME_LEN};
use crate::index::{encode_index_header, IndexEntry};
use crate::keys::{encode_key_record, encode_keys_header};
use crate::options::SyncPolicy;
use crate::report::RecoveryReport;
use crate::segment::{frame_header, SegmentHeader};
use crate::stats::Stats;
use crate::store::StoreInner;
use crate::value::{Key, Metrics, Value};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// The segment being appended to.
pub(crate) struct ActiveSeg {
    pub seq: u32,
    pub file: Box<dyn VfsFile>,
    pub len: u64,
    pub salt: u64,
    pub idx: Box<dyn VfsFile>,
    pub idx_len: u64,
    pub last_indexed: Option<u64>,
    /// How much of the segment is known durable (fsynced); recorded in every frame's prefix.
    pub synced: u64,
    /// Statistics of the segment's own events written so far.
    pub inseg: Stats,
}

/// Mutable state of a writer, shared with the store's background syncer.
pub(crate) struct WriterCore {
    pub id: String,
    pub version: u32,
    pub dir: PathBuf,
    pub nonce: u64,
    pub vfs: Arc<dyn Vfs>,
    /// The store's catalog: the writer tells it how much of the active segment is valid and durable.
    pub cat: Arc<Catalog>,
    pub lock: Option<Box<dyn VfsFile>>,
    pub keys: HashMap<Key, u32>,
    /// The previous row's keys and ids, by position (a cache in front of `keys`).
    last_row_keys: Vec<(Key, u32)>,
    pub keys_file: Option<Box<dyn VfsFile>>,
    pub keys_len: u64,
    pub pending_keys: Vec<u8>,
    pub seg: Option<ActiveSeg>,
    pub next_seq: u32,
    pub segment_size: u64,
    pub buffer_size: usize,
    buf: Vec<u8>,
    buf_count: u32,
    buf_base: (u64, i64),
    buf_prev: (u64, i64),
    buf_stats: Stats,
    frame: Vec<u8>,
    pub policy: SyncPolicy,
    pub last_sync: Instant,
    /// Own events written to segments (not the buffer).
    pub own: Stats,
    /// Everything visible: inherited, written and buffered.
    pub total: Stats,
    /// The fork or rewind step of this version (steps must exceed it).
    pub floor: Option<u64>,
    pub written_last_log: Option<u64>,
    pub durable_last_log: Option<u64>,
    pub unsynced: bool,
    pub poisoned: bool,
    pub closed: bool,
}

/// A batch is written as one frame up to this size (frames stay small enough to decode one at a time).
const BATCH_FRAME_SIZE: usize = 4 << 20;

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
            keys: HashMap::new(),
            last_row_keys: Vec::new(),
            keys_file: None,
            keys_len: 0,
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
            frame: Vec::new(),
            policy,
            last_sync: Instant::now(),
            own: Stats::default(),
            total: Stats::default(),
            floor: None,
            written_last_log: None,
            durable_last_log: None,
            unsynced: false,
            poisoned: false,
            closed: false,
        }
    }

    /// Tells the catalog that the active segment is valid up to its length (the writer wrote every frame of
    /// it, or recovery checked them), and durable up to what was synced.
    fn note_known(&self) {
        if let Some(seg) = &self.seg {
            let key = (self.id.clone(), self.version, self.nonce, seg.seq);
            self.cat.known.note(&key, seg.len, seg.synced);
        }
    }

    fn check(&self) -> Result<()> {
        if self.poisoned || self.closed {
            return Err(Error::Poisoned { run: self.id.clone() });
        }
        Ok(())
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
                        return Err(Error::TooLarge {
                            what: "metric key",
                            size: k.len() as u64,
                            limit: format::MAX_KEY_LEN.into(),
                        });
                    }
                    let id = self.keys.len() as u32;
                    encode_key_record(&mut self.pending_keys, self.nonce, id, k);
                    self.keys.insert(k.clone(), id);
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
        Ok(out)
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

    /// Encodes one event into the buffer (the caller has validated it).
    fn push(&mut self, ev: &EncEvent<'_>) -> Result<()> {
        if self.buf_count == 0 {
            let t = ev.time_us().unwrap_or(0);
            self.buf_base = (ev.step(), t);
            self.buf_prev = self.buf_base;
            self.buf.clear();
        }
        let before = self.buf.len();
        encode_event(&mut self.buf, ev, &mut self.buf_prev.0, &mut self.buf_prev.1);
        let size = self.buf.len() - before;
        if size as u64 > u64::from(MAX_FRAME_LEN) - 64 {
            self.buf.truncate(before);
            return Err(Error::TooLarge { what: "event", size: size as u64, limit: u64::from(MAX_FRAME_LEN) - 64 });
        }
        self.buf_count += 1;
        let (is_log, is_finish) = (matches!(ev, EncEvent::Log { .. }), matches!(ev, EncEvent::Finish { .. }));
        self.buf_stats.record(ev.step(), is_log, is_finish);
        self.total.record(ev.step(), is_log, is_finish);
        Ok(())
    }

    /// Appends events (all validated by the caller), then writes per buffer size and policy.
    fn append_rows(&mut self, rows: &[(u64, i64, &Metrics)]) -> Result<()> {
        for (step, time_us, m) in rows {
            let ids = self.key_ids(m)?;
            self.push(&EncEvent::Log { step: *step, time_us: *time_us, metrics: &ids })?;
            if self.buf.len() >= self.buffer_size {
                self.flush_frame()?;
            }
        }
        self.after_write()
    }

    fn append_other(&mut self, kind: Other, m: Option<&Metrics>, exit_code: i32) -> Result<()> {
        self.check()?;
        let step = self.current_step();
        if let Some(m) = m {
            self.check_values(m)?;
        }
        let empty = Metrics::new();
        let ids = self.key_ids(m.unwrap_or(&empty))?;
        let ev = match kind {
            Other::Config => EncEvent::Config { step, patch: &ids },
            Other::Summary => EncEvent::Summary { step, patch: &ids },
            Other::System => EncEvent::System { step, time_us: now_micros(), metrics: &ids },
            Other::Finish => EncEvent::Finish { step, exit_code },
        };
        self.push(&ev)?;
        if self.buf.len() >= self.buffer_size {
            self.flush_frame()?;
        }
        self.after_write()
    }

    fn after_write(&mut self) -> Result<()> {
        match self.policy {
            SyncPolicy::Always => self.sync(),
            SyncPolicy::EveryMillis(n) if self.last_sync.elapsed().as_millis() >= u128::from(n) => self.sync(),
            _ => Ok(()),
        }
    }

    fn poison<T>(&mut self, op: &'static str, path: PathBuf, e: std::io::Error) -> Result<T> {
        self.poisoned = true;
        Err(Error::io(op, path, e))
    }

    fn durable(&self) -> bool {
        self.policy != SyncPolicy::Never
    }

    /// Creates segment `seq` (and its index), starting after `own` events.
    fn create_segment(&mut self, seq: u32) -> Result<()> {
        let path = self.dir.join(format::seg_name(self.version, seq));
        let ipath = self.dir.join(format::idx_name(self.version, seq));
        let salt = format::segment_salt(self.nonce, seq);
        let header = SegmentHeader { seq, version: self.version, salt, base: self.own }.encode();
        let file = match self.vfs.open(&path, OpenMode::CreateNew) {
            Ok(f) => f,
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
        });
        self.next_seq = seq + 1;
        Ok(())
    }

    /// Makes sure there is an active segment with room, sealing a full one.
    fn ensure_segment(&mut self) -> Result<()> {
        let full = match &self.seg {
            None => {
                let seq = self.next_seq;
                return self.create_segment(seq);
            }
            Some(s) => s.len >= self.segment_size && s.len > format::SEG_HEADER_LEN as u64,
        };
        if full {
            if let Some(s) = &self.seg {
                let path = self.dir.join(format::seg_name(self.version, s.seq));
                if let Err(e) = s.file.sync_data().and_then(|_| s.idx.sync_data()) {
                    return self.poison("sealing segment", path, e);
                }
            }
            let seq = self.next_seq;
            self.create_segment(seq)?;
        }
        Ok(())
    }

    /// Writes new key-table records and makes them durable.
    fn write_keys(&mut self) -> Result<()> {
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
            self.keys_file = Some(f);
        }
        if let Some(f) = &self.keys_file {
            if let Err(e) = f.write_all_at(&self.pending_keys, self.keys_len).and_then(|_| f.sync_data()) {
                return self.poison("writing key table", path, e);
            }
        }
        self.keys_len += self.pending_keys.len() as u64;
        self.pending_keys.clear();
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
        let Some(seg) = self.seg.as_mut() else {
            return Err(Error::Poisoned { run: self.id.clone() });
        };
        self.frame.clear();
        self.frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        encode_prefix(&mut self.frame, self.buf_count, self.buf_base.0, self.buf_base.1, seg.synced);
        self.frame.extend_from_slice(&self.buf);
        let off = seg.len;
        let h = frame_header(seg.salt, off, &self.frame[FRAME_HEADER_LEN..]);
        self.frame[..FRAME_HEADER_LEN].copy_from_slice(&h);
        let index_it = seg.last_indexed.is_none_or(|l| off - l >= INDEX_INTERVAL);
        let entry = IndexEntry { first_step: self.buf_base.0, offset: off, before: seg.inseg }.encode(seg.salt);
        let res = seg.file.write_all_at(&self.frame, off).and_then(|_| {
            if index_it {
                seg.idx.write_all_at(&entry, seg.idx_len)
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            let path = self.dir.join(format::seg_name(self.version, seg.seq));
            return self.poison("writing frame to", path, e);
        }
        if index_it {
            seg.idx_len += entry.len() as u64;
            seg.last_indexed = Some(off);
        }
        seg.len += self.frame.len() as u64;
        seg.inseg = seg.inseg.then(&self.buf_stats);
        self.own = self.own.then(&self.buf_stats);
        if self.buf_stats.last_log.is_some() {
            self.written_last_log = self.buf_stats.last_log;
        }
        self.unsynced = true;
        self.buf.clear();
        self.buf_count = 0;
        self.buf_stats = Stats::default();
        self.note_known();
        Ok(())
    }

    /// Flushes and fsyncs.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.check()?;
        self.flush_frame()?;
        if self.unsynced {
            if let Some(seg) = &mut self.seg {
                if let Err(e) = seg.file.sync_data() {
                    let path = self.dir.join(format::seg_name(self.version, seg.seq));
                    return self.poison("syncing", path, e);
                }
                seg.synced = seg.len;
            }
            self.unsynced = false;
            self.note_known();
        }
        self.durable_last_log = self.written_last_log;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Final flush (and sync unless the policy is `Never`), then release the run lock.
    pub(crate) fn close(&mut self) -> Result<()> {
        let mut res = Ok(());
        if !self.poisoned && !self.closed {
            res = if self.durable() { self.sync() } else { self.flush_frame() };
        }
        self.closed = true;
        if let Some(l) = self.lock.take() {
            let _ = l.unlock();
        }
        res
    }
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
    pub(crate) store: Arc<StoreInner>,
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) recovery: Option<RecoveryReport>,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWriter").field("id", &self.id).field("version", &self.version).finish()
    }
}

impl RunWriter {
    fn core(&self) -> MutexGuard<'_, WriterCore> {
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

    /// The torn tail recovery cut when this writer opened the run, if any.
    pub fn recovery(&self) -> Option<&RecoveryReport> {
        self.recovery.as_ref()
    }

    /// The last `Log` step of the run's visible history (inherited rows included).
    pub fn last_step(&self) -> Option<u64> {
        self.core().total.last_log
    }

    /// The step `log` will use next: 0 for a fresh run, the last step + 1, or the fork step + 1 for a fresh fork.
    pub fn next_step(&self) -> u64 {
        self.core().last().map_or(0, |l| l.saturating_add(1))
    }

    /// The last `Log` step known to be durable (fsynced by this writer).
    pub fn durable_step(&self) -> Option<u64> {
        self.core().durable_last_log
    }

    /// Overrides the store's sync policy for this writer.
    pub fn set_sync_policy(&mut self, policy: SyncPolicy) {
        self.core().policy = policy;
        if matches!(policy, SyncPolicy::EveryMillis(_)) {
            self.store.ensure_syncer();
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
        let mut core = self.core();
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
        let mut core = self.core();
        core.check()?;
        core.check_values(m)?;
        let s = self.resolve_step(step, core.last())?;
        let t = time.map_or_else(now_micros, secs_to_micros);
        core.append_rows(&[(s, t, m)])?;
        Ok(s)
    }

    /// Logs a history row at the next step and returns that step.
    pub fn log(&mut self, metrics: Metrics) -> Result<u64> {
        self.log_one(None, None, &metrics)
    }

    /// Like [`log`](RunWriter::log) but borrows the row, so a caller can reuse one map for every step.
    pub fn log_ref(&mut self, metrics: &Metrics) -> Result<u64> {
        self.log_one(None, None, metrics)
    }

    /// Logs a history row at `step`, which must be greater than the last step
    /// ([`Error::StepNotIncreasing`] otherwise, and nothing is written).
    pub fn log_at(&mut self, step: u64, metrics: Metrics) -> Result<()> {
        self.log_one(Some(step), None, &metrics).map(|_| ())
    }

    /// Logs a row with an explicit timestamp (seconds since the epoch), at `step` or the next step.
    pub fn log_with_time(&mut self, step: Option<u64>, time: f64, metrics: Metrics) -> Result<u64> {
        self.log_one(step, Some(time), &metrics)
    }

    /// Logs any serializable value whose serde form is a map or struct (each field a metric).
    pub fn log_serde<T: serde::Serialize + ?Sized>(&mut self, metrics: &T) -> Result<u64> {
        let m = crate::value_serde::to_metrics(metrics)?;
        self.log(m)
    }

    /// Logs many rows with one write (one frame of up to 4 MiB; one fsync under [`SyncPolicy::Always`]).
    /// Every step is checked first: if any is not increasing, nothing is written. Returns the last step.
    pub fn log_batch<I: IntoIterator<Item = (Option<u64>, Metrics)>>(&mut self, rows: I) -> Result<Option<u64>> {
        let owned: Vec<(Option<u64>, Metrics)> = rows.into_iter().collect();
        if owned.is_empty() {
            return Ok(None);
        }
        let rows: Vec<(Option<u64>, Option<f64>, &Metrics)> = owned.iter().map(|(s, m)| (*s, None, m)).collect();
        // One frame for the batch: write the buffer only at the end (unless it outgrows a frame).
        let saved = {
            let mut core = self.core();
            let saved = core.buffer_size;
            core.buffer_size = saved.max(BATCH_FRAME_SIZE);
            saved
        };
        let res = self.log_rows(&rows);
        let mut core = self.core();
        core.buffer_size = saved;
        res.and_then(|s| {
            if core.buf.len() >= saved || core.policy == SyncPolicy::Always {
                core.flush_frame()?;
            }
            core.after_write()?;
            Ok(s)
        })
    }

    /// Merges a patch into the run's config (positioned at the current step).
    pub fn set_config(&mut self, patch: Metrics) -> Result<()> {
        self.core().append_other(Other::Config, Some(&patch), 0)
    }

    /// Sets explicit summary values; they override the automatic last-value summary.
    pub fn set_summary(&mut self, patch: Metrics) -> Result<()> {
        self.core().append_other(Other::Summary, Some(&patch), 0)
    }

    /// Logs a system-metrics sample at the current step (it does not advance the step).
    pub fn log_system(&mut self, metrics: Metrics) -> Result<()> {
        self.core().append_other(Other::System, Some(&metrics), 0)
    }

    /// Marks the run finished with `exit_code`, makes everything durable and releases the run.
    pub fn finish(self, exit_code: i32) -> Result<()> {
        let mut core = self.core();
        core.append_other(Other::Finish, None, exit_code)?;
        core.sync()
    }

    /// Writes buffered events to the OS: visible to readers, not yet durable.
    pub fn flush(&mut self) -> Result<()> {
        let mut core = self.core();
        core.check()?;
        core.flush_frame()
    }

    /// Makes every event appended so far durable. A failed fsync poisons the writer: it is never retried.
    pub fn sync(&mut self) -> Result<()> {
        self.core().sync()
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        let _ = self.core().close();
        self.store.unregister_writer(&self.id);
    }
}
