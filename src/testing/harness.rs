//! [`Harness`]: runs store operations ([`Op`]) against a real [`Store`] and the [`Model`] side by side and
//! checks after each one that both agree: the operation's result (errors by kind), the open writers' steps,
//! and everything readable ([`assert_store_matches`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::Result;
use crate::ids::{ForkPoint, RunRef};
use crate::options::{Options, SyncPolicy};
use crate::store::Store;
use crate::value::Metrics;
use crate::writer::RunWriter;

use super::model::Model;
use super::strategies::{run_id, RunPick, StepPick, RUN_IDS};
use super::{assert_store_matches, compare, Op};

/// A hook run at a simulated crash with the operation's seed, before the writers and the store are dropped
/// (e.g. [`FaultFs::crash`](super::faultfs::FaultFs::crash), after which their last flushes fail like those
/// of a dead process). It must not lose anything acknowledged: the model keeps every event written.
pub type CrashHook = Box<dyn FnMut(u64) + Send>;

/// A store, its open writers and the model, driven by [`Op`]s.
pub struct Harness {
    path: PathBuf,
    opts: Options,
    store: Option<Store>,
    /// A second handle on the same store that only reads ([`Op::OtherHandle`]).
    other: Option<Store>,
    writers: BTreeMap<String, RunWriter>,
    model: Model,
    trace: Vec<String>,
    crash: Option<CrashHook>,
    /// True once a crash happened: torn tails may be left until a writer recovers them.
    crashed: bool,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("path", &self.path).field("writers", &self.writers.keys()).finish()
    }
}

type Outcome = std::result::Result<(), String>;

impl Harness {
    /// Opens (creating) a store at `path` with `opts` and an empty model.
    pub fn new(path: impl Into<PathBuf>, opts: Options) -> Result<Harness> {
        let path = path.into();
        let store = Store::open_with(&path, opts.clone())?;
        Ok(Harness {
            path,
            opts,
            store: Some(store),
            other: None,
            writers: BTreeMap::new(),
            model: Model::new(),
            trace: Vec::new(),
            crash: None,
            crashed: false,
        })
    }

    /// Sets the hook [`Op::Crash`] runs. Without one, a crash drops the writers without `finish` and reopens
    /// the store (nothing is lost: reads after every operation flushed the writers' buffers).
    pub fn on_crash(&mut self, hook: CrashHook) {
        self.crash = Some(hook);
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("harness: the store is open between operations")
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What ran so far, one line per operation with the runs it resolved to and its result.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// The open writer at `index` (modulo); with none open, resumes an idle live run on both sides first.
    fn writer_id(&mut self, index: u8) -> std::result::Result<Option<String>, String> {
        let n = self.writers.len();
        if n > 0 {
            return Ok(self.writers.keys().nth(usize::from(index) % n).cloned());
        }
        let live = self.model.live_ids();
        if live.is_empty() {
            return Ok(None);
        }
        let id = live[usize::from(index) % live.len()].clone();
        self.model.resume(&id).map_err(|e| format!("model resume({id}): {e}"))?;
        let w = self.store().resume(&id).map_err(|e| format!("resume({id}) for a writer operation: {e}"))?;
        self.writers.insert(id.clone(), w);
        Ok(Some(id))
    }

    /// The run id a [`RunPick`] names now.
    fn pick(&self, p: RunPick) -> String {
        let pick = |ids: Vec<String>, n: u8| (!ids.is_empty()).then(|| ids[usize::from(n) % ids.len()].clone());
        let existing = |n| pick(self.model.run_ids(), n).unwrap_or_else(|| run_id(n).to_string());
        match p {
            RunPick::Id(n) => run_id(n).to_string(),
            RunPick::Existing(n) => existing(n),
            RunPick::Idle(n) => {
                let idle = self.model.live_ids().into_iter().filter(|id| !self.model.is_open(id)).collect();
                pick(idle, n).unwrap_or_else(|| existing(n))
            }
            RunPick::Fresh => {
                let taken = self.model.run_ids();
                let free = RUN_IDS.iter().find(|id| !taken.iter().any(|t| t == *id));
                free.map_or_else(
                    || (0..).map(|i| format!("r{i}")).find(|id| !taken.contains(id)).unwrap_or_default(),
                    |s| s.to_string(),
                )
            }
        }
    }

    fn writer(&mut self, id: &str) -> &mut RunWriter {
        self.writers.get_mut(id).expect("harness: writer ids come from the open writers")
    }

    fn reopen(&mut self, crash: Option<u64>) -> Outcome {
        if let (Some(seed), Some(hook)) = (crash, self.crash.as_mut()) {
            hook(seed);
            self.crashed = true;
        }
        self.writers.clear();
        self.store = None;
        self.other = None;
        self.model.close_all();
        self.store = Some(Store::open_with(&self.path, self.opts.clone()).map_err(|e| format!("reopen: {e}"))?);
        Ok(())
    }

    /// Resolves the steps of rows to log, relative to the model's next step.
    fn steps(&self, id: &str, picks: &[StepPick]) -> Vec<Option<u64>> {
        let mut next = self.model.next_step(id).unwrap_or(0);
        picks
            .iter()
            .map(|p| {
                let s = match p {
                    StepPick::Next => None,
                    StepPick::Skip(n) => Some(next.saturating_add(*n)),
                    StepPick::At(n) => Some(*n),
                };
                next = s.unwrap_or(next).saturating_add(1);
                s
            })
            .collect()
    }

    /// Runs `op` on the store and the model and compares the results, then [`check`](Harness::check)s.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        let line = self.run(op);
        self.trace.push(format!("{op:?} -> {}", line.as_ref().map_or_else(|e| e.clone(), |s| s.clone())));
        line?;
        self.check()
    }

    fn run(&mut self, op: &Op) -> std::result::Result<String, String> {
        let what = format!("{op:?}");
        let store = self.store().clone();
        let with_writer =
            |h: &mut Harness, w: &u8, f: &mut dyn FnMut(&mut Harness, &str) -> std::result::Result<String, String>| {
                match h.writer_id(*w)? {
                    None => Ok("no open writer".to_string()),
                    Some(id) => f(h, &id).map(|s| format!("{id}: {s}")),
                }
            };
        match op {
            Op::Create { run } => {
                let id = &self.pick(*run);
                let m = self.model.create_run(id);
                let s = store.create_run(id);
                self.opened(&what, id, m.map(|_| 0), s).map(|r| format!("{id}: {r}"))
            }
            Op::Log { writer, step, time, metrics } => with_writer(self, writer, &mut |h, id| {
                let step = h.steps(id, &[*step])[0];
                let m = h.model.log(id, step, *time, metrics.clone());
                let w = h.writer(id);
                let s = match (step, time) {
                    (_, Some(t)) => w.log_with_time(step, *t, metrics.clone()),
                    (None, None) => w.log(metrics.clone()),
                    (Some(st), None) => w.log_at(st, metrics.clone()).map(|_| st),
                };
                compare(&what, &m, &s, |a, b| a == b)?;
                Ok(format!("{m:?}"))
            }),
            Op::LogBatch { writer, rows } => with_writer(self, writer, &mut |h, id| {
                let picks: Vec<StepPick> = rows.iter().map(|r| r.0).collect();
                let rows: Vec<(Option<u64>, Metrics)> =
                    h.steps(id, &picks).into_iter().zip(rows.iter().map(|r| r.1.clone())).collect();
                let m = h.model.log_batch(id, rows.clone());
                let s = h.writer(id).log_batch(rows);
                compare(&what, &m, &s, |a, b| a == b)?;
                Ok(format!("{m:?}"))
            }),
            Op::LogFloats { writer, step, row } => with_writer(self, writer, &mut |h, id| {
                let step = h.steps(id, &[*step])[0];
                let m = h.model.log_floats(id, step, row);
                let row: Vec<(&str, f64)> = row.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let w = h.writer(id);
                let s = match step {
                    None => w.log_floats(&row),
                    Some(st) => w.log_floats_at(st, &row).map(|_| st),
                };
                compare(&what, &m, &s, |a, b| a == b)?;
                Ok(format!("{m:?}"))
            }),
            Op::LogColumns { writer, steps, columns } => with_writer(self, writer, &mut |h, id| {
                let mut prev = h.model.next_step(id).unwrap_or(0).checked_sub(1);
                let steps: Vec<u64> = h
                    .steps(id, steps)
                    .into_iter()
                    .map(|s| {
                        let s = s.unwrap_or_else(|| prev.map_or(0, |p| p.saturating_add(1)));
                        prev = Some(s);
                        s
                    })
                    .collect();
                let m = h.model.log_columns(id, &steps, columns);
                let cols: Vec<(&str, &[f64])> = columns.iter().map(|(k, c)| (k.as_str(), c.as_slice())).collect();
                let s = h.writer(id).log_columns(&steps, &cols);
                compare(&what, &m, &s, |a, b| a == b)?;
                Ok(format!("{m:?}"))
            }),
            Op::Config { writer, patch } => with_writer(self, writer, &mut |h, id| {
                let m = h.model.set_config(id, patch.clone());
                let s = h.writer(id).set_config(patch.clone());
                compare(&what, &m, &s, |a, b| a == b).map(|_| "ok".into())
            }),
            Op::Meta { writer, patch } => with_writer(self, writer, &mut |h, id| {
                let m = h.model.set_meta(id, patch.clone());
                let s = h.writer(id).set_meta(patch.clone());
                compare(&what, &m, &s, |a, b| a == b).map(|_| "ok".into())
            }),
            Op::Summary { writer, patch } => with_writer(self, writer, &mut |h, id| {
                let m = h.model.set_summary(id, patch.clone());
                let s = h.writer(id).set_summary(patch.clone());
                compare(&what, &m, &s, |a, b| a == b).map(|_| "ok".into())
            }),
            Op::System { writer, metrics } => with_writer(self, writer, &mut |h, id| {
                let m = h.model.log_system(id, metrics.clone());
                let s = h.writer(id).log_system(metrics.clone());
                compare(&what, &m, &s, |a, b| a == b).map(|_| "ok".into())
            }),
            Op::Finish { writer, exit_code } => with_writer(self, writer, &mut |h, id| {
                let m = h.model.finish(id, *exit_code);
                let w = h.writers.remove(id).expect("harness: open writer");
                let s = w.finish(*exit_code);
                compare(&what, &m, &s, |a, b| a == b).map(|_| "ok".into())
            }),
            Op::Close { writer } => with_writer(self, writer, &mut |h, id| {
                h.model.close(id);
                h.writers.remove(id);
                Ok("closed".into())
            }),
            Op::Flush { writer } => with_writer(self, writer, &mut |h, id| {
                h.writer(id).flush().map_err(|e| format!("{what}: {e}")).map(|_| "ok".into())
            }),
            Op::Sync { writer } => with_writer(self, writer, &mut |h, id| {
                h.writer(id).sync().map_err(|e| format!("{what}: {e}")).map(|_| "ok".into())
            }),
            Op::Fork { run, parent, version, step } => {
                let id = &self.pick(*run);
                let point =
                    ForkPoint { run: RunRef { id: self.pick(*parent), version: version.map(u32::from) }, step: *step };
                let m = self.model.fork(id, &point);
                let s = store.fork(id, &point);
                self.opened(&what, id, m.map(|_| 0), s).map(|r| format!("{id} from {point}: {r}"))
            }
            Op::Rewind { run, version, step } => {
                let id = &self.pick(*run);
                let point =
                    ForkPoint { run: RunRef { id: id.to_string(), version: version.map(u32::from) }, step: *step };
                let m = self.model.rewind_to(&point);
                let s = store.rewind_to(&point);
                self.opened(&what, id, m, s).map(|r| format!("{point}: {r}"))
            }
            Op::Resume { run } => {
                let id = &self.pick(*run);
                let m = self.model.resume(id).map(|_| self.model.current_version(id).unwrap_or(0));
                let s = store.resume(id);
                self.opened(&what, id, m, s).map(|r| format!("{id}: {r}"))
            }
            Op::Reopen => self.reopen(None).map(|_| "reopened".into()),
            Op::Crash { seed } => self.reopen(Some(*seed)).map(|_| "crashed and reopened".into()),
            Op::Delete { run } => {
                let id = &self.pick(*run);
                let m = self.model.delete_run(id);
                let s = store.delete_run(id);
                compare(&what, &m, &s, |a, b| a == b)?;
                Ok(format!("{id}: {m:?}"))
            }
            Op::Gc => {
                let m = Ok(self.model.gc());
                let s = store.gc().map(|r| r.runs_removed);
                compare(&what, &m, &s, |a, b| a == b)?;
                Ok(format!("removed {m:?}"))
            }
            // The previous check flushed every writer, so the other handle must see exactly the model.
            Op::OtherHandle => {
                if self.other.is_none() {
                    let other = Store::open_with(&self.path, self.opts.clone()).map_err(|e| format!("{what}: {e}"))?;
                    self.other = Some(other);
                }
                let other = self.other.as_ref().expect("harness: just opened");
                assert_store_matches(other, &self.model).map_err(|e| format!("{what}: {e}"))?;
                Ok("matches".into())
            }
            // Torn tails are allowed after a crash (recovery cuts them when a writer opens the run).
            Op::Verify => {
                let r = store.verify().map_err(|e| format!("{what}: {e}"))?;
                if !r.is_clean() || !self.crashed && !r.problems.is_empty() {
                    return Err(format!("{what}: problems {:?}", r.problems));
                }
                Ok("clean".into())
            }
        }
    }

    /// Compares the outcome of an operation that opens a writer (`m`: the model's version number).
    fn opened(
        &mut self,
        what: &str,
        id: &str,
        m: Result<u32>,
        s: Result<RunWriter>,
    ) -> std::result::Result<String, String> {
        match (m, s) {
            (Ok(v), Ok(w)) if v == w.version() => {
                self.writers.insert(id.to_string(), w);
                Ok(format!("opened {id}@v{v}"))
            }
            (m, s) => {
                let s = s.map(|w| w.version());
                compare(what, &m, &s, |a, b| a == b)?;
                Ok(format!("{m:?}"))
            }
        }
    }

    /// Checks the open writers (same runs as the model's, same version, last and next step; under
    /// [`SyncPolicy::Always`] everything durable) and then [`assert_store_matches`].
    pub fn check(&self) -> Outcome {
        let open: Vec<String> = self.writers.keys().cloned().collect();
        if open != self.model.open_ids() {
            return Err(format!("open writers: harness {open:?}, model {:?}", self.model.open_ids()));
        }
        for (id, w) in &self.writers {
            let got = (w.version(), w.last_step(), w.next_step());
            let want = (
                self.model.current_version(id).unwrap_or(u32::MAX),
                self.model.last_step(id),
                self.model.next_step(id).unwrap_or(0),
            );
            if got != want {
                return Err(format!("writer {id}: (version, last_step, next_step) is {got:?}, model says {want:?}"));
            }
            if self.opts.sync == SyncPolicy::Always && w.durable_step() != w.last_step() {
                return Err(format!(
                    "writer {id}: durable_step {:?} != last_step {:?} under Always",
                    w.durable_step(),
                    w.last_step()
                ));
            }
        }
        assert_store_matches(self.store(), &self.model)
    }
}
