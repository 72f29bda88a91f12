//! The [`Assembler`]: turns a source's points, rows and events (in write order) into the parts of a
//! [`RunPlan`](super::RunPlan), by the common rules of every importer.
//!
//! - Points at the same step as the row before them merge into it; later values win per key.
//! - A step lower than the one before it is a **restart**: the rows so far are closed and the run rewinds
//!   at that step − 1 (a new [`Part`]). With [`Restart::PerKey`] "the one before it" is the same key's
//!   previous step (TensorBoard tags and MLflow metric files are written one key at a time); with
//!   [`Restart::PerRow`] it is the previous row's step (W&B and trackio rows).
//! - Within a part, rows come out in step order; events (config, summary, system, finish) keep their place
//!   after the rows that were written before them, and timed samples (MLflow and trackio system metrics)
//!   go before the first row written after them.

use std::collections::{BTreeMap, HashMap};

use forklog::{Key, Metrics, Value};

use super::{Part, PlanEvent};

/// Which step a new point is compared with to detect a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// The previous row's step.
    PerRow,
    /// The previous step of the same key.
    PerKey,
}

#[derive(Default)]
struct Session {
    rewind_at: Option<u64>,
    rows: BTreeMap<u64, (f64, Metrics)>,
    /// Events in write order, each after the rows with step <= its anchor (`None`: before every row).
    anchored: Vec<(Option<u64>, PlanEvent)>,
    /// The highest step seen in this session.
    max_step: Option<u64>,
}

/// Builds the parts of one run; see the module docs.
pub struct Assembler {
    rule: Restart,
    done: Vec<Session>,
    cur: Session,
    last_row: Option<u64>,
    last_key: BTreeMap<String, u64>,
    /// System samples placed by time when the run is finished: (time, event).
    timed: Vec<(f64, PlanEvent)>,
    /// Start time of each session (for the timed samples).
    starts: Vec<f64>,
    /// Interned keys.
    keys: HashMap<String, Key>,
}

impl Assembler {
    /// A new assembler with the given restart rule.
    pub fn new(rule: Restart) -> Assembler {
        Assembler {
            rule,
            done: Vec::new(),
            cur: Session::default(),
            last_row: None,
            last_key: BTreeMap::new(),
            timed: Vec::new(),
            starts: vec![f64::NEG_INFINITY],
            keys: HashMap::new(),
        }
    }

    /// Adds one value at `step` (time `time`). A restart is detected by the assembler's rule.
    pub fn point(&mut self, step: u64, time: f64, key: &str, value: Value) -> Result<(), String> {
        let lower = match self.rule {
            Restart::PerKey => self.last_key.get(key).is_some_and(|&l| step < l),
            Restart::PerRow => self.last_row.is_some_and(|l| step < l),
        };
        if lower || self.cur.rewind_at.is_some_and(|at| step <= at) {
            self.restart(step, time)?;
        }
        self.put(step, time, key, value);
        Ok(())
    }

    /// Adds a whole row at `step` (merged into an existing row at the same step; a lower step than the
    /// previous row's is a restart whatever the rule).
    pub fn row(&mut self, step: u64, time: f64, metrics: Metrics) -> Result<(), String> {
        if self.last_row.is_some_and(|l| step < l) || self.cur.rewind_at.is_some_and(|at| step <= at) {
            self.restart(step, time)?;
        }
        if metrics.is_empty() {
            self.touch(step, time);
        }
        for (k, v) in metrics {
            self.put(step, time, &k, v);
        }
        Ok(())
    }

    fn touch(&mut self, step: u64, time: f64) {
        let row = self.cur.rows.entry(step).or_insert_with(|| (time, Metrics::new()));
        row.0 = time;
        self.last_row = Some(step);
        self.cur.max_step = Some(self.cur.max_step.map_or(step, |m| m.max(step)));
    }

    fn put(&mut self, step: u64, time: f64, key: &str, value: Value) {
        self.touch(step, time);
        // Keys are shared: one allocation per distinct key, not per point.
        let k = match self.keys.get(key) {
            Some(k) => k.clone(),
            None => {
                let k: Key = key.into();
                self.keys.insert(key.to_string(), k.clone());
                k
            }
        };
        if let Some(row) = self.cur.rows.get_mut(&step) {
            row.1.insert(k, value);
        }
        match self.last_key.get_mut(key) {
            Some(v) => *v = step,
            None => {
                self.last_key.insert(key.to_string(), step);
            }
        }
    }

    /// The highest step seen since the last restart.
    pub fn max_step(&self) -> Option<u64> {
        self.cur.max_step
    }

    /// A restart at `step` (e.g. TensorBoard's SessionLog START): if rows at `step` or later exist, the run
    /// rewinds at `step − 1` and continues in a new part; otherwise nothing happens.
    pub fn restart(&mut self, step: u64, time: f64) -> Result<(), String> {
        if self.cur.max_step.is_none_or(|m| m < step) {
            return Ok(());
        }
        let at = step.checked_sub(1).ok_or_else(|| {
            "the source goes back to step 0 after later steps: a forklog run cannot rewind before step 0".to_string()
        })?;
        let prev = std::mem::take(&mut self.cur);
        self.done.push(prev);
        self.cur.rewind_at = Some(at);
        // The visible history now ends at `at` (events placed before any new row).
        self.cur.max_step = Some(at);
        self.starts.push(time);
        self.last_row = Some(at);
        for v in self.last_key.values_mut() {
            *v = (*v).min(at);
        }
        Ok(())
    }

    /// Adds an event after every row written so far in this part.
    pub fn event(&mut self, ev: PlanEvent) {
        self.cur.anchored.push((self.cur.max_step, ev));
    }

    /// Adds a system sample placed by its time when the run is finished.
    pub fn timed(&mut self, time: f64, ev: PlanEvent) {
        self.timed.push((time, ev));
    }

    /// The parts: rows in step order, events in their places (see the module docs).
    pub fn finish(mut self) -> Vec<Part> {
        let cur = std::mem::take(&mut self.cur);
        self.done.push(cur);
        let mut timed = std::mem::take(&mut self.timed);
        timed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut timed = timed.into_iter().peekable();
        let n = self.done.len();
        let mut parts = Vec::with_capacity(n);
        for (i, s) in self.done.into_iter().enumerate() {
            let next_start = self.starts.get(i + 1).copied().unwrap_or(f64::INFINITY);
            let mut events = Vec::with_capacity(s.rows.len() + s.anchored.len());
            let mut anchored = s.anchored.into_iter().peekable();
            while let Some(ev) = anchored.next_if(|(a, _)| a.is_none()) {
                events.push(ev.1);
            }
            for (step, (time, metrics)) in s.rows {
                while let Some(ev) = anchored.next_if(|(a, _)| a.is_some_and(|a| a < step)) {
                    events.push(ev.1);
                }
                while let Some(ev) = timed.next_if(|(t, _)| *t < time && *t < next_start) {
                    events.push(ev.1);
                }
                events.push(PlanEvent::Log { step, time, metrics });
            }
            while let Some(ev) = timed.next_if(|(t, _)| *t < next_start || i + 1 == n) {
                events.push(ev.1);
            }
            events.extend(anchored.map(|(_, e)| e));
            parts.push(Part { rewind_at: s.rewind_at, events });
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(p: &Part) -> Vec<u64> {
        p.events.iter().filter_map(|e| if let PlanEvent::Log { step, .. } = e { Some(*step) } else { None }).collect()
    }

    #[test]
    fn per_key_keys_written_one_after_another_merge() {
        let mut a = Assembler::new(Restart::PerKey);
        for s in 0..3 {
            a.point(s, s as f64, "a", Value::Int(s as i64)).unwrap();
        }
        for s in 0..3 {
            a.point(s, 10.0 + s as f64, "b", Value::Int(s as i64)).unwrap();
        }
        let parts = a.finish();
        assert_eq!(parts.len(), 1);
        assert_eq!(steps(&parts[0]), vec![0, 1, 2]);
    }

    #[test]
    fn lower_step_is_a_rewind_and_same_step_merges() {
        let mut a = Assembler::new(Restart::PerRow);
        a.event(PlanEvent::Config(Metrics::new()));
        for s in 0..5 {
            a.point(s, s as f64, "a", Value::Int(s as i64)).unwrap();
        }
        a.point(4, 4.5, "b", Value::Int(9)).unwrap();
        a.point(2, 6.0, "a", Value::Int(20)).unwrap();
        a.point(3, 7.0, "a", Value::Int(30)).unwrap();
        a.event(PlanEvent::Finish(0));
        let parts = a.finish();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].events[0], PlanEvent::Config(Metrics::new()));
        assert_eq!(steps(&parts[0]), vec![0, 1, 2, 3, 4]);
        assert_eq!(parts[1].rewind_at, Some(1));
        assert_eq!(steps(&parts[1]), vec![2, 3]);
        assert_eq!(parts[1].events.last(), Some(&PlanEvent::Finish(0)));
        let PlanEvent::Log { metrics, time, .. } = &parts[0].events[5] else { panic!() };
        assert_eq!(metrics.len(), 2);
        assert_eq!(*time, 4.5);
    }

    #[test]
    fn rewind_before_zero_is_an_error() {
        let mut a = Assembler::new(Restart::PerRow);
        a.point(3, 0.0, "a", Value::Int(0)).unwrap();
        assert!(a.point(0, 1.0, "a", Value::Int(0)).is_err());
    }
}
