//! The `ops` target's input: store options and an operation sequence decoded with `arbitrary`, run through
//! `forklog::testing::Harness` (real store on `FaultFs` and `Model` side by side). Shared with the corpus
//! generator, which keeps random inputs that exercise the most kinds of outcomes.

use std::sync::Arc;

use arbitrary::Arbitrary;
use forklog::testing::faultfs::{CrashMode, Entries, FaultFs, Unsynced};
use forklog::testing::strategies::{run_id, RunPick, StepPick, KEYS};
use forklog::testing::{Harness, Model, Op};
use forklog::{Metrics, Options, SyncPolicy, Value};

/// Longest operation sequence run per input (each operation is followed by a full comparison).
pub const MAX_OPS: usize = 40;

/// A step choice.
#[derive(Arbitrary, Debug)]
pub enum FStep {
    Next,
    Skip(u8),
    At(u8),
    Max,
    MaxMinus(u8),
}

impl FStep {
    fn pick(&self) -> StepPick {
        match self {
            FStep::Next => StepPick::Next,
            FStep::Skip(n) => StepPick::Skip(u64::from(*n % 8)),
            FStep::At(n) => StepPick::At(u64::from(*n % 64)),
            FStep::Max => StepPick::At(u64::MAX),
            FStep::MaxMinus(n) => StepPick::At(u64::MAX - u64::from(*n % 4)),
        }
    }
    fn absolute(&self) -> u64 {
        match self {
            FStep::Next | FStep::Skip(_) => 0,
            FStep::At(n) => u64::from(*n % 64),
            FStep::Max => u64::MAX,
            FStep::MaxMinus(n) => u64::MAX - u64::from(*n % 4),
        }
    }
}

/// A metric value.
#[derive(Arbitrary, Debug)]
pub enum FValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    SmallFloat(i16),
    Str(String),
    Bytes(Vec<u8>),
    Blob(u16),
    List(Vec<i8>),
    Map(Vec<(u8, i8)>),
}

impl FValue {
    fn value(&self) -> Value {
        match self {
            FValue::Null => Value::Null,
            FValue::Bool(b) => Value::Bool(*b),
            FValue::Int(i) => Value::Int(*i),
            FValue::Float(bits) => Value::Float(f64::from_bits(*bits)),
            FValue::SmallFloat(x) => Value::Float(f64::from(*x) / 8.0),
            FValue::Str(s) => Value::Str(s.chars().take(16).collect()),
            FValue::Bytes(b) => Value::Bytes(b.iter().take(16).copied().collect()),
            // A blob of a few KiB makes small segments roll over.
            FValue::Blob(n) => Value::Bytes(vec![0xa5; usize::from(*n % 6000)]),
            FValue::List(l) => Value::List(l.iter().take(4).map(|x| Value::Int(i64::from(*x))).collect()),
            FValue::Map(m) => {
                Value::Map(m.iter().take(4).map(|(k, v)| (forklog::Key::from(format!("k{}", k % 3)), Value::Int(i64::from(*v)))).collect())
            }
        }
    }
}

/// A metrics map (keys from the testing kit's `KEYS`).
#[derive(Arbitrary, Debug)]
pub struct FMetrics(pub Vec<(u8, FValue)>);

impl FMetrics {
    fn metrics(&self) -> Metrics {
        self.0.iter().take(4).map(|(k, v)| (KEYS[usize::from(*k) % KEYS.len()].into(), v.value())).collect()
    }
}

/// A run choice (resolved by the harness against the store's state).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FRun {
    Id(u8),
    Existing(u8),
    Idle(u8),
    Fresh,
}

impl FRun {
    fn pick(self) -> RunPick {
        match self {
            FRun::Id(n) => RunPick::Id(n),
            FRun::Existing(n) => RunPick::Existing(n),
            FRun::Idle(n) => RunPick::Idle(n),
            FRun::Fresh => RunPick::Fresh,
        }
    }

    /// The run the harness will resolve this to, when that run has an open writer (approximately: this
    /// only steers the fuzzer away from slow `RunBusy` outcomes).
    fn busy(self, model: &Model) -> bool {
        let existing = |n: u8| {
            let ids = model.run_ids();
            if ids.is_empty() {
                run_id(n).to_string()
            } else {
                ids[usize::from(n) % ids.len()].clone()
            }
        };
        match self {
            FRun::Id(n) => model.is_open(run_id(n)),
            FRun::Existing(n) => model.is_open(&existing(n)),
            FRun::Idle(n) => model.live_ids().iter().all(|id| model.is_open(id)) && model.is_open(&existing(n)),
            FRun::Fresh => false,
        }
    }
}

/// One operation; converted to `forklog::testing::Op`.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum FOp {
    Create(FRun),
    Log(u8, FStep, Option<i32>, FMetrics),
    LogBatch(u8, Vec<(FStep, FMetrics)>),
    Config(u8, FMetrics),
    Summary(u8, FMetrics),
    System(u8, FMetrics),
    Finish(u8, i8),
    Close(u8),
    Flush(u8),
    Sync(u8),
    Fork {
        run: FRun,
        parent: FRun,
        version: Option<u8>,
        step: FStep,
    },
    Rewind {
        run: FRun,
        version: Option<u8>,
        step: FStep,
    },
    Resume(FRun),
    Reopen,
    Crash(u64),
    Delete(FRun),
    Gc,
    Verify,
    /// `log_floats`: keys from a three-key set (so rows often repeat their keys: dense rows), maybe repeated.
    LogFloats(u8, FStep, Vec<(u8, i16)>),
    /// `log_columns`: up to three columns of up to 6 values; lengths may disagree with the steps.
    LogColumns(u8, Vec<FStep>, Vec<(u8, Vec<i16>)>),
}

/// Key names of the float operations.
const FLOAT_KEYS: [&str; 3] = ["acc", "loss", "λ"];

impl FOp {
    fn op(&self) -> Op {
        match self {
            FOp::Create(run) => Op::Create { run: run.pick() },
            FOp::Log(writer, step, time, m) => Op::Log {
                writer: *writer,
                step: step.pick(),
                // Whole seconds around 2023, or an edge (0, negative).
                time: time.map(|t| 1_700_000_000.0 + f64::from(t) / 1000.0),
                metrics: m.metrics(),
            },
            FOp::LogBatch(writer, rows) => Op::LogBatch {
                writer: *writer,
                rows: rows.iter().take(6).map(|(s, m)| (s.pick(), m.metrics())).collect(),
            },
            FOp::Config(writer, m) => Op::Config { writer: *writer, patch: m.metrics() },
            FOp::Summary(writer, m) => Op::Summary { writer: *writer, patch: m.metrics() },
            FOp::System(writer, m) => Op::System { writer: *writer, metrics: m.metrics() },
            FOp::Finish(writer, code) => Op::Finish { writer: *writer, exit_code: i32::from(*code) },
            FOp::Close(writer) => Op::Close { writer: *writer },
            FOp::LogFloats(writer, step, row) => Op::LogFloats {
                writer: *writer,
                step: step.pick(),
                row: row
                    .iter()
                    .take(4)
                    .map(|(k, x)| (FLOAT_KEYS[usize::from(*k) % 3].to_string(), f64::from(*x) / 8.0))
                    .collect(),
            },
            FOp::LogColumns(writer, steps, cols) => Op::LogColumns {
                writer: *writer,
                steps: steps.iter().take(6).map(|s| s.pick()).collect(),
                columns: cols
                    .iter()
                    .take(3)
                    .map(|(k, v)| {
                        (
                            FLOAT_KEYS[usize::from(*k) % 3].to_string(),
                            v.iter().take(6).map(|x| f64::from(*x) / 8.0).collect(),
                        )
                    })
                    .collect(),
            },
            FOp::Flush(writer) => Op::Flush { writer: *writer },
            FOp::Sync(writer) => Op::Sync { writer: *writer },
            FOp::Fork { run, parent, version, step } => Op::Fork {
                run: run.pick(),
                parent: parent.pick(),
                version: version.map(|v| v % 4),
                step: step.absolute(),
            },
            FOp::Rewind { run, version, step } => {
                Op::Rewind { run: run.pick(), version: version.map(|v| v % 4), step: step.absolute() }
            }
            FOp::Resume(run) => Op::Resume { run: run.pick() },
            FOp::Reopen => Op::Reopen,
            FOp::Crash(seed) => Op::Crash { seed: *seed },
            FOp::Delete(run) => Op::Delete { run: run.pick() },
            FOp::Gc => Op::Gc,
            FOp::Verify => Op::Verify,
        }
    }

    /// True when the operation needs a run free of writers and would likely get `RunBusy`.
    fn busy(&self, model: &Model) -> bool {
        match self {
            FOp::Rewind { run, .. } | FOp::Resume(run) | FOp::Delete(run) => run.busy(model),
            _ => false,
        }
    }
}

/// A fuzz input: store options, how a crash treats unsynced data, and the operations.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// `SyncPolicy::Always` (crashes then lose data) or `Never`.
    pub always: bool,
    /// Segment size: 4096 + this modulo 8192.
    pub segment_size: u16,
    /// Writer buffer: 1 + this modulo 4096.
    pub buffer_size: u16,
    /// `Unsynced` variant of the crash mode (under `Always`; without fsync a crash is a process kill).
    pub crash_data: u8,
    /// `Entries` variant of the crash mode.
    pub crash_entries: u8,
    /// The operations (at most `MAX_OPS` run).
    pub ops: Vec<FOp>,
}

/// Runs `input`; on a disagreement between store and model, the message and the trace so far.
pub fn run(input: &Input) -> Result<Vec<String>, String> {
    let fs = FaultFs::new();
    let opts = Options::default()
        .vfs(fs.clone())
        .sync(if input.always { SyncPolicy::Always } else { SyncPolicy::Never })
        .segment_size(4096 + u64::from(input.segment_size % 8192))
        .buffer_size(1 + usize::from(input.buffer_size % 4096));
    let mut h = Harness::new(FaultFs::store_path(), opts).map_err(|e| format!("opening a fresh store: {e}"))?;
    let data = Unsynced::ALL[usize::from(input.crash_data) % Unsynced::ALL.len()];
    let entries = Entries::ALL[usize::from(input.crash_entries) % Entries::ALL.len()];
    let crash_fs: Arc<FaultFs> = fs.clone();
    if input.always {
        // Acknowledged means durable: any power loss must keep every acknowledged write.
        h.on_crash(Box::new(move |seed| crash_fs.crash(CrashMode::new(data, entries, seed))));
    } else {
        // Without fsync only a process kill keeps its promise (what was written survives).
        h.on_crash(Box::new(move |seed| crash_fs.crash(CrashMode { seed, ..CrashMode::PROCESS_KILL })));
    }

    // RunBusy costs the engine ~20 ms of lock retries: allow it once per input, skip other such ops.
    let mut busy_budget = 1;
    for fop in input.ops.iter().take(MAX_OPS) {
        if fop.busy(h.model()) {
            if busy_budget == 0 {
                continue;
            }
            busy_budget -= 1;
        }
        if let Err(e) = h.apply(&fop.op()) {
            return Err(format!("store and model disagree: {e}\n--- operations so far ---\n{}", h.trace().join("\n")));
        }
    }
    Ok(h.trace().to_vec())
}
