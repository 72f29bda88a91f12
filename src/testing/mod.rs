//! Testing kit for forklog and for trackers that embed it (feature `testing`).
//!
//! - [`faultfs`]: an in-memory [`Vfs`](crate::vfs::Vfs) that simulates crashes and injects I/O faults.
//! - [`model`]: [`Model`], a simple in-memory reference model of a whole store.
//! - [`strategies`]: proptest strategies for values, metric maps, histories, fork trees and store operations.
//! - [`Harness`]: runs [`Op`]s against a real store and the model side by side.
//! - [`assert_store_matches`]: compares everything a store shows with the model.
//!
//! A tracker that embeds forklog drives its own code against a [`Store`] and the same operations against a
//! [`Model`], then calls [`assert_store_matches`]:
//!
//! ```
//! use forklog::testing::{assert_store_matches, Model};
//! use forklog::{metrics, ForkPoint, Store};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path()).unwrap();
//! let mut model = Model::new();
//!
//! let mut w = store.create_run("base").unwrap();
//! model.create_run("base").unwrap();
//! for step in 0..5u32 {
//!     let (t, m) = (1_700_000_000.0 + f64::from(step), metrics! { "loss" => 1.0 / f64::from(step + 1) });
//!     w.log_with_time(None, t, m.clone()).unwrap();
//!     model.log("base", None, Some(t), m).unwrap();
//! }
//! w.finish(0).unwrap();
//! model.finish("base", 0).unwrap();
//! drop(store.fork("f", &ForkPoint::new("base", 2)).unwrap());
//! model.fork("f", &ForkPoint::new("base", 2)).unwrap();
//! model.close("f");
//!
//! assert_store_matches(&store, &model).unwrap();
//! ```

use std::collections::BTreeSet;
use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::event::{EventRecord, LogRow};
use crate::info::RunInfo;
use crate::replay::HistoryOptions;
use crate::store::Store;
use crate::value::{Metrics, Value};

pub mod faultfs;
mod harness;
pub mod model;
pub mod strategies;

pub use harness::Harness;
pub use model::Model;
pub use strategies::{ForkTree, Op};

/// True when two errors are the same for a model comparison: the same variant with the same run, step and
/// id fields (messages, paths and I/O sources are not compared).
pub fn same_error(a: &Error, b: &Error) -> bool {
    use Error::*;
    match (a, b) {
        (InvalidRunId { id: x, .. }, InvalidRunId { id: y, .. }) => x == y,
        (InvalidSpec { spec: x, .. }, InvalidSpec { spec: y, .. }) => x == y,
        (RunNotFound { run: x }, RunNotFound { run: y })
        | (RunExists { run: x }, RunExists { run: y })
        | (RunBusy { run: x }, RunBusy { run: y })
        | (ForkOntoItself { run: x }, ForkOntoItself { run: y })
        | (ReadOnlyVersion { run: x }, ReadOnlyVersion { run: y })
        | (Poisoned { run: x, .. }, Poisoned { run: y, .. }) => x == y,
        (StepNotIncreasing { run: r, last: l, got: g }, StepNotIncreasing { run: s, last: m, got: h }) => {
            r == s && l == m && g == h
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// Compares a model result with a store result; on a difference, returns a message naming `what`.
pub fn compare<T: Debug>(
    what: &str,
    model: &Result<T>,
    store: &Result<T>,
    eq: impl Fn(&T, &T) -> bool,
) -> std::result::Result<(), String> {
    match (model, store) {
        (Ok(m), Ok(s)) if eq(m, s) => Ok(()),
        (Err(m), Err(s)) if same_error(m, s) => Ok(()),
        (m, s) => Err(format!("{what}: model and store differ\n  model: {}\n  store: {}", show(m), show(s))),
    }
}

/// `Debug` output cut to about 600 characters (long blobs would drown the difference).
fn clip<T: Debug + ?Sized>(x: &T) -> String {
    let s = format!("{x:?}");
    if s.chars().count() <= 600 {
        return s;
    }
    let head: String = s.chars().take(400).collect();
    let tail: String = s.chars().skip(s.chars().count() - 150).collect();
    format!("{head} …✂… {tail}")
}

fn show<T: Debug>(r: &Result<T>) -> String {
    match r {
        Ok(x) => format!("Ok({})", clip(x)),
        Err(e) => format!("Err({e:?})"),
    }
}

/// Compares two lists element by element; on a difference, names the first differing index.
fn compare_lists<T: Debug>(
    what: &str,
    model: &Result<Vec<T>>,
    store: &Result<Vec<T>>,
    eq: impl Fn(&T, &T) -> bool,
) -> std::result::Result<(), String> {
    if let (Ok(m), Ok(s)) = (model, store) {
        if let Some(i) = (0..m.len().max(s.len())).find(|&i| match (m.get(i), s.get(i)) {
            (Some(a), Some(b)) => !eq(a, b),
            _ => true,
        }) {
            return Err(format!(
                "{what}: model has {} items, store {}; first difference at #{i}\n  model: {}\n  store: {}",
                m.len(),
                s.len(),
                clip(&m.get(i)),
                clip(&s.get(i))
            ));
        }
        return Ok(());
    }
    compare(what, model, store, |_, _| true)
}

fn collect<T>(r: Result<impl Iterator<Item = Result<T>>>) -> Result<Vec<T>> {
    r?.collect()
}

/// A few filters to replay `run` with, derived from the model's history so ranges fall inside it.
fn filters(model: &Model, run: &str) -> Vec<(&'static str, HistoryOptions)> {
    let steps: Vec<u64> =
        model.history(run, &HistoryOptions::new()).unwrap_or_default().iter().map(|r| r.step).collect();
    let (from, to) = match steps.len() {
        0 => (1, 3),
        n => (steps[n / 3], steps[(2 * n) / 3]),
    };
    vec![
        ("from/to", HistoryOptions::new().from_step(from).to_step(to)),
        ("from", HistoryOptions::new().from_step(from.saturating_add(1))),
        ("keys", HistoryOptions::new().keys(["loss", "λ", "nope"])),
        ("own_only", HistoryOptions::new().own_only(true)),
    ]
}

/// A value as columnar reads give it: floats as they are, integers converted, booleans as 0 or 1, others `None`.
pub fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// The reference for [`Store::columns`]: the model's history rows turned into columns the obvious way.
pub fn columns_of(rows: &[LogRow], keys: Option<&[crate::Key]>) -> crate::Columns {
    let names: Vec<String> = match keys {
        Some(k) => k.iter().fold(Vec::new(), |mut v, x| {
            if !v.iter().any(|y: &String| y.as_str() == &**x) {
                v.push(x.to_string());
            }
            v
        }),
        None => rows
            .iter()
            .flat_map(|r| r.metrics.keys().map(|k| k.to_string()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    crate::Columns {
        steps: rows.iter().map(|r| r.step).collect(),
        times: rows.iter().map(|r| r.time).collect(),
        columns: names
            .iter()
            .map(|k| {
                let mut c = crate::Column::new(k.as_str());
                for r in rows {
                    let v = r.metrics.get(k.as_str());
                    c.values.push(v.and_then(numeric));
                    if let Some(v) = v {
                        c.kinds.insert(crate::ValueKinds::of(v));
                    }
                }
                c
            })
            .collect(),
    }
}

/// True when store columns equal the model's: same steps, keys, value bits and value kinds; times as
/// [`model::time_matches`].
pub fn columns_match(model: &crate::Columns, store: &crate::Columns) -> bool {
    let bits = |c: &crate::Column| c.values.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
    model.steps == store.steps
        && model.times.len() == store.times.len()
        && model.times.iter().zip(&store.times).all(|(m, s)| model::time_matches(*m, *s))
        && model.columns.len() == store.columns.len()
        && model
            .columns
            .iter()
            .zip(&store.columns)
            .all(|(m, s)| m.key == s.key && bits(m) == bits(s) && m.kinds == s.kinds)
}

/// Compares every read of one run (`ID` or `ID@vK`) with the model.
fn check_run(store: &Store, model: &Model, run: &str, out: &mut Vec<String>) {
    let mut check = |r: std::result::Result<(), String>| {
        if let Err(e) = r {
            out.push(e);
        }
    };
    let plain = HistoryOptions::new();
    check(compare_lists(
        &format!("history({run})"),
        &model.history(run, &plain),
        &collect(store.history(run)),
        model::row_matches,
    ));
    check(compare_lists(
        &format!("events({run})"),
        &model.events(run, &plain),
        &collect(store.events(run)),
        model::event_matches,
    ));
    for (name, opts) in std::iter::once(("plain", plain.clone())).chain(filters(model, run)) {
        check(compare(
            &format!("columns({run}, {name}: {opts:?})"),
            &model.history(run, &opts).map(|rows| columns_of(&rows, opts.keys.as_deref())),
            &store.columns(run, &opts),
            columns_match,
        ));
        if name == "plain" {
            continue;
        }
        check(compare_lists::<LogRow>(
            &format!("history_with({run}, {name}: {opts:?})"),
            &model.history(run, &opts),
            &collect(store.history_with(run, &opts)),
            model::row_matches,
        ));
        if name == "from/to" || name == "keys" {
            check(compare_lists::<EventRecord>(
                &format!("events_with({run}, {name}: {opts:?})"),
                &model.events(run, &opts),
                &collect(store.events_with(run, &opts)),
                model::event_matches,
            ));
        }
    }
    check(compare_lists(
        &format!("system({run})"),
        &model.system(run),
        &collect(store.system(run)),
        model::event_matches,
    ));
    check(compare::<Metrics>(&format!("summary({run})"), &model.summary(run), &store.summary(run), |a, b| a == b));
    check(compare(&format!("config({run})"), &model.config(run), &store.config(run), |a, b| a == b));
    check(compare(&format!("info({run})"), &model.info(run), &store.info(run), model::info_matches));
    check(compare(&format!("lineage({run})"), &model.lineage(run), &store.lineage(run), |a, b| a == b));
}

/// Compares everything a store shows with the model and returns every difference found:
///
/// - `runs()` and `runs_all()` (every field but `created`);
/// - for every live run and each of its versions: `history` (plain, with a step range, from a step, with a
///   key filter, own rows only), `events` (plain, with a range, with keys), `system`, `summary`, `config`,
///   `info` and `lineage`, and the run's `children`;
/// - for every deleted run: reads fail with `RunNotFound`.
///
/// Times the model does not know ([`model::UNKNOWN_TIME`]) match any time.
pub fn assert_store_matches(store: &Store, model: &Model) -> std::result::Result<(), String> {
    let mut out = Vec::new();
    fn infos(r: &Result<Vec<RunInfo>>) -> std::result::Result<Vec<String>, String> {
        r.as_ref().map(|v| v.iter().map(|i| i.run_ref().to_string()).collect()).map_err(|e| e.to_string())
    }
    for (what, m, s) in [("runs()", model.runs(), store.runs()), ("runs_all()", model.runs_all(), store.runs_all())] {
        let m = Ok(m);
        if let Err(e) = compare_lists(what, &m, &s, model::info_matches) {
            out.push(format!("{e}\n  model lists: {:?}\n  store lists: {:?}", infos(&m), infos(&s)));
        }
    }
    for id in model.run_ids() {
        if model.is_deleted(&id) {
            let s = store.info(&id).map(|_| ());
            if let Err(e) =
                compare(&format!("info({id}) of a deleted run"), &model.info(&id).map(|_| ()), &s, |_, _| true)
            {
                out.push(e);
            }
            continue;
        }
        check_run(store, model, &id, &mut out);
        for v in model.versions(&id) {
            check_run(store, model, &format!("{id}@v{v}"), &mut out);
        }
        if let Err(e) =
            compare_lists(&format!("children({id})"), &model.children(&id), &store.children(&id), model::info_matches)
        {
            out.push(e);
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out.join("\n"))
    }
}
