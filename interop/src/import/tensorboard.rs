//! TensorBoard event files (`events.out.tfevents.*`), as tensorboardX and TensorBoard's own TF-free writer
//! write them.
//!
//! A source is a log directory: each folder holding event files is one run, its id the folder's path
//! relative to the source with `/` → `.` (the source's own name when the files sit in it directly). A run's
//! files apply in name (= creation time) order; each is a TFRecord file ([`super::tfrecord`]) of `Event`
//! protobufs (field numbers from `tensorboard/compat/proto/{event,summary,tensor}.proto`).
//!
//! - Scalars, as `Summary.Value.simple_value` (float32) or as scalar tensors (DT_FLOAT / DT_DOUBLE in
//!   `float_val` / `double_val` / `tensor_content`; integer, bool and string scalars too), become metrics keyed
//!   by tag; float32 values are widened to f64. The events of one step merge into one row; the row time is
//!   the latest `wall_time` of its events. Non-scalar summaries (histograms, images, audio) are skipped and
//!   counted in a warning.
//! - A restart that goes back in steps is a **rewind** at that step − 1: a `SessionLog START` at a step not
//!   above the last one (what `purge_step` writes), or a tag whose step goes back. This is what TensorBoard's
//!   classic reader (`EventAccumulator`) shows after its purge; the purged rows stay readable in the archived
//!   version.
//! - hparams (`_hparams_/session_start_info`, the HParams plugin's `SessionStartInfo.hparams`) → config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forklog::{Metrics, Value};
use prost::Message;

use super::assemble::{Assembler, Restart};
use super::tfrecord;
use super::{
    read_file, sanitize_id, walk_files, Decoded, ImportError, InputError, Origin, PlanEvent, RunMeta, RunPlan,
};

/// `Event`: wall_time=1, step=2, file_version=3, summary=5, session_log=7.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `brain.Event:2` in the first record of a file.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// Summary values.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
    /// Session status (START marks a restart).
    #[prost(message, optional, tag = "7")]
    pub session_log: Option<SessionLog>,
}

/// `SessionLog`: status=1 (START = 1), checkpoint_path=2, msg=3.
#[derive(Clone, PartialEq, Message)]
pub struct SessionLog {
    /// 1 = START, 2 = STOP, 3 = CHECKPOINT.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `Summary`: value=1.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value`: tag=1, metadata=9 and the value oneof (simple_value=2, image=4, histo=5, audio=6, tensor=8).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The tag (metric key).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Plugin metadata (sent with a tag's first value).
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value.
    #[prost(oneof = "ValueKind", tags = "2, 3, 4, 5, 6, 8")]
    pub value: Option<ValueKind>,
}

/// `Summary.Value`'s value.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueKind {
    /// A float32 scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// An old-style histogram.
    #[prost(bytes, tag = "3")]
    ObsoleteHistogram(Vec<u8>),
    /// An image.
    #[prost(bytes, tag = "4")]
    Image(Vec<u8>),
    /// A histogram.
    #[prost(bytes, tag = "5")]
    Histo(Vec<u8>),
    /// Audio.
    #[prost(bytes, tag = "6")]
    Audio(Vec<u8>),
    /// A tensor.
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `SummaryMetadata`: plugin_data=1, display_name=2, summary_description=3, data_class=4.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    /// The plugin.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// 1 = SCALAR.
    #[prost(int32, tag = "4")]
    pub data_class: i32,
}

/// `PluginData`: plugin_name=1, content=2.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    /// e.g. `scalars`, `hparams`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// Plugin-specific bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `TensorProto`: dtype=1, tensor_shape=2, tensor_content=4, float_val=5, double_val=6, int_val=7,
/// string_val=8, int64_val=10, bool_val=11.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// DT_FLOAT=1, DT_DOUBLE=2, DT_INT32=3, DT_STRING=7, DT_INT64=9, DT_BOOL=10...
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
    /// Raw little-endian values.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// Float values.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// Double values.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// Int32 values.
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// String values.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
    /// Int64 values.
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    /// Bool values.
    #[prost(bool, repeated, tag = "11")]
    pub bool_val: Vec<bool>,
}

/// `TensorShapeProto`: dim=2.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShape {
    /// Dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// `TensorShapeProto.Dim`: size=1.
#[derive(Clone, PartialEq, Message)]
pub struct Dim {
    /// Size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// The HParams plugin's `HParamsPluginData`: session_start_info=3.
#[derive(Clone, PartialEq, Message)]
pub struct HParamsPluginData {
    /// Set in `_hparams_/session_start_info`.
    #[prost(message, optional, tag = "3")]
    pub session_start_info: Option<SessionStartInfo>,
}

/// `SessionStartInfo`: hparams=1 (map<string, google.protobuf.Value>), group_name=4.
#[derive(Clone, PartialEq, Message)]
pub struct SessionStartInfo {
    /// The hyperparameters.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, PbValue>,
    /// The session group.
    #[prost(string, tag = "4")]
    pub group_name: String,
}

/// `google.protobuf.Value`.
#[derive(Clone, PartialEq, Message)]
pub struct PbValue {
    /// The value.
    #[prost(oneof = "PbKind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<PbKind>,
}

/// `google.protobuf.Value`'s kind.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PbKind {
    /// null.
    #[prost(int32, tag = "1")]
    Null(i32),
    /// A number.
    #[prost(double, tag = "2")]
    Number(f64),
    /// A string.
    #[prost(string, tag = "3")]
    Str(String),
    /// A boolean.
    #[prost(bool, tag = "4")]
    Bool(bool),
    /// A struct.
    #[prost(message, tag = "5")]
    Struct(PbStruct),
    /// A list.
    #[prost(message, tag = "6")]
    List(PbList),
}

/// `google.protobuf.Struct`.
#[derive(Clone, PartialEq, Message)]
pub struct PbStruct {
    /// Fields.
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, PbValue>,
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, Message)]
pub struct PbList {
    /// Values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<PbValue>,
}

fn pb_to_value(v: &PbValue) -> Value {
    match &v.kind {
        None | Some(PbKind::Null(_)) => Value::Null,
        Some(PbKind::Number(x)) => Value::Float(*x),
        Some(PbKind::Str(s)) => Value::Str(s.clone()),
        Some(PbKind::Bool(b)) => Value::Bool(*b),
        Some(PbKind::Struct(s)) => {
            Value::Map(s.fields.iter().map(|(k, v)| (k.as_str().into(), pb_to_value(v))).collect())
        }
        Some(PbKind::List(l)) => Value::List(l.values.iter().map(pb_to_value).collect()),
    }
}

/// The value of a scalar tensor, `None` for a non-scalar or unsupported one.
fn tensor_scalar(t: &TensorProto) -> Option<Value> {
    let elems: i64 = t.tensor_shape.as_ref().map_or(1, |s| s.dim.iter().map(|d| d.size).product());
    if elems != 1 {
        return None;
    }
    let c = &t.tensor_content;
    match t.dtype {
        1 => first_or_content(&t.float_val, c, f32::from_le_bytes).map(|x| Value::Float(f64::from(x))),
        2 => first_or_content(&t.double_val, c, f64::from_le_bytes).map(Value::Float),
        3 => first_or_content(&t.int_val, c, i32::from_le_bytes).map(|i| Value::Int(i64::from(i))),
        9 => first_or_content(&t.int64_val, c, i64::from_le_bytes).map(Value::Int),
        10 => first_or_content(&t.bool_val, c, |b: [u8; 1]| b[0] != 0).map(Value::Bool),
        7 => t.string_val.first().map(|s| Value::Str(String::from_utf8_lossy(s).into_owned())),
        _ => None,
    }
}

/// The first element of a tensor's typed value field, or else the first one packed little-endian in its
/// `tensor_content` (`N` bytes).
fn first_or_content<T: Copy, const N: usize>(vals: &[T], content: &[u8], from_le: fn([u8; N]) -> T) -> Option<T> {
    vals.first().copied().or_else(|| content.get(..N).and_then(|b| <[u8; N]>::try_from(b).ok()).map(from_le))
}

/// One run folder and its event files (name order).
fn run_folders(src: &Path) -> Result<Vec<(String, PathBuf, Vec<PathBuf>)>, InputError> {
    let meta = std::fs::metadata(src).map_err(|e| InputError::whole(src, format!("cannot read: {e}")))?;
    let is_event =
        |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events.out.tfevents."));
    let (root, files) = if meta.is_file() {
        let parent = src.parent().unwrap_or(Path::new(".")).to_path_buf();
        (parent, vec![src.to_path_buf()])
    } else {
        (src.to_path_buf(), walk_files(src, &is_event)?)
    };
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let dir = f.parent().unwrap_or(Path::new(".")).to_path_buf();
        by_dir.entry(dir).or_default().push(f);
    }
    if by_dir.is_empty() {
        return Err(InputError::whole(src, "no events.out.tfevents.* files found"));
    }
    let base_name = || {
        std::fs::canonicalize(&root)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "run".into())
    };
    Ok(by_dir
        .into_iter()
        .map(|(dir, mut files)| {
            files.sort();
            let rel = dir.strip_prefix(&root).map(Path::to_path_buf).unwrap_or_default();
            let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let id = if parts.is_empty() { base_name() } else { parts.join(".") };
            (id, dir, files)
        })
        .collect())
}

/// Decodes every run folder of a log directory (a damaged run fails alone).
pub fn plans(src: &Path) -> Result<Decoded, ImportError> {
    let mut out = Decoded::default();
    for (id, dir, files) in run_folders(src)? {
        match plan_run(&id, &dir, &files) {
            Ok(p) => out.plans.push(p),
            Err(e) => out.failed.push(e.into()),
        }
    }
    Ok(out)
}

/// What decoding one event file adds to a run.
struct RunState {
    asm: Assembler,
    plugin: BTreeMap<String, String>,
    skipped: u64,
    first_time: Option<f64>,
    config: Metrics,
    group: Option<String>,
}

/// Decodes one event file's bytes into the run being assembled.
fn add_file(st: &mut RunState, path: &Path, data: &[u8]) -> Result<(), InputError> {
    for rec in tfrecord::records(data) {
        let (off, body) = rec.map_err(|(off, why)| InputError::at_offset(path, off, why))?;
        let bad = |why: String| InputError::at_offset(path, off, why);
        let ev = Event::decode(body).map_err(|e| bad(format!("undecodable Event: {e}")))?;
        let step = u64::try_from(ev.step).map_err(|_| bad(format!("negative step {}", ev.step)))?;
        let time = ev.wall_time;
        if st.first_time.is_none() && time > 0.0 {
            st.first_time = Some(time);
        }
        if ev.session_log.as_ref().is_some_and(|s| s.status == 1) {
            st.asm.restart(step, time).map_err(bad)?;
        }
        let Some(summary) = ev.summary else { continue };
        for v in summary.value {
            if let Some(p) = v.metadata.as_ref().and_then(|m| m.plugin_data.as_ref()) {
                st.plugin.insert(v.tag.clone(), p.plugin_name.clone());
                if p.plugin_name == "hparams" {
                    if v.tag == "_hparams_/session_start_info" {
                        let hp = HParamsPluginData::decode(p.content.as_slice())
                            .map_err(|e| bad(format!("undecodable hparams plugin data: {e}")))?;
                        if let Some(ssi) = hp.session_start_info {
                            for (k, val) in &ssi.hparams {
                                st.config.insert(k.as_str().into(), pb_to_value(val));
                            }
                            if !ssi.group_name.is_empty() {
                                st.group = Some(ssi.group_name);
                            }
                        }
                    }
                    continue;
                }
            }
            if st.plugin.get(&v.tag).is_some_and(|p| p == "hparams") {
                continue;
            }
            let value = match &v.value {
                Some(ValueKind::SimpleValue(x)) => Some(Value::Float(f64::from(*x))),
                Some(ValueKind::Tensor(t)) => tensor_scalar(t),
                _ => None,
            };
            match value {
                Some(val) => st.asm.point(step, time, &v.tag, val).map_err(bad)?,
                None => st.skipped += 1,
            }
        }
    }
    Ok(())
}

/// Decodes one run folder's event files (in name order) into a plan.
pub fn plan_run(id: &str, dir: &Path, files: &[PathBuf]) -> Result<RunPlan, InputError> {
    let mut st = RunState {
        asm: Assembler::new(Restart::PerKey),
        plugin: BTreeMap::new(),
        skipped: 0,
        first_time: None,
        config: Metrics::new(),
        group: None,
    };
    for f in files {
        let data = read_file(f)?;
        add_file(&mut st, f, &data)?;
    }
    let mut parts = st.asm.finish();
    if !st.config.is_empty() {
        // hparams describe the whole run: they go first (before any row), so forks and rewinds keep them.
        if let Some(p) = parts.first_mut() {
            p.events.insert(0, PlanEvent::Config(st.config));
        }
    }
    Ok(finish_plan(id, dir, parts, st.first_time, st.skipped, st.group))
}

fn finish_plan(
    id: &str,
    dir: &Path,
    parts: Vec<super::Part>,
    first_time: Option<f64>,
    skipped: u64,
    group: Option<String>,
) -> RunPlan {
    let mut warnings = Vec::new();
    if skipped > 0 {
        warnings.push(format!(
            "{}: skipped {skipped} non-scalar summary values (histograms, images, audio, tensors)",
            dir.display()
        ));
    }
    RunPlan {
        source: dir.to_path_buf(),
        source_id: sanitize_id(id),
        start_time: first_time.unwrap_or(0.0),
        origin: Origin::New,
        parts,
        meta: RunMeta { group, ..RunMeta::default() },
        warnings,
    }
}

/// Decodes event-file bytes as one run (for fuzzing and tests): the plan, or the first problem.
pub fn plan_bytes(path: &Path, data: &[u8]) -> Result<RunPlan, InputError> {
    let mut st = RunState {
        asm: Assembler::new(Restart::PerKey),
        plugin: BTreeMap::new(),
        skipped: 0,
        first_time: None,
        config: Metrics::new(),
        group: None,
    };
    add_file(&mut st, path, data)?;
    Ok(finish_plan("run", path, st.asm.finish(), st.first_time, st.skipped, st.group))
}
