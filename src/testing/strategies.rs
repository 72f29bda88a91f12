//! [proptest](mod@proptest) strategies for forklog's inputs: values, metric maps, histories, fork trees,
//! store options and the operations of the store state machine ([`Op`]).
//!
//! Sizes are bounded so a case stays small: values nest at most 3 levels deep, maps and lists hold a few
//! entries, and keys come from a small alphabet ([`KEYS`]) so rows share keys and key filters hit.

use std::fmt;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use crate::ids::{ForkPoint, RunRef};
use crate::options::SyncPolicy;
use crate::store::Store;
use crate::value::{Key, Metrics, Value};

use super::model::Model;

/// The metric keys strategies draw from (the empty key and a non-ASCII one included).
pub const KEYS: [&str; 6] = ["loss", "acc", "lr", "y/z.w", "λ", ""];

/// The run ids the state machine uses: few, so creates and forks collide with existing runs.
pub const RUN_IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// The run id for a small index (modulo [`RUN_IDS`]).
pub fn run_id(n: u8) -> &'static str {
    RUN_IDS[usize::from(n) % RUN_IDS.len()]
}

/// Any `f64`, with NaNs (with payloads and sign), infinities, `-0.0` and subnormals well represented.
pub fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6f64..1e6,
        1 => Just(0.0),
        1 => Just(-0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::MIN_POSITIVE / 4.0),
        2 => any::<u64>().prop_map(f64::from_bits),
    ]
}

/// A scalar [`Value`]: null, bool, int, float (see [`float`]), short string or short bytes.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => any::<i64>().prop_map(Value::Int),
        6 => float().prop_map(Value::Float),
        2 => "[a-zλ ]{0,8}".prop_map(Value::Str),
        1 => vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ]
}

/// Any [`Value`]: scalars, and lists and maps nested up to 3 levels with at most 4 entries each.
pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::List),
            btree_map("[a-c]{0,2}", inner, 0..4).prop_map(Value::from),
        ]
    })
}

/// A metric value as trackers log them: mostly floats and ints, sometimes anything, rarely a blob of a few
/// KiB (which makes small segments roll over).
pub fn metric_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => float().prop_map(Value::Float),
        2 => any::<i64>().prop_map(Value::Int),
        2 => value(),
        1 => (0usize..3000).prop_map(|n| Value::Bytes(vec![0xa5; n])),
    ]
}

/// A metric key from [`KEYS`].
pub fn key() -> impl Strategy<Value = Key> {
    proptest::sample::select(&KEYS[..]).prop_map(Key::from)
}

/// A metadata patch: names, notes and groups set, cleared (empty) or left out; tags from a few letters.
pub fn meta_patch() -> impl Strategy<Value = crate::MetaPatch> {
    let text = || proptest::option::of(prop_oneof![Just(String::new()), "[a-c]{1,3}"]);
    let tags = || vec("[a-d]", 0..3);
    (text(), text(), text(), tags(), tags()).prop_map(|(name, notes, group, tags, untags)| {
        let mut p = crate::MetaPatch::new();
        if let Some(n) = name {
            p = p.name(n);
        }
        if let Some(n) = notes {
            p = p.notes(n);
        }
        if let Some(g) = group {
            p = p.group(g);
        }
        for t in tags {
            p = p.tag(t);
        }
        for t in untags {
            p = p.untag(t);
        }
        p
    })
}

/// A [`Metrics`] map with up to `max` keys from [`KEYS`] (possibly empty).
pub fn metrics(max: usize) -> impl Strategy<Value = Metrics> {
    btree_map(key(), metric_value(), 0..=max)
}

/// A row of floats for `log_floats`: keys from a small set so consecutive rows often share them (dense rows),
/// rarely with a key twice.
pub fn float_row() -> impl Strategy<Value = Vec<(String, f64)>> {
    prop_oneof![
        6 => Just(vec!["acc", "loss"]),
        2 => Just(vec!["loss", "acc"]),
        2 => Just(vec!["loss"]),
        1 => Just(vec!["loss", "loss"]),
        1 => Just(vec![]),
    ]
    .prop_flat_map(|keys| {
        let n = keys.len();
        vec(float(), n..=n)
            .prop_map(move |vals| keys.iter().zip(vals).map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>())
    })
}

/// Columns for `log_columns`: up to 6 rows of two or three keys, rarely of mismatched lengths.
pub fn float_columns() -> impl Strategy<Value = Vec<(String, Vec<f64>)>> {
    (0usize..6, prop_oneof![4 => Just(vec!["loss", "acc"]), 1 => Just(vec!["λ", "loss", "z"]), 1 => Just(vec![])])
        .prop_flat_map(|(n, keys)| {
            let cols: Vec<_> = keys
                .into_iter()
                .map(|k| (Just(k.to_string()), prop_oneof![6 => vec(float(), n..=n), 1 => vec(float(), 0..3)]))
                .collect();
            cols
        })
}

/// A history: up to `max_rows` rows with strictly increasing steps starting at 0 or later (gaps allowed).
pub fn history(max_rows: usize) -> impl Strategy<Value = Vec<(u64, Metrics)>> {
    (0u64..3, vec((0u64..3, metrics(3)), 0..=max_rows)).prop_map(|(start, rows)| {
        let mut step = start;
        rows.into_iter()
            .enumerate()
            .map(|(i, (gap, m))| {
                if i > 0 {
                    step += 1 + gap;
                }
                (step, m)
            })
            .collect()
    })
}

/// A step to fork or rewind at: mostly small (inside or just past short histories), sometimes at the very
/// end of the `u64` range.
pub fn fork_step() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => 0u64..40,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
    ]
}

/// One node of a [`ForkTree`].
#[derive(Debug, Clone, PartialEq)]
pub enum TreeOp {
    /// A new root run logging `rows` (steps relative to its start: the step is `next + gap`).
    Root {
        /// `(gap, metrics)` rows.
        rows: Vec<(u64, Metrics)>,
    },
    /// A fork of the run made by node `parent` (modulo the nodes before this one), at `step`, from version
    /// `version` (modulo its versions; `None`: the current one), logging `rows`.
    Fork {
        /// Index of an earlier node.
        parent: usize,
        /// Which version of that run.
        version: Option<u32>,
        /// The fork step.
        step: u64,
        /// `(gap, metrics)` rows logged after the fork.
        rows: Vec<(u64, Metrics)>,
    },
    /// A rewind of the run made by node `run` (modulo the nodes before this one) to `step`, logging `rows`.
    Rewind {
        /// Index of an earlier node.
        run: usize,
        /// The rewind step.
        step: u64,
        /// `(gap, metrics)` rows logged after the rewind.
        rows: Vec<(u64, Metrics)>,
    },
}

/// A tree of runs: roots, forks of any version of earlier runs (forks of forks included), and rewinds.
/// Node `i` that makes a run names it `n{i}`; [`ForkTree::apply`] replays it on a store and a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ForkTree {
    /// The operations, in order; the first is always a [`TreeOp::Root`].
    pub ops: Vec<TreeOp>,
}

impl ForkTree {
    /// Replays the tree on `store` and on `model`: node `i` that makes a run names it `n{i}`; rows are logged
    /// with `log_with_time` (times from a counter, so the model knows them) and every run is finished.
    /// Returns the ids of the runs made, in order.
    pub fn apply(&self, store: &Store, model: &mut Model) -> crate::Result<Vec<String>> {
        let mut made: Vec<String> = Vec::new();
        let mut clock = 1_700_000_000_000_000i64;
        for (i, op) in self.ops.iter().enumerate() {
            let (id, mut w, rows) = match op {
                TreeOp::Fork { parent, version, step, rows } if !made.is_empty() => {
                    let parent = made[parent % made.len()].clone();
                    let current = model.current_version(&parent).unwrap_or(0);
                    let point = ForkPoint {
                        run: RunRef { id: parent, version: version.map(|v| v % (current + 1)) },
                        step: *step,
                    };
                    let id = format!("n{i}");
                    model.fork(&id, &point)?;
                    (id.clone(), store.fork(&id, &point)?, rows)
                }
                TreeOp::Rewind { run, step, rows } if !made.is_empty() => {
                    let id = made[run % made.len()].clone();
                    model.rewind(&id, *step)?;
                    (id.clone(), store.rewind(&id, *step)?, rows)
                }
                TreeOp::Root { rows } | TreeOp::Fork { rows, .. } | TreeOp::Rewind { rows, .. } => {
                    let id = format!("n{i}");
                    model.create_run(&id)?;
                    (id.clone(), store.create_run(&id)?, rows)
                }
            };
            for (gap, m) in rows {
                let step = model.next_step(&id).unwrap_or(0).saturating_add(*gap);
                clock += 1_000;
                let t = clock as f64 / 1e6;
                model.log(&id, Some(step), Some(t), m.clone())?;
                w.log_with_time(Some(step), t, m.clone())?;
            }
            model.finish(&id, 0)?;
            w.finish(0)?;
            if !made.contains(&id) {
                made.push(id);
            }
        }
        Ok(made)
    }
}

fn rows(max: usize) -> impl Strategy<Value = Vec<(u64, Metrics)>> {
    vec((prop_oneof![4 => Just(0u64), 1 => 1u64..4], metrics(3)), 0..=max)
}

/// A [`ForkTree`] of up to `max_ops` operations, each logging up to `max_rows` rows.
pub fn fork_tree(max_ops: usize, max_rows: usize) -> impl Strategy<Value = ForkTree> {
    let op = prop_oneof![
        1 => rows(max_rows).prop_map(|rows| TreeOp::Root { rows }),
        4 => (any::<usize>(), proptest::option::weighted(0.3, 0u32..3), 0u64..(max_rows as u64 + 4), rows(max_rows))
            .prop_map(|(parent, version, step, rows)| TreeOp::Fork { parent, version, step, rows }),
        1 => (any::<usize>(), 0u64..(max_rows as u64 + 4), rows(max_rows))
            .prop_map(|(run, step, rows)| TreeOp::Rewind { run, step, rows }),
    ];
    (rows(max_rows), vec(op, 0..max_ops.max(1))).prop_map(|(first, rest)| {
        let mut ops = vec![TreeOp::Root { rows: first }];
        ops.extend(rest);
        ForkTree { ops }
    })
}

/// Store options worth varying: sync policy, segment size (4 KiB segments roll often) and buffer size
/// (1 byte: every event is its own frame).
pub fn store_options() -> impl Strategy<Value = (SyncPolicy, u64, usize)> {
    (
        prop_oneof![
            3 => Just(SyncPolicy::Always),
            1 => Just(SyncPolicy::Never),
            1 => (1u64..50).prop_map(SyncPolicy::EveryMillis),
        ],
        prop_oneof![Just(4096u64), Just(16 << 10), Just(1 << 20)],
        prop_oneof![Just(1usize), Just(512), Just(64 << 10)],
    )
}

/// The step a logged row asks for, resolved against the writer when the operation runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StepPick {
    /// No step: the next one (`log`, or `None` in a batch).
    Next,
    /// `next_step + n`: always valid (unless the step range is exhausted).
    Skip(u64),
    /// This exact step: valid or not.
    At(u64),
}

impl fmt::Debug for StepPick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepPick::Next => write!(f, "next"),
            StepPick::Skip(n) => write!(f, "next+{n}"),
            StepPick::At(n) => write!(f, "@{n}"),
        }
    }
}

/// A [`StepPick`]: mostly the next step, sometimes a gap, sometimes an absolute (often invalid) step.
pub fn step_pick() -> impl Strategy<Value = StepPick> {
    prop_oneof![
        6 => Just(StepPick::Next),
        2 => (1u64..4).prop_map(StepPick::Skip),
        2 => (0u64..30).prop_map(StepPick::At),
        1 => Just(StepPick::At(u64::MAX)),
    ]
}

/// Which run an operation names, resolved against the store's state when it runs (so operations mostly
/// hit, and still shrink well).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RunPick {
    /// This id from [`RUN_IDS`] (modulo), whether or not it exists.
    Id(u8),
    /// The run at this index (modulo) among every run the store has, deleted ones included.
    Existing(u8),
    /// The live run at this index (modulo) among those with no open writer (else like `Existing`).
    Idle(u8),
    /// An id no run has.
    Fresh,
}

impl fmt::Debug for RunPick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunPick::Id(n) => write!(f, "{:?}", run_id(*n)),
            RunPick::Existing(n) => write!(f, "#{n}"),
            RunPick::Idle(n) => write!(f, "idle#{n}"),
            RunPick::Fresh => write!(f, "new"),
        }
    }
}

/// A [`RunPick`] with weights for an id that is usually `fresh`, `existing` or `idle` (the rest: a fixed id).
fn run_pick(fresh: u32, existing: u32, idle: u32) -> impl Strategy<Value = RunPick> {
    prop_oneof![
        1 => (0u8..RUN_IDS.len() as u8).prop_map(RunPick::Id),
        fresh => Just(RunPick::Fresh),
        existing => any::<u8>().prop_map(RunPick::Existing),
        idle => any::<u8>().prop_map(RunPick::Idle),
    ]
}

/// One operation of the store state machine. Runs are named by a [`RunPick`]; writer operations name an
/// index into the runs that have an open writer, sorted by id (when none has, the harness first resumes an
/// idle live run, if there is one; else the operation does nothing).
#[derive(Clone, PartialEq)]
pub enum Op {
    /// `create_run`.
    Create {
        /// The new run.
        run: RunPick,
    },
    /// `log` (no time, next step), `log_at` (no time, a step) or `log_with_time`.
    Log {
        /// Open-writer index.
        writer: u8,
        /// Which step.
        step: StepPick,
        /// `Some`: `log_with_time` with this time.
        time: Option<f64>,
        /// The row.
        metrics: Metrics,
    },
    /// `log_batch`.
    LogBatch {
        /// Open-writer index.
        writer: u8,
        /// The rows.
        rows: Vec<(StepPick, Metrics)>,
    },
    /// `log_floats` (next step) or `log_floats_at`.
    LogFloats {
        /// Open-writer index.
        writer: u8,
        /// Which step.
        step: StepPick,
        /// The row (keys may repeat: then it is refused).
        row: Vec<(String, f64)>,
    },
    /// `log_columns`.
    LogColumns {
        /// Open-writer index.
        writer: u8,
        /// The rows' steps (`next` resolves to the step after the previous one).
        steps: Vec<StepPick>,
        /// The columns (lengths may differ from the steps': then it is refused).
        columns: Vec<(String, Vec<f64>)>,
    },
    /// `set_config`.
    Config {
        /// Open-writer index.
        writer: u8,
        /// The patch.
        patch: Metrics,
    },
    /// `set_summary`.
    Summary {
        /// Open-writer index.
        writer: u8,
        /// The patch.
        patch: Metrics,
    },
    /// `set_meta`.
    Meta {
        /// Open-writer index.
        writer: u8,
        /// The patch.
        patch: crate::MetaPatch,
    },
    /// `log_system`.
    System {
        /// Open-writer index.
        writer: u8,
        /// The sample.
        metrics: Metrics,
    },
    /// `finish`.
    Finish {
        /// Open-writer index.
        writer: u8,
        /// Exit code.
        exit_code: i32,
    },
    /// Drop the writer without `finish`.
    Close {
        /// Open-writer index.
        writer: u8,
    },
    /// `RunWriter::flush`.
    Flush {
        /// Open-writer index.
        writer: u8,
    },
    /// `RunWriter::sync`.
    Sync {
        /// Open-writer index.
        writer: u8,
    },
    /// `fork(run, parent[@vK]?_step=step)`.
    Fork {
        /// The new run.
        run: RunPick,
        /// The parent.
        parent: RunPick,
        /// `Some(K)`: fork from `parent@vK` (which may not exist).
        version: Option<u8>,
        /// The fork step.
        step: u64,
    },
    /// `rewind(run, step)`, or `rewind_to(run@vK?_step=step)` with a version.
    Rewind {
        /// The run.
        run: RunPick,
        /// `Some(K)`: name the version explicitly (an archived one is refused).
        version: Option<u8>,
        /// The rewind step.
        step: u64,
    },
    /// `resume`.
    Resume {
        /// The run.
        run: RunPick,
    },
    /// Drop every writer and the store, and open the store again.
    Reopen,
    /// Simulated crash: writers vanish without `finish`, the store is opened again. `seed` is handed to
    /// the harness's crash hook (e.g. to pick how a fault-injecting file system loses unsynced data).
    Crash {
        /// Seed for the crash hook.
        seed: u64,
    },
    /// `delete_run`.
    Delete {
        /// The run.
        run: RunPick,
    },
    /// `gc`.
    Gc,
    /// `verify` (must be clean).
    Verify,
    /// Compare a second, long-lived store handle (another process's view: its own caches, no writers)
    /// with the model.
    OtherHandle,
}

struct ShowMetrics<'a>(&'a Metrics);

impl fmt::Debug for ShowMetrics<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            match v {
                Value::Float(x) => write!(f, "{k:?}: {x:?}")?,
                Value::Bytes(b) if b.len() > 8 => write!(f, "{k:?}: <{} bytes>", b.len())?,
                other => write!(f, "{k:?}: {other}")?,
            }
        }
        write!(f, "}}")
    }
}

/// One line per operation, e.g. `fork("c" from "a@v1" at 7)` or `log(w0, next+2, {"loss": 0.5})`.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create { run } => write!(f, "create({run:?})"),
            Op::Log { writer, step, time: None, metrics } => {
                write!(f, "log(w{writer}, {step:?}, {:?})", ShowMetrics(metrics))
            }
            Op::Log { writer, step, time: Some(t), metrics } => {
                write!(f, "log_with_time(w{writer}, {step:?}, t={t:?}, {:?})", ShowMetrics(metrics))
            }
            Op::LogBatch { writer, rows } => {
                write!(f, "log_batch(w{writer}, [")?;
                for (i, (s, m)) in rows.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{s:?} {:?}", ShowMetrics(m))?;
                }
                write!(f, "])")
            }
            Op::LogFloats { writer, step, row } => write!(f, "log_floats(w{writer}, {step:?}, {row:?})"),
            Op::LogColumns { writer, steps, columns } => {
                write!(f, "log_columns(w{writer}, {steps:?}, {columns:?})")
            }
            Op::Config { writer, patch } => write!(f, "set_config(w{writer}, {:?})", ShowMetrics(patch)),
            Op::Summary { writer, patch } => write!(f, "set_summary(w{writer}, {:?})", ShowMetrics(patch)),
            Op::System { writer, metrics } => write!(f, "log_system(w{writer}, {:?})", ShowMetrics(metrics)),
            Op::Meta { writer, patch } => write!(f, "set_meta(w{writer}, {patch:?})"),
            Op::Finish { writer, exit_code } => write!(f, "finish(w{writer}, {exit_code})"),
            Op::Close { writer } => write!(f, "close(w{writer})"),
            Op::Flush { writer } => write!(f, "flush(w{writer})"),
            Op::Sync { writer } => write!(f, "sync(w{writer})"),
            Op::Fork { run, parent, version, step } => {
                let v = version.map(|v| format!("@v{v}")).unwrap_or_default();
                write!(f, "fork({run:?} from {parent:?}{v} at {step})")
            }
            Op::Rewind { run, version, step } => {
                let v = version.map(|v| format!("@v{v}")).unwrap_or_default();
                write!(f, "rewind({run:?}{v} to {step})")
            }
            Op::Resume { run } => write!(f, "resume({run:?})"),
            Op::Reopen => write!(f, "reopen"),
            Op::Crash { seed } => write!(f, "crash(seed={seed})"),
            Op::Delete { run } => write!(f, "delete({run:?})"),
            Op::Gc => write!(f, "gc"),
            Op::Verify => write!(f, "verify"),
            Op::OtherHandle => write!(f, "other_handle"),
        }
    }
}

/// A time for `log_with_time`: whole microseconds around now, or an edge (0, negative, fractional
/// microseconds, NaN, infinite).
pub fn time() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (1_600_000_000_000_000i64..1_800_000_000_000_000).prop_map(|us| us as f64 / 1e6),
        1 => Just(0.0),
        1 => -1e9f64..1e9,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

/// One [`Op`], weighted towards writes and forks.
pub fn op() -> impl Strategy<Value = Op> {
    let w = any::<u8>;
    prop_oneof![
        5 => run_pick(6, 1, 0).prop_map(|run| Op::Create { run }),
        20 => (w(), step_pick(), proptest::option::weighted(0.7, time()), metrics(3))
            .prop_map(|(writer, step, time, metrics)| Op::Log { writer, step, time, metrics }),
        5 => (w(), vec((step_pick(), metrics(2)), 0..5)).prop_map(|(writer, rows)| Op::LogBatch { writer, rows }),
        8 => (w(), step_pick(), float_row()).prop_map(|(writer, step, row)| Op::LogFloats { writer, step, row }),
        4 => (w(), vec(step_pick(), 0..6), float_columns())
            .prop_map(|(writer, steps, columns)| Op::LogColumns { writer, steps, columns }),
        3 => (w(), metrics(2)).prop_map(|(writer, patch)| Op::Config { writer, patch }),
        3 => (w(), metrics(2)).prop_map(|(writer, patch)| Op::Summary { writer, patch }),
        2 => (w(), metrics(2)).prop_map(|(writer, metrics)| Op::System { writer, metrics }),
        2 => (w(), meta_patch()).prop_map(|(writer, patch)| Op::Meta { writer, patch }),
        2 => (w(), -2i32..3).prop_map(|(writer, exit_code)| Op::Finish { writer, exit_code }),
        3 => w().prop_map(|writer| Op::Close { writer }),
        1 => w().prop_map(|writer| Op::Flush { writer }),
        1 => w().prop_map(|writer| Op::Sync { writer }),
        10 => (run_pick(8, 1, 0), run_pick(0, 8, 0), proptest::option::weighted(0.3, 0u8..3), fork_step())
            .prop_map(|(run, parent, version, step)| Op::Fork { run, parent, version, step }),
        4 => (run_pick(0, 1, 8), proptest::option::weighted(0.1, 0u8..3), fork_step())
            .prop_map(|(run, version, step)| Op::Rewind { run, version, step }),
        2 => run_pick(0, 1, 8).prop_map(|run| Op::Resume { run }),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        2 => run_pick(0, 1, 6).prop_map(|run| Op::Delete { run }),
        2 => Just(Op::Gc),
        1 => Just(Op::Verify),
        2 => Just(Op::OtherHandle),
    ]
}

/// A sequence of up to `max_len` operations, starting with the creation of a run.
pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 0..max_len.max(1))
        .prop_map(|ops| std::iter::once(Op::Create { run: RunPick::Fresh }).chain(ops).collect())
}
