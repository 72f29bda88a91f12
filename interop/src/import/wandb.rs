//! W&B offline runs (`run-<id>.wandb`, as wandb 0.31's `wandb-core` writes them).
//!
//! **Framing** ([`read_records`]): a 7-byte file header (`:W&B`, `u16` LE 0xBEE1, a version byte 0), then
//! LevelDB-style 32 KiB blocks (counted from offset 0, so the header sits in block 0) of records, each with a
//! 7-byte header `u32` LE checksum, `u16` LE length, `u8` type (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST); the
//! checksum is plain CRC-32 (IEEE, zlib's) over the type byte and the payload. Fewer than 7 bytes left in a
//! block are zero padding. A file cut short inside its last record (a client killed mid-write) yields every
//! complete record and the number of bytes dropped; anything else that does not check is an error naming
//! the byte offset.
//!
//! **Records**: each payload is a protobuf `wandb_internal.Record`; the structs below carry the field numbers
//! of the descriptors shipped as `wandb/proto/v7/wandb_internal_pb2.py`.
//!
//! **Mapping**: history rows → `Log` (keys: `key`, or `nested_key` joined with `.`; values from `value_json`
//! or the typed fields; `_step` is the step, `_timestamp` the row time, `_runtime` stays a metric); the run
//! record's config and later config records → config patches (removals become `null`); summary records,
//! applied in order (removals included), → one summary patch at the end holding the final summary (removed
//! keys as `null`); stats records → `System` samples with their own time; the exit record → `Finish`; the
//! run record's `branch_point` → a fork of another run (`fork_from`) or a rewind of this one (`resume_from`);
//! a run record with `resumed` set (a `resume=` continuation) appends to the run imported before it.
//! Display name, tags, notes, group (and entity, project, job type, host) → [`RunMeta`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forklog::{Metrics, Value};
use prost::Message;

use super::assemble::{Assembler, Restart};
use super::{json_value, read_file, walk_files, Decoded, ImportError, InputError, Origin, PlanEvent, RunMeta, RunPlan};

/// Size of a framing block.
pub const BLOCK: usize = 32 * 1024;
/// File header: `:W&B`, 0xBEE1 (LE), version 0.
pub const FILE_HEADER: [u8; 7] = [0x3a, 0x57, 0x26, 0x42, 0xe1, 0xbe, 0x00];
const REC_HEADER: usize = 7;

/// The records of a `.wandb` file and what a cut-short tail dropped.
#[derive(Debug, Default, PartialEq)]
pub struct Records {
    /// Each complete record: the byte offset of its first fragment's header, and its payload.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Bytes at the end of the file that did not form a complete record (a truncated last write).
    pub dropped: u64,
}

/// Splits a `.wandb` file into record payloads (see the module docs). `Err((offset, reason))` on damage.
pub fn read_records(data: &[u8]) -> Result<Records, (u64, String)> {
    if data.len() < FILE_HEADER.len() {
        return Err((0, format!("file of {} bytes is shorter than the 7-byte W&B header", data.len())));
    }
    if data[..4] != FILE_HEADER[..4] || data[4..6] != FILE_HEADER[4..6] {
        return Err((0, "not a W&B file (expected the header \":W&B\", 0xBEE1)".into()));
    }
    if data[6] != 0 {
        return Err((6, format!("unsupported W&B file version {}", data[6])));
    }
    let mut out = Records::default();
    let mut pos = FILE_HEADER.len();
    // The logical record being assembled from FIRST/MIDDLE fragments: (start offset, bytes).
    let mut pending: Option<(u64, Vec<u8>)> = None;
    let len = data.len();
    while pos < len {
        let block_left = BLOCK - pos % BLOCK;
        if block_left < REC_HEADER {
            if data[pos..len.min(pos + block_left)].iter().any(|&b| b != 0) {
                return Err((pos as u64, "non-zero bytes in a block's trailing padding".into()));
            }
            pos += block_left;
            continue;
        }
        let start = pending.as_ref().map_or(pos as u64, |p| p.0);
        if len - pos < REC_HEADER {
            out.dropped = (len as u64) - start;
            return Ok(out);
        }
        let h = &data[pos..pos + REC_HEADER];
        let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let n = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let kind = h[6];
        if crc == 0 && n == 0 && kind == 0 && data[pos..].iter().all(|&b| b == 0) {
            // Zero-filled tail (preallocated or never written): nothing more was recorded.
            out.dropped = (len as u64) - start;
            return Ok(out);
        }
        if REC_HEADER + n > block_left {
            return Err((pos as u64, format!("record length {n} runs past the end of its 32 KiB block")));
        }
        if pos + REC_HEADER + n > len {
            out.dropped = (len as u64) - start;
            return Ok(out);
        }
        let payload = &data[pos + REC_HEADER..pos + REC_HEADER + n];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind]);
        hasher.update(payload);
        let got = hasher.finalize();
        if got != crc {
            return Err((pos as u64, format!("checksum mismatch: stored {crc:#010x}, computed {got:#010x}")));
        }
        match (kind, pending.take()) {
            (1, None) => out.records.push((pos as u64, payload.to_vec())),
            (2, None) => pending = Some((pos as u64, payload.to_vec())),
            (3, Some((s, mut buf))) => {
                buf.extend_from_slice(payload);
                pending = Some((s, buf));
            }
            (4, Some((s, mut buf))) => {
                buf.extend_from_slice(payload);
                out.records.push((s, buf));
            }
            (1 | 2, Some(_)) | (3 | 4, None) => {
                return Err((pos as u64, format!("record fragment of type {kind} out of sequence")));
            }
            _ => return Err((pos as u64, format!("unknown record type {kind}"))),
        }
        pos += REC_HEADER + n;
    }
    if let Some((s, _)) = pending {
        out.dropped = (len as u64) - s;
    }
    Ok(out)
}

/// `wandb_internal.Record` (only the fields forklog reads).
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// Record number.
    #[prost(int64, tag = "1")]
    pub num: i64,
    /// A history row.
    #[prost(message, optional, tag = "2")]
    pub history: Option<HistoryRecord>,
    /// A summary update.
    #[prost(message, optional, tag = "3")]
    pub summary: Option<ConfigRecord>,
    /// A config update.
    #[prost(message, optional, tag = "5")]
    pub config: Option<ConfigRecord>,
    /// A system-metrics sample.
    #[prost(message, optional, tag = "7")]
    pub stats: Option<StatsRecord>,
    /// The run record.
    #[prost(message, optional, tag = "17")]
    pub run: Option<RunRecord>,
    /// The exit record.
    #[prost(message, optional, tag = "18")]
    pub exit: Option<RunExitRecord>,
}

/// `HistoryRecord`: item=1, step=2.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryRecord {
    /// The row's items.
    #[prost(message, repeated, tag = "1")]
    pub item: Vec<HistoryItem>,
    /// The step (repeats the `_step` item).
    #[prost(message, optional, tag = "2")]
    pub step: Option<HistoryStep>,
}

/// `HistoryStep`: num=1.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryStep {
    /// The step.
    #[prost(int64, tag = "1")]
    pub num: i64,
}

/// `HistoryItem`: key=1, nested_key=2, the typed oneof (none=3, boolean=4, integer=5, number=6, text=7,
/// json=8), value_json=16.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryItem {
    /// Flat key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Nested key parts.
    #[prost(string, repeated, tag = "2")]
    pub nested_key: Vec<String>,
    /// The typed value, when set.
    #[prost(oneof = "Typed", tags = "3, 4, 5, 6, 7, 8")]
    pub typed: Option<Typed>,
    /// The value as JSON.
    #[prost(string, tag = "16")]
    pub value_json: String,
}

/// `HistoryItem`'s typed value.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Typed {
    /// JSON null.
    #[prost(int32, tag = "3")]
    None(i32),
    /// A boolean.
    #[prost(bool, tag = "4")]
    Boolean(bool),
    /// An integer.
    #[prost(sint64, tag = "5")]
    Integer(i64),
    /// A float.
    #[prost(double, tag = "6")]
    Number(f64),
    /// A string.
    #[prost(string, tag = "7")]
    Text(String),
    /// A JSON text.
    #[prost(string, tag = "8")]
    Json(String),
}

/// `ConfigRecord` / `SummaryRecord`: update=1, remove=2.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigRecord {
    /// Keys set.
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<ConfigItem>,
    /// Keys removed.
    #[prost(message, repeated, tag = "2")]
    pub remove: Vec<ConfigItem>,
}

/// `ConfigItem` / `SummaryItem`: key=1, nested_key=2, value_json=16.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigItem {
    /// Flat key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Nested key parts.
    #[prost(string, repeated, tag = "2")]
    pub nested_key: Vec<String>,
    /// The value as JSON.
    #[prost(string, tag = "16")]
    pub value_json: String,
}

/// `StatsRecord`: stats_type=1, timestamp=2, item=3.
#[derive(Clone, PartialEq, Message)]
pub struct StatsRecord {
    /// 0 = SYSTEM.
    #[prost(int32, tag = "1")]
    pub stats_type: i32,
    /// Sample time.
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<Timestamp>,
    /// The sampled values.
    #[prost(message, repeated, tag = "3")]
    pub item: Vec<StatsItem>,
}

/// `StatsItem`: key=1, value_json=16.
#[derive(Clone, PartialEq, Message)]
pub struct StatsItem {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value as JSON.
    #[prost(string, tag = "16")]
    pub value_json: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// Seconds since the epoch as a float.
    pub fn secs(&self) -> f64 {
        self.seconds as f64 + f64::from(self.nanos) * 1e-9
    }
}

/// `RunRecord` (the fields forklog maps).
#[derive(Clone, PartialEq, Message)]
pub struct RunRecord {
    /// Run id.
    #[prost(string, tag = "1")]
    pub run_id: String,
    /// Entity.
    #[prost(string, tag = "2")]
    pub entity: String,
    /// Project.
    #[prost(string, tag = "3")]
    pub project: String,
    /// Initial config.
    #[prost(message, optional, tag = "4")]
    pub config: Option<ConfigRecord>,
    /// Initial summary.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<ConfigRecord>,
    /// Group.
    #[prost(string, tag = "6")]
    pub run_group: String,
    /// Job type.
    #[prost(string, tag = "7")]
    pub job_type: String,
    /// Display name.
    #[prost(string, tag = "8")]
    pub display_name: String,
    /// Notes.
    #[prost(string, tag = "9")]
    pub notes: String,
    /// Tags.
    #[prost(string, repeated, tag = "10")]
    pub tags: Vec<String>,
    /// Host.
    #[prost(string, tag = "13")]
    pub host: String,
    /// Start time.
    #[prost(message, optional, tag = "17")]
    pub start_time: Option<Timestamp>,
    /// Set when the run continues an earlier one (`resume=`).
    #[prost(bool, tag = "18")]
    pub resumed: bool,
    /// Where the run branches from (fork_from / resume_from).
    #[prost(message, optional, tag = "23")]
    pub branch_point: Option<BranchPoint>,
}

/// `BranchPoint`: run=1, value=2, metric=3.
#[derive(Clone, PartialEq, Message)]
pub struct BranchPoint {
    /// The run branched from.
    #[prost(string, tag = "1")]
    pub run: String,
    /// The metric value (the step for `_step`).
    #[prost(double, tag = "2")]
    pub value: f64,
    /// The metric (`_step`).
    #[prost(string, tag = "3")]
    pub metric: String,
}

/// `RunExitRecord`: exit_code=1, runtime=2.
#[derive(Clone, PartialEq, Message)]
pub struct RunExitRecord {
    /// Exit code.
    #[prost(int32, tag = "1")]
    pub exit_code: i32,
    /// Runtime in seconds.
    #[prost(int32, tag = "2")]
    pub runtime: i32,
}

/// Frames record payloads the way wandb-core does: the file header, FULL records, FIRST/MIDDLE/LAST
/// fragments across 32 KiB blocks, zero padding when fewer than 7 bytes are left in a block. (For tests,
/// fuzzing and tools; forklog does not write W&B files.)
pub fn write_records(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = FILE_HEADER.to_vec();
    for p in payloads {
        let mut rest: &[u8] = p;
        let mut first = true;
        loop {
            let left = BLOCK - out.len() % BLOCK;
            if left < REC_HEADER {
                out.extend(std::iter::repeat_n(0, left));
                continue;
            }
            let n = rest.len().min(left - REC_HEADER);
            let last = n == rest.len();
            let kind = match (first, last) {
                (true, true) => 1u8,
                (true, false) => 2,
                (false, false) => 3,
                (false, true) => 4,
            };
            let mut h = crc32fast::Hasher::new();
            h.update(&[kind]);
            h.update(&rest[..n]);
            out.extend_from_slice(&h.finalize().to_le_bytes());
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.push(kind);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            first = false;
            if last {
                break;
            }
        }
    }
    out
}

fn item_key(key: &str, nested: &[String]) -> String {
    if key.is_empty() {
        nested.join(".")
    } else {
        key.to_string()
    }
}

/// Finds the `.wandb` files of a source: the file itself, or every `*.wandb` below a folder.
pub fn find_files(src: &Path) -> Result<Vec<PathBuf>, InputError> {
    let meta = std::fs::metadata(src).map_err(|e| InputError::whole(src, format!("cannot read: {e}")))?;
    if meta.is_file() {
        return Ok(vec![src.to_path_buf()]);
    }
    let files = walk_files(src, &|p| p.extension().is_some_and(|e| e == "wandb"))?;
    if files.is_empty() {
        return Err(InputError::whole(src, "no .wandb files found"));
    }
    Ok(files)
}

/// Decodes every `.wandb` file of `src` into plans (one per file; a damaged file fails alone).
pub fn plans(src: &Path) -> Result<Decoded, ImportError> {
    let mut out = Decoded::default();
    for f in find_files(src)? {
        match read_file(&f).and_then(|data| plan_file(&f, &data)) {
            Ok(p) => out.plans.push(p),
            Err(e) => out.failed.push(e.into()),
        }
    }
    Ok(out)
}

/// Decodes one `.wandb` file's bytes into a plan.
pub fn plan_file(path: &Path, data: &[u8]) -> Result<RunPlan, InputError> {
    let recs = read_records(data).map_err(|(off, why)| InputError::at_offset(path, off, why))?;
    let mut asm = Assembler::new(Restart::PerRow);
    let mut run: Option<RunRecord> = None;
    let mut summary: BTreeMap<String, Value> = BTreeMap::new();
    let mut exit = None;
    let mut warnings = Vec::new();
    let bad = |off: u64, why: String| InputError::at_offset(path, off, why);
    for (off, payload) in &recs.records {
        let rec = Record::decode(payload.as_slice()).map_err(|e| bad(*off, format!("undecodable Record: {e}")))?;
        if let Some(r) = rec.run {
            if run.is_some() {
                // A second run record (the client re-sent it): only its config is new information.
                if let Some(c) = &r.config {
                    asm.event(PlanEvent::Config(config_patch(c).map_err(|w| bad(*off, w))?));
                }
                continue;
            }
            if let Some(c) = &r.config {
                asm.event(PlanEvent::Config(config_patch(c).map_err(|w| bad(*off, w))?));
            }
            if let Some(s) = &r.summary {
                apply_summary(&mut summary, s).map_err(|w| bad(*off, w))?;
            }
            run = Some(r);
        } else if let Some(h) = rec.history {
            let (step, time, metrics) = history_row(&h).map_err(|w| bad(*off, w))?;
            asm.row(step, time, metrics).map_err(|w| bad(*off, w))?;
        } else if let Some(c) = rec.config {
            asm.event(PlanEvent::Config(config_patch(&c).map_err(|w| bad(*off, w))?));
        } else if let Some(s) = rec.summary {
            apply_summary(&mut summary, &s).map_err(|w| bad(*off, w))?;
        } else if let Some(s) = rec.stats {
            let time = s.timestamp.as_ref().map_or(0.0, Timestamp::secs);
            let mut m = Metrics::new();
            for it in &s.item {
                m.insert(it.key.as_str().into(), json_value(&it.value_json).map_err(|w| bad(*off, w))?);
            }
            asm.event(PlanEvent::System { time, metrics: m });
        } else if let Some(e) = rec.exit {
            exit = Some(e.exit_code);
        }
    }
    let run = run.ok_or_else(|| InputError::whole(path, "no run record (not a complete W&B run file)"))?;
    if recs.dropped > 0 {
        warnings.push(format!(
            "{}: the last {} bytes are a truncated record (the client stopped mid-write); imported the {} complete records before them",
            path.display(),
            recs.dropped,
            recs.records.len()
        ));
    }
    if !summary.is_empty() {
        asm.event(PlanEvent::Summary(summary.into_iter().map(|(k, v)| (k.into(), v)).collect()));
    }
    if let Some(code) = exit {
        asm.event(PlanEvent::Finish(code));
    }
    let origin = match &run.branch_point {
        Some(bp) if !bp.run.is_empty() => {
            if bp.metric != "_step" && !bp.metric.is_empty() {
                return Err(InputError::whole(
                    path,
                    format!("branch point on metric {:?}: only _step is supported", bp.metric),
                ));
            }
            if !(bp.value >= 0.0 && bp.value.fract() == 0.0 && bp.value < 9.0e15) {
                return Err(InputError::whole(path, format!("branch point step {} is not a step", bp.value)));
            }
            let step = bp.value as u64;
            if bp.run == run.run_id {
                Origin::Rewind { step }
            } else {
                Origin::Fork { parent: bp.run.clone(), step }
            }
        }
        _ if run.resumed => Origin::Continue,
        _ => Origin::New,
    };
    let mut meta = RunMeta {
        display_name: Some(run.display_name.clone()).filter(|s| !s.is_empty()),
        tags: run.tags.clone(),
        notes: Some(run.notes.clone()).filter(|s| !s.is_empty()),
        group: Some(run.run_group.clone()).filter(|s| !s.is_empty()),
        extra: BTreeMap::new(),
    };
    for (k, v) in [("entity", &run.entity), ("project", &run.project), ("job_type", &run.job_type), ("host", &run.host)]
    {
        if !v.is_empty() {
            meta.extra.insert(format!("wandb.{k}"), v.clone());
        }
    }
    Ok(RunPlan {
        source: path.to_path_buf(),
        source_id: run.run_id.clone(),
        start_time: run.start_time.as_ref().map_or(0.0, Timestamp::secs),
        origin,
        parts: asm.finish(),
        meta,
        warnings,
    })
}

/// A history record as (step, time, metrics).
fn history_row(h: &HistoryRecord) -> Result<(u64, f64, Metrics), String> {
    let mut m = Metrics::new();
    let mut step = h.step.as_ref().map(|s| s.num);
    let mut time = None;
    for it in &h.item {
        let key = item_key(&it.key, &it.nested_key);
        let v = match &it.typed {
            Some(Typed::None(_)) => Value::Null,
            Some(Typed::Boolean(b)) => Value::Bool(*b),
            Some(Typed::Integer(i)) => Value::Int(*i),
            Some(Typed::Number(x)) => Value::Float(*x),
            Some(Typed::Text(t)) => Value::Str(t.clone()),
            Some(Typed::Json(j)) => json_value(j)?,
            None => json_value(&it.value_json)?,
        };
        match key.as_str() {
            "_step" => {
                step = Some(v.as_i64().ok_or_else(|| format!("_step {v} is not an integer"))?);
            }
            "_timestamp" => time = Some(v.as_f64().ok_or_else(|| format!("_timestamp {v} is not a number"))?),
            _ => {
                m.insert(key.into(), v);
            }
        }
    }
    let step = step.unwrap_or(0);
    let step = u64::try_from(step).map_err(|_| format!("negative step {step}"))?;
    Ok((step, time.unwrap_or(0.0), m))
}

/// A config record as a patch (removed keys become `null`).
fn config_patch(c: &ConfigRecord) -> Result<Metrics, String> {
    let mut m = Metrics::new();
    for it in &c.update {
        m.insert(item_key(&it.key, &it.nested_key).into(), json_value(&it.value_json)?);
    }
    for it in &c.remove {
        m.insert(item_key(&it.key, &it.nested_key).into(), Value::Null);
    }
    Ok(m)
}

/// Applies a summary record to the summary being rebuilt (removals become `null`, so the key's automatic
/// last value is overridden too).
fn apply_summary(summary: &mut BTreeMap<String, Value>, s: &ConfigRecord) -> Result<(), String> {
    for it in &s.update {
        summary.insert(item_key(&it.key, &it.nested_key), json_value(&it.value_json)?);
    }
    for it in &s.remove {
        summary.insert(item_key(&it.key, &it.nested_key), Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_across_blocks() {
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1000 + usize::from(i) * 97]).collect();
        let data = write_records(&payloads);
        let recs = read_records(&data).unwrap();
        assert_eq!(recs.dropped, 0);
        assert_eq!(recs.records.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), payloads);
        // Cut anywhere: the complete records before the cut survive, the rest is counted as dropped.
        for cut in [data.len() - 1, data.len() - 500, 40_000, 33_000] {
            let recs = read_records(&data[..cut]).unwrap();
            let kept: usize = recs.records.len();
            assert!(kept < payloads.len());
            assert_eq!(recs.records.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), payloads[..kept]);
            let end = recs.records.last().map_or(7, |(off, p)| {
                // Every kept record ends before the dropped bytes start.
                *off as usize + p.len()
            });
            assert!(end <= cut);
            assert!(recs.dropped > 0 && recs.dropped as usize <= cut);
        }
    }

    #[test]
    fn flipped_bit_is_an_error_with_offset() {
        let data = write_records(&[vec![1; 10], vec![2; 10]]);
        let mut bad = data.clone();
        bad[7 + 7 + 10 + 7 + 3] ^= 1;
        let err = read_records(&bad).unwrap_err();
        assert_eq!(err.0, 7 + 7 + 10);
        assert!(err.1.contains("checksum"));
    }
}
