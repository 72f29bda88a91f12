//! [`Model`]: a simple in-memory reference model of a whole store.
//!
//! The model keeps, for every version of every run, the full list of events its visible history is made of,
//! each with the version it is physically stored in (its origin). A fork or a rewind at step `N` clones the
//! events with step `<= N` of the version it starts from; nothing is shared, nothing is clever. Reads
//! ([`history`](Model::history), [`summary`](Model::summary), [`info`](Model::info), ...) are computed from
//! those lists and return the same types as [`Store`](crate::Store), so a test compares the two with `==`
//! (see [`assert_store_matches`](super::assert_store_matches)).
//!
//! The model does not know wall-clock times: events written with the clock (`log` without an explicit time,
//! `log_batch`, `log_system`) carry [`UNKNOWN_TIME`] (a NaN), which comparisons treat as "any time". Rows
//! logged with an explicit time (`RunWriter::log_with_time`) are rounded to whole microseconds as the engine
//! stores them. [`RunInfo::created`] is always `0.0` in the model.
//!
//! Writer operations ([`log`](Model::log), [`set_config`](Model::set_config), ...) mirror `RunWriter` and
//! take the run id; they panic when the model has no writer open for the run, since the engine would have
//! no writer to call.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::event::{Event, EventRecord, LogRow};
use crate::ids::{validate_run_id, ForkPoint, RunRef};
use crate::info::{LineageEntry, RunInfo, RunState};
use crate::replay::HistoryOptions;
use crate::value::{Key, Metrics, Value};

/// The time the model records for events the engine stamps with the wall clock: NaN, read as "any time".
pub const UNKNOWN_TIME: f64 = f64::NAN;

/// Rounds seconds to the microsecond precision the engine stores (non-finite times become 0).
pub fn stored_time(secs: f64) -> f64 {
    let micros = if secs.is_finite() { (secs * 1e6).round() as i64 } else { 0 };
    micros as f64 / 1e6
}

/// One version of a run in the model.
#[derive(Debug, Clone)]
struct Version {
    /// Every visible event, inherited prefix included, with the version it is stored in.
    events: Vec<EventRecord>,
    /// The version this one inherits from (fork parent, or the previous version for a rewind).
    base: Option<RunRef>,
    /// Fork parent (`ID@vK`) and fork step; rewinds keep it.
    fork_parent: Option<(RunRef, u64)>,
    /// The step this version was rewound to.
    rewind_step: Option<u64>,
    /// The fork or rewind step: `Log` steps must exceed it.
    floor: Option<u64>,
}

impl Version {
    fn last_log(&self) -> Option<u64> {
        self.events.iter().rev().find(|r| matches!(r.event, Event::Log { .. })).map(|r| r.event.step())
    }

    fn first_log(&self) -> Option<u64> {
        self.events.iter().find(|r| matches!(r.event, Event::Log { .. })).map(|r| r.event.step())
    }

    /// The step `Log` steps must exceed: the last `Log` step or the fork/rewind step.
    fn last(&self) -> Option<u64> {
        match (self.last_log(), self.floor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The events with step `<= step`: what a fork or rewind at `step` inherits.
    fn prefix(&self, step: u64) -> Vec<EventRecord> {
        self.events.iter().filter(|r| r.event.step() <= step).cloned().collect()
    }
}

/// One run in the model.
#[derive(Debug, Clone)]
struct Run {
    versions: BTreeMap<u32, Version>,
    /// The highest version ever created (the current one while the run lives).
    latest: u32,
    deleted: bool,
    /// True while a writer has the run open.
    open: bool,
}

impl Run {
    fn current(&self) -> &Version {
        self.versions.get(&self.latest).expect("model: a live run always has its current version")
    }

    fn current_mut(&mut self) -> &mut Version {
        self.versions.get_mut(&self.latest).expect("model: a live run always has its current version")
    }
}

/// A reference model of a whole store: runs, versions, forks as cloned prefixes, rewinds, deletes and gc.
///
/// ```
/// use forklog::testing::model::Model;
/// use forklog::{metrics, ForkPoint, HistoryOptions};
///
/// let mut model = Model::new();
/// model.create_run("base").unwrap();
/// for i in 0..10 {
///     model.log("base", None, Some(1.0 + f64::from(i)), metrics! { "loss" => f64::from(i) }).unwrap();
/// }
/// model.finish("base", 0).unwrap();
/// model.fork("f", &ForkPoint::new("base", 4)).unwrap();
/// assert_eq!(model.next_step("f"), Some(5));
/// let rows = model.history("f", &HistoryOptions::new()).unwrap();
/// assert_eq!(rows.len(), 5);
/// assert_eq!(rows[4].origin.to_string(), "base@v0");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Model {
    runs: BTreeMap<String, Run>,
}

fn not_found(run: impl ToString) -> Error {
    Error::RunNotFound { run: run.to_string() }
}

impl Model {
    /// An empty store.
    pub fn new() -> Model {
        Model::default()
    }

    // ----- lookups -----

    /// Resolves `ID` or `ID@vK` to a live run's version, as the engine's reads do.
    fn resolve(&self, run: &str) -> Result<(String, u32, &Run, &Version)> {
        let r: RunRef = run.parse()?;
        let found = self.runs.get(&r.id).filter(|x| !x.deleted).ok_or_else(|| not_found(&r))?;
        let v = r.version.unwrap_or(found.latest);
        let version = found.versions.get(&v).ok_or_else(|| not_found(&r))?;
        Ok((r.id, v, found, version))
    }

    fn live(&self, id: &str) -> Option<&Run> {
        self.runs.get(id).filter(|r| !r.deleted)
    }

    fn writer(&mut self, id: &str) -> &mut Run {
        match self.runs.get_mut(id) {
            Some(r) if r.open && !r.deleted => r,
            _ => panic!("model: no writer is open for run {id:?}"),
        }
    }

    /// Ids of every run the store still has a directory for (live and deleted-but-kept), sorted.
    pub fn run_ids(&self) -> Vec<String> {
        self.runs.keys().cloned().collect()
    }

    /// Ids of the live runs, sorted.
    pub fn live_ids(&self) -> Vec<String> {
        self.runs.iter().filter(|(_, r)| !r.deleted).map(|(id, _)| id.clone()).collect()
    }

    /// The versions the store keeps of run `id` (all of a live run's; a deleted run's kept ones), ascending.
    pub fn versions(&self, id: &str) -> Vec<u32> {
        self.runs.get(id).map(|r| r.versions.keys().copied().collect()).unwrap_or_default()
    }

    /// True when run `id` exists and is deleted (kept for its forks until gc frees it).
    pub fn is_deleted(&self, id: &str) -> bool {
        self.runs.get(id).is_some_and(|r| r.deleted)
    }

    /// True when a writer has run `id` open.
    pub fn is_open(&self, id: &str) -> bool {
        self.runs.get(id).is_some_and(|r| r.open)
    }

    /// Ids of the runs with an open writer, sorted.
    pub fn open_ids(&self) -> Vec<String> {
        self.runs.iter().filter(|(_, r)| r.open).map(|(id, _)| id.clone()).collect()
    }

    /// The current version of live run `id`.
    pub fn current_version(&self, id: &str) -> Option<u32> {
        self.live(id).map(|r| r.latest)
    }

    /// `RunWriter::last_step` of live run `id`: the last `Log` step of its visible history.
    pub fn last_step(&self, id: &str) -> Option<u64> {
        self.live(id).and_then(|r| r.current().last_log())
    }

    /// `RunWriter::next_step` of live run `id` (`None` if the run is not live).
    pub fn next_step(&self, id: &str) -> Option<u64> {
        self.live(id).map(|r| r.current().last().map_or(0, |l| l.saturating_add(1)))
    }

    // ----- reads -----

    /// Like [`Store::events_with`](crate::Store::events_with): every event, filtered by step range, own-only
    /// and (for `Log` and `System` metrics) keys.
    pub fn events(&self, run: &str, opts: &HistoryOptions) -> Result<Vec<EventRecord>> {
        let (id, v, _, version) = self.resolve(run)?;
        let me = RunRef::at(id, v);
        let keep = |m: &Metrics| -> Metrics {
            match &opts.keys {
                None => m.clone(),
                Some(keys) => m
                    .iter()
                    .filter(|(k, _)| keys.iter().any(|x| **x == ***k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        };
        let mut out = Vec::new();
        for rec in &version.events {
            let step = rec.event.step();
            if opts.own_only && rec.origin != me
                || opts.from_step.is_some_and(|f| step < f)
                || opts.to_step.is_some_and(|t| step > t)
            {
                continue;
            }
            let event = match &rec.event {
                Event::Log { step, time, metrics } => Event::Log { step: *step, time: *time, metrics: keep(metrics) },
                Event::System { step, time, metrics } => {
                    Event::System { step: *step, time: *time, metrics: keep(metrics) }
                }
                other => other.clone(),
            };
            out.push(EventRecord { origin: rec.origin.clone(), event });
        }
        Ok(out)
    }

    /// Like [`Store::history_with`](crate::Store::history_with): the `Log` rows, filtered.
    pub fn history(&self, run: &str, opts: &HistoryOptions) -> Result<Vec<LogRow>> {
        let rows = self.events(run, opts)?.into_iter().filter_map(|rec| match rec.event {
            Event::Log { step, time, metrics } => Some(LogRow { step, time, metrics, origin: rec.origin }),
            _ => None,
        });
        Ok(rows.filter(|r| opts.keys.is_none() || !r.metrics.is_empty()).collect())
    }

    /// Like [`Store::system`](crate::Store::system): the `System` events.
    pub fn system(&self, run: &str) -> Result<Vec<EventRecord>> {
        let all = self.events(run, &HistoryOptions::default())?;
        Ok(all.into_iter().filter(|r| matches!(r.event, Event::System { .. })).collect())
    }

    /// Like [`Store::summary`](crate::Store::summary): the last value of every `Log` key, overridden by
    /// explicit `Summary` values.
    pub fn summary(&self, run: &str) -> Result<Metrics> {
        let mut auto = BTreeMap::new();
        let mut explicit = BTreeMap::new();
        for rec in self.events(run, &HistoryOptions::default())? {
            match rec.event {
                Event::Log { metrics, .. } => auto.extend(metrics),
                Event::Summary { patch, .. } => explicit.extend(patch),
                _ => {}
            }
        }
        auto.extend(explicit);
        Ok(auto)
    }

    /// Like [`Store::config`](crate::Store::config): every `Config` patch merged in order.
    pub fn config(&self, run: &str) -> Result<Metrics> {
        let mut config = BTreeMap::new();
        for rec in self.events(run, &HistoryOptions::default())? {
            if let Event::Config { patch, .. } = rec.event {
                config.extend(patch);
            }
        }
        Ok(config)
    }

    fn info_of(&self, id: &str, v: u32) -> RunInfo {
        let run = &self.runs[id];
        let version = &run.versions[&v];
        let current = v == run.latest;
        let last_is_finish = version.events.last().is_some_and(|r| matches!(r.event, Event::Finish { .. }));
        let state = if current && !run.deleted && run.open {
            RunState::Running
        } else if last_is_finish {
            RunState::Finished
        } else {
            RunState::Crashed
        };
        RunInfo {
            id: id.to_string(),
            version: v,
            archived: !current,
            deleted: run.deleted,
            parent: version.fork_parent.as_ref().map(|(p, _)| p.clone()),
            fork_step: version.fork_parent.as_ref().map(|(_, s)| *s),
            rewind_step: version.rewind_step,
            created: 0.0,
            first_step: version.first_log(),
            last_step: version.last_log(),
            rows: version.events.iter().filter(|r| matches!(r.event, Event::Log { .. })).count() as u64,
            events: version.events.len() as u64,
            state,
            meta: {
                let mut meta = crate::RunMeta::default();
                for r in &version.events {
                    if let Event::Meta { patch, .. } = &r.event {
                        meta.apply(patch);
                    }
                }
                meta
            },
        }
    }

    /// Like [`Store::info`](crate::Store::info), with `created` set to `0.0`.
    pub fn info(&self, run: &str) -> Result<RunInfo> {
        let (id, v, _, _) = self.resolve(run)?;
        Ok(self.info_of(&id, v))
    }

    /// Like [`Store::runs`](crate::Store::runs): every live run's current version, sorted by id.
    pub fn runs(&self) -> Vec<RunInfo> {
        self.runs.iter().filter(|(_, r)| !r.deleted).map(|(id, r)| self.info_of(id, r.latest)).collect()
    }

    /// Like [`Store::runs_all`](crate::Store::runs_all): every kept version of every run, deleted ones included.
    pub fn runs_all(&self) -> Vec<RunInfo> {
        let mut out = Vec::new();
        for (id, r) in &self.runs {
            for v in r.versions.keys() {
                out.push(self.info_of(id, *v));
            }
        }
        out
    }

    /// Like [`Store::lineage`](crate::Store::lineage): root first, the run itself last.
    pub fn lineage(&self, run: &str) -> Result<Vec<LineageEntry>> {
        let (id, v, _, version) = self.resolve(run)?;
        let mut out =
            vec![LineageEntry { run: RunRef::at(id, v), fork_step: version.fork_parent.as_ref().map(|p| p.1) }];
        let mut next = version.fork_parent.clone();
        while let Some((p, _)) = next {
            let pv = p.version.expect("model: fork parents carry their version");
            let parent = self
                .runs
                .get(&p.id)
                .and_then(|r| r.versions.get(&pv))
                .unwrap_or_else(|| panic!("model: ancestor {p} of {run} is gone"));
            out.push(LineageEntry { run: p, fork_step: parent.fork_parent.as_ref().map(|q| q.1) });
            next = parent.fork_parent.clone();
        }
        out.reverse();
        Ok(out)
    }

    /// Like [`Store::children`](crate::Store::children): live runs forked from any version of `run` (or from
    /// the one version `ID@vK` names), sorted by id.
    pub fn children(&self, run: &str) -> Result<Vec<RunInfo>> {
        let r: RunRef = run.parse()?;
        if self.live(&r.id).is_none() {
            return Err(not_found(&r.id));
        }
        Ok(self
            .runs()
            .into_iter()
            .filter(|i| {
                i.parent.as_ref().is_some_and(|p| p.id == r.id && r.version.is_none_or(|v| p.version == Some(v)))
            })
            .collect())
    }

    // ----- store operations -----

    /// Like [`Store::create_run`](crate::Store::create_run): a new root run, opened for writing.
    pub fn create_run(&mut self, id: &str) -> Result<()> {
        validate_run_id(id)?;
        if self.runs.contains_key(id) {
            return Err(Error::RunExists { run: id.to_string() });
        }
        let v0 = Version { events: Vec::new(), base: None, fork_parent: None, rewind_step: None, floor: None };
        self.runs
            .insert(id.to_string(), Run { versions: BTreeMap::from([(0, v0)]), latest: 0, deleted: false, open: true });
        Ok(())
    }

    /// Like [`Store::resume`](crate::Store::resume): opens a live run for writing.
    pub fn resume(&mut self, id: &str) -> Result<()> {
        self.idle_live_run(id)?.open = true;
        Ok(())
    }

    /// A live run (not `ID@vK`, not deleted) with no writer open: what `resume` and `delete_run` require.
    fn idle_live_run(&mut self, id: &str) -> Result<&mut Run> {
        let r: RunRef = id.parse()?;
        if r.version.is_some() {
            return Err(Error::ReadOnlyVersion { run: id.to_string() });
        }
        let run = self.runs.get_mut(&r.id).filter(|x| !x.deleted).ok_or_else(|| not_found(&r))?;
        if run.open {
            return Err(Error::RunBusy { run: id.to_string() });
        }
        Ok(run)
    }

    /// Like [`Store::fork`](crate::Store::fork): run `new_id` inherits the events of `point.run` with step
    /// `<= point.step` and is opened for writing.
    pub fn fork(&mut self, new_id: &str, point: &ForkPoint) -> Result<()> {
        validate_run_id(new_id)?;
        validate_run_id(&point.run.id)?;
        if new_id == point.run.id {
            return Err(Error::ForkOntoItself { run: new_id.to_string() });
        }
        let (pid, pv, _, parent) = self.resolve(&point.run.to_string())?;
        if self.runs.contains_key(new_id) {
            return Err(Error::RunExists { run: new_id.to_string() });
        }
        let parent_ref = RunRef::at(pid, pv);
        let v0 = Version {
            events: parent.prefix(point.step),
            base: Some(parent_ref.clone()),
            fork_parent: Some((parent_ref, point.step)),
            rewind_step: None,
            floor: Some(point.step),
        };
        self.runs.insert(
            new_id.to_string(),
            Run { versions: BTreeMap::from([(0, v0)]), latest: 0, deleted: false, open: true },
        );
        Ok(())
    }

    /// Like [`Store::rewind`](crate::Store::rewind); returns the new version number.
    pub fn rewind(&mut self, id: &str, step: u64) -> Result<u32> {
        self.rewind_to(&ForkPoint::new(id, step))
    }

    /// Like [`Store::rewind_to`](crate::Store::rewind_to): archives the current version `K` and opens a new
    /// version `K+1` inheriting its events with step `<= point.step`. Returns the new version number.
    pub fn rewind_to(&mut self, point: &ForkPoint) -> Result<u32> {
        let id = point.run.id.as_str();
        validate_run_id(id)?;
        let run = self.runs.get_mut(id).filter(|x| !x.deleted).ok_or_else(|| not_found(id))?;
        if point.run.version.is_some_and(|v| v != run.latest) {
            return Err(Error::ReadOnlyVersion { run: point.run.to_string() });
        }
        if run.open {
            return Err(Error::RunBusy { run: id.to_string() });
        }
        let old = run.current();
        let new = Version {
            events: old.prefix(point.step),
            base: Some(RunRef::at(id, run.latest)),
            fork_parent: old.fork_parent.clone(),
            rewind_step: Some(point.step),
            floor: Some(point.step),
        };
        run.latest += 1;
        let latest = run.latest;
        run.versions.insert(latest, new);
        run.open = true;
        Ok(latest)
    }

    /// Like [`Store::delete_run`](crate::Store::delete_run).
    pub fn delete_run(&mut self, id: &str) -> Result<()> {
        self.idle_live_run(id)?.deleted = true;
        Ok(())
    }

    /// Like [`Store::gc`](crate::Store::gc): drops every version of a deleted run that no live run inherits
    /// from (through any chain of forks and rewinds), and deleted runs left with no version, whose ids are then
    /// free again. Returns the ids of the runs removed, sorted (`GcReport::runs_removed`).
    pub fn gc(&mut self) -> Vec<String> {
        let mut keep: BTreeSet<(String, u32)> = BTreeSet::new();
        let mut stack: Vec<(String, u32)> = Vec::new();
        for (id, r) in self.runs.iter().filter(|(_, r)| !r.deleted) {
            for v in r.versions.keys() {
                stack.push((id.clone(), *v));
            }
        }
        while let Some(k) = stack.pop() {
            if !keep.insert(k.clone()) {
                continue;
            }
            let version = &self.runs[&k.0].versions[&k.1];
            if let Some(b) = &version.base {
                stack.push((b.id.clone(), b.version.expect("model: base pointers carry their version")));
            }
        }
        let mut removed = Vec::new();
        for (id, r) in self.runs.iter_mut().filter(|(_, r)| r.deleted) {
            r.versions.retain(|v, _| keep.contains(&(id.clone(), *v)));
            if r.versions.is_empty() {
                removed.push(id.clone());
            }
        }
        for id in &removed {
            self.runs.remove(id);
        }
        removed
    }

    /// Every writer goes away (dropped, or its process died): no run is open any more.
    pub fn close_all(&mut self) {
        for r in self.runs.values_mut() {
            r.open = false;
        }
    }

    // ----- writer operations -----

    /// The writer of `id` is dropped without `finish`.
    pub fn close(&mut self, id: &str) {
        self.writer(id).open = false;
    }

    fn step_error(id: &str, last: u64, got: u64) -> Error {
        Error::StepNotIncreasing { run: id.to_string(), last, got }
    }

    /// Resolves the steps of rows about to be logged, or the error the engine returns (nothing is logged then).
    fn resolve_steps(&mut self, id: &str, steps: &[Option<u64>]) -> Result<Vec<u64>> {
        let mut last = self.writer(id).current().last();
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            let s = match (*step, last) {
                (Some(s), Some(l)) if s <= l => return Err(Model::step_error(id, l, s)),
                (Some(s), _) => s,
                (None, Some(l)) => l.checked_add(1).ok_or_else(|| Model::step_error(id, l, l))?,
                (None, None) => 0,
            };
            out.push(s);
            last = Some(s);
        }
        Ok(out)
    }

    fn push(&mut self, id: &str, event: Event) {
        let run = self.writer(id);
        let origin = RunRef::at(id, run.latest);
        run.current_mut().events.push(EventRecord { origin, event });
    }

    /// Like `RunWriter::log` / `log_at` / `log_with_time`: logs a row at `step` (or the next step) with
    /// `time` (or the unknown wall-clock time) and returns its step.
    pub fn log(&mut self, id: &str, step: Option<u64>, time: Option<f64>, metrics: Metrics) -> Result<u64> {
        let step = self.resolve_steps(id, &[step])?[0];
        let time = time.map_or(UNKNOWN_TIME, stored_time);
        self.push(id, Event::Log { step, time, metrics });
        Ok(step)
    }

    /// Like `RunWriter::log_batch`: every step is checked first; all rows or none are logged. Returns the
    /// last step (`None` for an empty batch).
    pub fn log_batch(&mut self, id: &str, rows: Vec<(Option<u64>, Metrics)>) -> Result<Option<u64>> {
        let steps: Vec<Option<u64>> = rows.iter().map(|(s, _)| *s).collect();
        let steps = self.resolve_steps(id, &steps)?;
        for (step, (_, metrics)) in steps.iter().zip(rows) {
            self.push(id, Event::Log { step: *step, time: UNKNOWN_TIME, metrics });
        }
        Ok(steps.last().copied())
    }

    /// Like `RunWriter::log_floats` / `log_floats_at`: a row of floats; a repeated key is refused.
    pub fn log_floats(&mut self, id: &str, step: Option<u64>, row: &[(String, f64)]) -> Result<u64> {
        let step = self.resolve_steps(id, &[step])?[0];
        let metrics = float_row(row.iter().map(|(k, v)| (k.as_str(), *v)))?;
        self.push(id, Event::Log { step, time: UNKNOWN_TIME, metrics });
        Ok(step)
    }

    /// Like `RunWriter::log_columns`: every column as long as `steps`, keys unique, steps increasing; all
    /// rows or none are logged. Returns the last step (`None` for no rows).
    pub fn log_columns(&mut self, id: &str, steps: &[u64], columns: &[(String, Vec<f64>)]) -> Result<Option<u64>> {
        if let Some((k, c)) = columns.iter().find(|(_, c)| c.len() != steps.len()) {
            return Err(Error::Value { reason: format!("column {k:?}: {} values, {} steps", c.len(), steps.len()) });
        }
        float_row(columns.iter().map(|(k, _)| (k.as_str(), 0.0)))?;
        let picks: Vec<Option<u64>> = steps.iter().map(|s| Some(*s)).collect();
        let steps = self.resolve_steps(id, &picks)?;
        for (i, step) in steps.iter().enumerate() {
            let metrics = columns.iter().map(|(k, c)| (Key::from(k.as_str()), Value::Float(c[i]))).collect();
            self.push(id, Event::Log { step: *step, time: UNKNOWN_TIME, metrics });
        }
        Ok(steps.last().copied())
    }

    fn current_step(&mut self, id: &str) -> u64 {
        self.writer(id).current().last().unwrap_or(0)
    }

    /// Like `RunWriter::set_config`.
    pub fn set_config(&mut self, id: &str, patch: Metrics) -> Result<()> {
        let step = self.current_step(id);
        self.push(id, Event::Config { step, patch });
        Ok(())
    }

    /// Like `RunWriter::set_meta`.
    pub fn set_meta(&mut self, id: &str, patch: crate::MetaPatch) -> Result<()> {
        let step = self.current_step(id);
        self.push(id, Event::Meta { step, patch });
        Ok(())
    }

    /// Like `RunWriter::set_summary`.
    pub fn set_summary(&mut self, id: &str, patch: Metrics) -> Result<()> {
        let step = self.current_step(id);
        self.push(id, Event::Summary { step, patch });
        Ok(())
    }

    /// Like `RunWriter::log_system` (the time is the unknown wall-clock time).
    pub fn log_system(&mut self, id: &str, metrics: Metrics) -> Result<()> {
        let step = self.current_step(id);
        self.push(id, Event::System { step, time: UNKNOWN_TIME, metrics });
        Ok(())
    }

    /// Like `RunWriter::finish`: logs the `Finish` event and closes the writer.
    pub fn finish(&mut self, id: &str, exit_code: i32) -> Result<()> {
        let step = self.current_step(id);
        self.push(id, Event::Finish { step, exit_code });
        self.writer(id).open = false;
        Ok(())
    }
}

/// True when two times match: equal bits, or `model` is [`UNKNOWN_TIME`] (any time matches).
pub fn time_matches(model: f64, store: f64) -> bool {
    model.is_nan() || model.to_bits() == store.to_bits()
}

/// A float row as a map; a repeated key is an error, as in `RunWriter::log_floats`.
fn float_row<'k>(row: impl Iterator<Item = (&'k str, f64)>) -> Result<Metrics> {
    let mut m = Metrics::new();
    for (k, v) in row {
        if m.insert(Key::from(k), Value::Float(v)).is_some() {
            return Err(Error::Value { reason: format!("metric key {k:?} appears twice in one row") });
        }
    }
    Ok(m)
}

/// True when a store [`LogRow`] equals a model one (times compared with [`time_matches`]).
pub fn row_matches(model: &LogRow, store: &LogRow) -> bool {
    model.step == store.step
        && time_matches(model.time, store.time)
        && model.metrics == store.metrics
        && model.origin == store.origin
}

/// True when a store event equals a model event (times compared with [`time_matches`]).
pub fn event_matches(model: &EventRecord, store: &EventRecord) -> bool {
    model.origin == store.origin
        && match (&model.event, &store.event) {
            (Event::Log { step: a, time: t, metrics: m }, Event::Log { step: b, time: u, metrics: n })
            | (Event::System { step: a, time: t, metrics: m }, Event::System { step: b, time: u, metrics: n }) => {
                a == b && time_matches(*t, *u) && m == n
            }
            (a, b) => a == b,
        }
}

/// True when a store [`RunInfo`] equals a model one, ignoring `created`.
pub fn info_matches(model: &RunInfo, store: &RunInfo) -> bool {
    RunInfo { created: 0.0, ..store.clone() } == RunInfo { created: 0.0, ..model.clone() }
}
