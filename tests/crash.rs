//! Crash consistency: whatever a crash does to unsynced bytes and directory entries (every
//! [`CrashMode`] of the fault-injecting file system), a store reopened afterwards exposes, for every run
//! and every archived version, a prefix of what was written — nothing after the first bad record, never
//! a half-written fork or rewind header — that contains every event acknowledged by a successful sync
//! (a `SyncPolicy::Always` call or an explicit `sync()`); every acknowledged fork can read its whole
//! inherited history; a deleted run never comes back and gc never removes what a fork reads; `verify()`
//! shows only torn tails before any recovery, and is clean after; a fork made right after the crash,
//! before any recovery, pins only bytes that exist; reopening and resuming never panic, and recovery never
//! changes what readers see.
//!
//! Drivers: seeded random workloads (create, log, log_batch, config and summary patches, fork, rewind,
//! flush, sync, close, delete, gc) crashed in every mode over several rounds (`FORKLOG_CRASH_SEEDS`
//! scales them); an exhaustive cut test that rebuilds the file system as of every byte offset of every
//! write of a small store (and a power loss at every step) and checks each state; and minimal regression
//! states for the bugs these found.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use forklog::testing::faultfs::{CrashMode, Entries, FaultFs, OpKind, Unsynced};
use forklog::{Error, Event, ForkPoint, Key, Metrics, Options, RunWriter, Store, SyncPolicy, Value};

/// SplitMix64: a tiny seeded generator so every failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The events this test writes, without timestamps (those are wall-clock).
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Log(u64, Metrics),
    Config(u64, Metrics),
    Summary(u64, Metrics),
}

impl Ev {
    fn step(&self) -> u64 {
        match self {
            Ev::Log(s, _) | Ev::Config(s, _) | Ev::Summary(s, _) => *s,
        }
    }
}

fn ev_of(e: &Event) -> Ev {
    match e {
        Event::Log { step, metrics, .. } => Ev::Log(*step, metrics.clone()),
        Event::Config { step, patch } => Ev::Config(*step, patch.clone()),
        Event::Summary { step, patch } => Ev::Summary(*step, patch.clone()),
        other => panic!("this test never writes {other:?}"),
    }
}

/// One version of a run in the model.
#[derive(Debug, Clone, Default)]
struct Version {
    /// Every visible event, inherited ones included, in order.
    events: Vec<Ev>,
    /// Fork or rewind step.
    floor: Option<u64>,
    /// How many leading events are acknowledged as durable.
    acked: usize,
}

impl Version {
    fn last_log(&self) -> Option<u64> {
        self.events.iter().rev().find_map(|e| match e {
            Ev::Log(s, _) => Some(*s),
            _ => None,
        })
    }
    fn last(&self) -> Option<u64> {
        match (self.last_log(), self.floor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
    fn next_step(&self) -> u64 {
        self.last().map_or(0, |s| s + 1)
    }
    fn current_step(&self) -> u64 {
        self.last().unwrap_or(0)
    }
    fn inherit(&self, step: u64, durable: bool) -> Version {
        let events: Vec<Ev> = self.events.iter().filter(|e| e.step() <= step).cloned().collect();
        let acked = if durable { events.len() } else { 0 };
        Version { events, floor: Some(step), acked }
    }
}

#[derive(Debug, Clone)]
struct RunModel {
    versions: Vec<Version>,
    /// The newest version whose header is acknowledged as durable (`None`: not even the run).
    acked_version: Option<usize>,
    /// `delete_run` returned: the run must stay gone.
    deleted: bool,
    /// A `delete_run` may have taken effect (the cut test, during the call).
    maybe_deleted: bool,
}

impl RunModel {
    fn cur(&mut self) -> &mut Version {
        let n = self.versions.len() - 1;
        &mut self.versions[n]
    }
}

fn metric_row(rng: &mut Rng, step_hint: u64) -> Metrics {
    let mut m = Metrics::new();
    m.insert(Key::from("loss"), Value::Float(1.0 / (step_hint as f64 + 1.5) + rng.below(1000) as f64 * 1e-9));
    if rng.chance(50) {
        m.insert(Key::from("acc"), Value::Int(rng.below(1 << 40) as i64 - (1 << 39)));
    }
    if rng.chance(15) {
        // New key names now and then: key-table writes in the middle of the workload.
        m.insert(Key::from(format!("k{}", rng.below(40))), Value::Str("x".repeat(rng.below(60) as usize)));
    }
    if rng.chance(5) {
        m.insert(Key::from("blob"), Value::Bytes((0..rng.below(300)).map(|i| i as u8).collect()));
    }
    m
}

/// A store on a fault-injecting file system, a workload driver and the reference model.
struct World {
    fs: Arc<FaultFs>,
    policy: SyncPolicy,
    buffer: usize,
    store: Option<Store>,
    writers: BTreeMap<String, RunWriter>,
    model: BTreeMap<String, RunModel>,
    next_id: u32,
    /// For the cut test: the model after every completed call, with the journal position then.
    marks: Option<Marks>,
}

/// `(journal position, model)` after each completed call.
type Marks = Vec<(usize, BTreeMap<String, RunModel>)>;

fn opts(fs: &Arc<FaultFs>, policy: SyncPolicy, buffer: usize) -> Options {
    Options::default().vfs(fs.clone()).sync(policy).buffer_size(buffer).segment_size(4096)
}

fn events_of(store: &Store, run: &str) -> forklog::Result<Vec<Ev>> {
    store.events(run)?.map(|r| r.map(|rec| ev_of(&rec.event))).collect()
}

fn durable(policy: SyncPolicy) -> bool {
    policy != SyncPolicy::Never
}

impl World {
    fn new(policy: SyncPolicy, buffer: usize) -> World {
        let fs = FaultFs::new();
        let store = Store::open_with(FaultFs::store_path(), opts(&fs, policy, buffer)).expect("open a new store");
        World {
            fs,
            policy,
            buffer,
            store: Some(store),
            writers: BTreeMap::new(),
            model: BTreeMap::new(),
            next_id: 0,
            marks: None,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("store is open")
    }

    fn durable(&self) -> bool {
        durable(self.policy)
    }

    fn writer(&mut self, id: &str) -> &mut RunWriter {
        if !self.writers.contains_key(id) {
            let w = self.store().resume(id).unwrap_or_else(|e| panic!("resume {id}: {e}"));
            self.writers.insert(id.to_string(), w);
        }
        self.writers.get_mut(id).expect("just inserted")
    }

    /// After a successful write call on `id`: under `Always` everything is acknowledged.
    fn after_write(&mut self, id: &str) {
        if self.policy == SyncPolicy::Always {
            let v = self.model.get_mut(id).expect("modelled").cur();
            v.acked = v.events.len();
        }
        self.mark();
    }

    /// Runs that can be written, forked and rewound (not deleted).
    fn ids(&self) -> Vec<String> {
        self.model.iter().filter(|(_, r)| !r.deleted).map(|(id, _)| id.clone()).collect()
    }

    /// Records the model as of the current journal position (for the cut test).
    fn mark(&mut self) {
        let pos = self.fs.journal_len();
        if let Some(m) = self.marks.as_mut() {
            m.push((pos, self.model.clone()));
        }
    }

    fn create(&mut self, id: &str) {
        let w = self.store().create_run(id).unwrap_or_else(|e| panic!("create {id}: {e}"));
        self.writers.insert(id.to_string(), w);
        let acked_version = self.durable().then_some(0);
        self.model.insert(
            id.to_string(),
            RunModel { versions: vec![Version::default()], acked_version, deleted: false, maybe_deleted: false },
        );
        self.mark();
    }

    fn log(&mut self, id: &str, rng: &mut Rng) {
        let next = self.model[id].versions.last().expect("a version").next_step();
        let explicit = rng.chance(30).then(|| next + rng.below(3));
        let m = metric_row(rng, next);
        let w = self.writer(id);
        let step = match explicit {
            Some(s) => w.log_at(s, m.clone()).map(|_| s),
            None => w.log(m.clone()),
        }
        .unwrap_or_else(|e| panic!("log {id}: {e}"));
        assert_eq!(step, explicit.unwrap_or(next), "{id}: the step log() picked");
        self.model.get_mut(id).expect("modelled").cur().events.push(Ev::Log(step, m));
        self.after_write(id);
    }

    fn log_batch(&mut self, id: &str, rng: &mut Rng) {
        let mut next = self.model[id].versions.last().expect("a version").next_step();
        let mut rows = Vec::new();
        let mut evs = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let m = metric_row(rng, next);
            let explicit = rng.chance(30).then(|| next + rng.below(3));
            let s = explicit.unwrap_or(next);
            rows.push((explicit, m.clone()));
            evs.push(Ev::Log(s, m));
            next = s + 1;
        }
        let last = self.writer(id).log_batch(rows).unwrap_or_else(|e| panic!("log_batch {id}: {e}"));
        assert_eq!(last, evs.last().map(Ev::step));
        self.model.get_mut(id).expect("modelled").cur().events.extend(evs);
        self.after_write(id);
    }

    fn config(&mut self, id: &str, rng: &mut Rng) {
        let step = self.model[id].versions.last().expect("a version").current_step();
        let mut patch = Metrics::new();
        patch.insert(Key::from("lr"), Value::Float(rng.below(1000) as f64 / 1e4));
        if rng.chance(50) {
            patch.insert(Key::from("opt"), Value::Str(format!("adam{}", rng.below(9))));
        }
        let summary = rng.chance(25);
        let w = self.writer(id);
        let res = if summary { w.set_summary(patch.clone()) } else { w.set_config(patch.clone()) };
        res.unwrap_or_else(|e| panic!("config {id}: {e}"));
        let ev = if summary { Ev::Summary(step, patch) } else { Ev::Config(step, patch) };
        self.model.get_mut(id).expect("modelled").cur().events.push(ev);
        self.after_write(id);
    }

    fn sync(&mut self, id: &str) {
        self.writer(id).sync().unwrap_or_else(|e| panic!("sync {id}: {e}"));
        if self.durable() {
            let v = self.model.get_mut(id).expect("modelled").cur();
            v.acked = v.events.len();
        }
        self.mark();
    }

    fn flush(&mut self, id: &str) {
        self.writer(id).flush().unwrap_or_else(|e| panic!("flush {id}: {e}"));
        self.mark();
    }

    /// Closes the writer (flushes; syncs unless Never). Not an acknowledgement: drop has no result.
    fn close(&mut self, id: &str) {
        self.writers.remove(id);
        self.mark();
    }

    fn fork(&mut self, child: &str, parent: &str, version: Option<usize>, step: u64) {
        let run = &self.model[parent];
        let nv = run.versions.len();
        let ver = version.unwrap_or(nv - 1);
        let spec =
            if ver + 1 == nv { format!("{parent}?_step={step}") } else { format!("{parent}@v{ver}?_step={step}") };
        let point: ForkPoint = spec.parse().expect("valid spec");
        let inherited = run.versions[ver].inherit(step, self.durable());
        let w = self.store().fork(child, &point).unwrap_or_else(|e| panic!("fork {child} from {spec}: {e}"));
        assert_eq!(w.next_step(), inherited.next_step(), "fork {child} from {spec}: next step");
        self.writers.insert(child.to_string(), w);
        let acked_version = self.durable().then_some(0);
        self.model.insert(
            child.to_string(),
            RunModel { versions: vec![inherited], acked_version, deleted: false, maybe_deleted: false },
        );
        self.mark();
    }

    fn rewind(&mut self, id: &str, step: u64) {
        self.writers.remove(id);
        let durable = self.durable();
        let w = self.store().rewind(id, step).unwrap_or_else(|e| panic!("rewind {id} to {step}: {e}"));
        let run = self.model.get_mut(id).expect("modelled");
        let old = run.cur();
        if durable {
            // The archived version was sealed: synced before the new header was written.
            old.acked = old.events.len();
        }
        let new = old.inherit(step, durable);
        assert_eq!(w.next_step(), new.next_step(), "rewind {id} to {step}: next step");
        run.versions.push(new);
        if durable {
            run.acked_version = Some(run.versions.len() - 1);
        }
        self.writers.insert(id.to_string(), w);
        self.mark();
    }

    /// Deletes a run (always durable). Its forks keep reading its files.
    fn delete(&mut self, id: &str) {
        self.writers.remove(id);
        self.store().delete_run(id).unwrap_or_else(|e| panic!("delete {id}: {e}"));
        self.model.get_mut(id).expect("modelled").deleted = true;
        self.mark();
    }

    fn gc(&mut self) {
        self.store().gc().unwrap_or_else(|e| panic!("gc: {e}"));
        self.mark();
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("r{}", self.next_id - 1)
    }

    /// One random operation.
    fn step(&mut self, rng: &mut Rng) {
        let ids = self.ids();
        let roll = rng.below(100);
        if ids.is_empty() || (roll < 6 && ids.len() < 5) {
            let id = self.new_id();
            self.create(&id);
            return;
        }
        let id = rng.pick(&ids).clone();
        match roll {
            0..=39 => self.log(&id, rng),
            40..=51 => self.log_batch(&id, rng),
            52..=59 => self.config(&id, rng),
            60..=67 => self.sync(&id),
            68..=71 => self.flush(&id),
            72..=79 => self.close(&id),
            80..=82 => self.delete(&id),
            83 => self.gc(),
            84..=91 => {
                let child = self.new_id();
                let nv = self.model[&id].versions.len();
                let ver = (nv > 1 && rng.chance(30)).then(|| rng.below(nv as u64 - 1) as usize);
                let last = self.model[&id].versions[ver.unwrap_or(nv - 1)].last();
                let step = rng.below(last.map_or(3, |l| l + 3));
                self.fork(&child, &id, ver, step);
            }
            _ => {
                let last = self.model[&id].versions.last().expect("a version").last();
                let step = rng.below(last.map_or(3, |l| l + 3));
                self.rewind(&id, step);
            }
        }
    }

    /// Crashes, reopens and checks every invariant; then adopts what survived as the new model.
    fn crash_and_check(&mut self, mode: CrashMode, ctx: &str) {
        self.fs.crash(mode);
        // The dead process's writers and store go away; their last flushes fail on dead handles.
        self.writers.clear();
        self.store = None;
        let store = Store::open_with(FaultFs::store_path(), opts(&self.fs, self.policy, self.buffer))
            .unwrap_or_else(|e| panic!("{ctx}: reopen after crash: {e}"));
        let mut observed = check_store(&store, &self.model, ctx);
        // A fork of a run no writer has recovered yet must pin only bytes that exist.
        if let Some((parent, (_, versions))) = observed.iter().nth(mode.seed as usize % observed.len().max(1)) {
            let cur = versions.last().expect("current");
            let last = cur.iter().map(Ev::step).max().unwrap_or(0);
            let step = mode.seed % (last + 3);
            let child = self.new_id();
            let w = store.fork(&child, &ForkPoint::new(parent.clone(), step));
            let w = w.unwrap_or_else(|e| panic!("{ctx}: fork {child} from {parent}?_step={step} before recovery: {e}"));
            drop(w);
            let want: Vec<Ev> = cur.iter().filter(|e| e.step() <= step).cloned().collect();
            let got = events_of(&store, &child).unwrap_or_else(|e| panic!("{ctx}: events({child}): {e}"));
            assert_eq!(got, want, "{ctx}: fork {child} of {parent} at {step} before recovery");
            let durable = self.durable();
            let floor = Some(step);
            let acked = if durable { want.len() } else { 0 };
            let v = Version { events: want.clone(), floor, acked };
            let run = RunModel {
                versions: vec![v],
                acked_version: durable.then_some(0),
                deleted: false,
                maybe_deleted: false,
            };
            self.model.insert(child.clone(), run);
            observed.insert(child, (0, vec![want]));
        }
        resume_all_and_verify(&store, &observed, ctx);
        // Adopt the survivors.
        let mut model = BTreeMap::new();
        for (id, (version, versions)) in observed {
            let old = &self.model[&id];
            let mut run = RunModel {
                versions: Vec::new(),
                acked_version: old.acked_version,
                deleted: false,
                maybe_deleted: false,
            };
            for (j, evs) in versions.into_iter().enumerate() {
                let v = &old.versions[j];
                run.versions.push(Version { acked: v.acked.min(evs.len()), events: evs, floor: v.floor });
            }
            assert_eq!(run.versions.len(), version + 1);
            model.insert(id, run);
        }
        self.model = model;
        self.store = Some(store);
    }
}

/// What a check observed: per run, its current version and the events of every version up to it.
type Observed = BTreeMap<String, (usize, Vec<Vec<Ev>>)>;

/// Checks a freshly opened store against the model: see the module docs.
fn check_store(store: &Store, model: &BTreeMap<String, RunModel>, ctx: &str) -> Observed {
    let listed = store.runs().unwrap_or_else(|e| panic!("{ctx}: runs(): {e}"));
    for info in &listed {
        let run = model.get(&info.id);
        assert!(run.is_some_and(|r| !r.deleted), "{ctx}: phantom or resurrected run {}", info.id);
    }
    let mut observed = Observed::new();
    for (id, run) in model {
        if run.deleted || run.maybe_deleted {
            match store.info(id) {
                Err(Error::RunNotFound { .. }) => continue,
                Ok(_) if !run.deleted => {}
                other => panic!("{ctx}: deleted run {id}: {:?}", other.map(|i| i.rows)),
            }
        }
        let info = match store.info(id) {
            Ok(info) => info,
            Err(Error::RunNotFound { .. }) => {
                assert!(run.acked_version.is_none(), "{ctx}: acknowledged run {id} vanished");
                assert!(listed.iter().all(|i| &i.id != id), "{ctx}: {id} listed but not found");
                continue;
            }
            Err(e) => panic!("{ctx}: info({id}): {e}"),
        };
        let v = info.version as usize;
        assert!(v < run.versions.len(), "{ctx}: {id} has version {v}, never written");
        if let Some(a) = run.acked_version {
            assert!(v >= a, "{ctx}: {id}: acknowledged version {a} lost (found v{v})");
        }
        let mut versions = Vec::new();
        for j in 0..=v {
            let name = if j == v { id.clone() } else { format!("{id}@v{j}") };
            let want = &run.versions[j];
            let got = events_of(store, &name).unwrap_or_else(|e| panic!("{ctx}: events({name}): {e}"));
            assert!(
                got.len() <= want.events.len() && got[..] == want.events[..got.len()],
                "{ctx}: {name} is not a prefix of what was written:\n got {got:?}\nwant {:?}",
                want.events
            );
            assert!(
                got.len() >= want.acked,
                "{ctx}: {name} lost acknowledged events: {} survived of {} acknowledged",
                got.len(),
                want.acked
            );
            // Rows, stats and the events view agree.
            let rows: Vec<(u64, Metrics)> = store
                .history(&name)
                .and_then(|h| h.map(|r| r.map(|r| (r.step, r.metrics))).collect())
                .unwrap_or_else(|e| panic!("{ctx}: history({name}): {e}"));
            let logs: Vec<(u64, Metrics)> = got
                .iter()
                .filter_map(|e| match e {
                    Ev::Log(s, m) => Some((*s, m.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(rows, logs, "{ctx}: history({name}) disagrees with events({name})");
            let info = store.info(&name).unwrap_or_else(|e| panic!("{ctx}: info({name}): {e}"));
            assert_eq!(info.rows, logs.len() as u64, "{ctx}: info({name}).rows");
            assert_eq!(info.events, got.len() as u64, "{ctx}: info({name}).events");
            versions.push(got);
        }
        observed.insert(id.clone(), (v, versions));
    }
    observed
}

/// Verifies, resumes every run (recovery cuts torn tails), checks that nothing visible changed, and verifies.
fn resume_all_and_verify(store: &Store, observed: &Observed, ctx: &str) {
    // Before any recovery: what a crash leaves is torn tails, never corruption.
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.is_clean(), "{ctx}: verify before recovery: {:#?}", report.problems);
    for (id, (_, versions)) in observed {
        let w = store.resume(id).unwrap_or_else(|e| panic!("{ctx}: resume({id}) after crash: {e}"));
        drop(w);
        let now = events_of(store, id).unwrap_or_else(|e| panic!("{ctx}: events({id}) after resume: {e}"));
        assert_eq!(&now, versions.last().expect("current"), "{ctx}: recovery changed what {id} shows");
    }
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.is_clean(), "{ctx}: verify after recovery: {:#?}", report.problems);
}

const POLICIES: [SyncPolicy; 3] = [SyncPolicy::Always, SyncPolicy::EveryMillis(1 << 40), SyncPolicy::Never];

fn seeds() -> u64 {
    std::env::var("FORKLOG_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4)
}

/// Random workloads crashed in every mode, several rounds each (the store keeps going after each crash).
fn random_workloads(policy: SyncPolicy) {
    let started = Instant::now();
    // Every mode, `Unsynced::Mixed` (reordered unsynced frames) included: see
    // `reordered_unsynced_frames_do_not_brick_the_run`.
    let modes: Vec<CrashMode> = CrashMode::all(0).into_iter().collect();
    for seed in 0..seeds() {
        for (m, mode) in modes.iter().enumerate() {
            let mut rng = Rng(seed * 1000 + m as u64 + 7);
            let buffer = *rng.pick(&[1usize, 100, 400, 2000]);
            let mut world = World::new(policy, buffer);
            for round in 0..3 {
                for _ in 0..10 + rng.below(50) {
                    world.step(&mut rng);
                }
                let mode = CrashMode { seed: rng.next(), ..*mode };
                let ctx = format!("{policy:?} seed {seed} mode {mode:?} buffer {buffer} round {round}");
                world.crash_and_check(mode, &ctx);
            }
        }
    }
    eprintln!("{policy:?}: {} seeds x {} modes in {:?}", seeds(), modes.len(), started.elapsed());
}

#[test]
fn random_workloads_always() {
    random_workloads(SyncPolicy::Always);
}

#[test]
fn random_workloads_every_millis() {
    random_workloads(POLICIES[1]);
}

#[test]
fn random_workloads_never() {
    random_workloads(SyncPolicy::Never);
}

/// The cut test's workload: five runs, a fork of a fork, a rewind, a fork of the archived version, ~50
/// rows, small frames and segments, two deletes and a gc.
/// Returns the model as of each journal position where an API call returned.
fn cut_workload(fs: &Arc<FaultFs>, policy: SyncPolicy) -> Marks {
    let mut world = World {
        fs: fs.clone(),
        policy,
        buffer: 150,
        store: None,
        writers: BTreeMap::new(),
        model: BTreeMap::new(),
        next_id: 0,
        marks: Some(vec![(0, BTreeMap::new())]),
    };
    world.store = Some(Store::open_with(FaultFs::store_path(), opts(fs, policy, 150)).expect("open"));
    world.mark();
    let mut rng = Rng(42);
    world.create("a");
    world.config("a", &mut rng);
    for _ in 0..2 {
        for _ in 0..7 {
            world.log("a", &mut rng);
        }
        world.sync("a");
    }
    let fork_at = world.model["a"].versions[0].last().expect("rows") - 4;
    world.fork("b", "a", None, fork_at);
    for _ in 0..6 {
        world.log("b", &mut rng);
    }
    world.log_batch("a", &mut rng);
    world.config("b", &mut rng);
    let fork_at = world.model["b"].versions[0].last().expect("rows") - 2;
    world.fork("c", "b", None, fork_at);
    for _ in 0..5 {
        world.log("c", &mut rng);
    }
    world.sync("c");
    world.flush("b");
    let rewind_to = world.model["a"].versions[0].last().expect("rows") / 2;
    world.rewind("a", rewind_to);
    for _ in 0..5 {
        world.log("a", &mut rng);
    }
    world.log_batch("b", &mut rng);
    world.sync("b");
    world.fork("d", "a", Some(0), rewind_to + 3);
    world.log("d", &mut rng);
    for id in ["a", "b", "c", "d"] {
        world.close(id);
    }
    // Deletes and gc: b goes but c still reads through it; e goes entirely.
    world.delete("b");
    world.create("e");
    for _ in 0..3 {
        world.log("e", &mut rng);
    }
    world.close("e");
    world.delete("e");
    world.gc();
    world.marks.take().expect("marks")
}

/// The model in force at journal position `pos`: the last mark at or before it.
fn model_at(marks: &[(usize, BTreeMap<String, RunModel>)], pos: usize) -> &BTreeMap<String, RunModel> {
    &marks.iter().rev().find(|(p, _)| *p <= pos).expect("the first mark is at 0").1
}

/// Before an API call returns, its effects may be partly on disk: the state of a journal position is
/// checked against the model of the last completed call, extended with the versions and runs the call
/// in progress may have created. Completed calls never shrink, so that is the model of the *next* mark
/// with its acknowledgements replaced by those of the previous one.
fn model_during(marks: &[(usize, BTreeMap<String, RunModel>)], pos: usize) -> BTreeMap<String, RunModel> {
    let before = model_at(marks, pos);
    let after = marks.iter().find(|(p, _)| *p > pos).map_or(before, |(_, m)| m);
    let mut out = BTreeMap::new();
    for (id, run) in after {
        let mut run = run.clone();
        match before.get(id) {
            None => {
                run.acked_version = None;
                for v in &mut run.versions {
                    v.acked = 0;
                }
            }
            Some(b) => {
                run.acked_version = b.acked_version;
                run.maybe_deleted = run.deleted && !b.deleted;
                run.deleted = b.deleted;
                for (j, v) in run.versions.iter_mut().enumerate() {
                    v.acked = b.versions.get(j).map_or(0, |bv| bv.acked);
                }
            }
        }
        out.insert(id.clone(), run);
    }
    out
}

/// Checks one rebuilt state; returns the panic message if an invariant broke.
fn check_cut(fs: Arc<FaultFs>, policy: SyncPolicy, model: &BTreeMap<String, RunModel>, ctx: &str) -> Option<String> {
    quiet_panics_in_cut_tests();
    QUIET.with(|q| q.set(true));
    let res = catch_unwind(AssertUnwindSafe(|| {
        let store = Store::open_with(FaultFs::store_path(), opts(&fs, policy, 150));
        let store = match store {
            Ok(s) => s,
            // Before the store file is complete the store may not open; nothing was acknowledged yet.
            Err(e) if model.is_empty() => {
                assert!(e.is_corruption() || matches!(e, Error::Io { .. }), "{ctx}: open: {e}");
                return;
            }
            Err(e) => panic!("{ctx}: open: {e}"),
        };
        let observed = check_store(&store, model, ctx);
        resume_all_and_verify(&store, &observed, ctx);
    }));
    QUIET.with(|q| q.set(false));
    res.err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Panics caught by `check_cut` are collected and reported together: keep them off stderr (other tests'
/// panics still print).
fn quiet_panics_in_cut_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
}

thread_local! {
    /// Set while `check_cut` runs a check whose panic it catches.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Which bytes of a write of `len` bytes to cut at: all of them for small writes; for large ones every
/// byte of the first and last 64 (headers, lengths, CRCs, tails) and an even sample in between.
fn cut_points(len: usize) -> Vec<usize> {
    if len <= 256 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..64).collect();
    v.extend((64..len - 64).step_by(((len - 128) / 64).max(1)));
    v.extend(len - 64..len);
    v
}

fn exhaustive_cuts(policy: SyncPolicy) {
    let started = Instant::now();
    let fs = FaultFs::new();
    let marks = cut_workload(&fs, policy);
    let mut replay = fs.replay();
    let total = replay.len();
    let (mut states, mut failures) = (0usize, Vec::new());
    loop {
        let pos = replay.position();
        let model = model_during(&marks, pos);
        // The state right before entry `pos` (every entry boundary, writes or not)...
        let ctx = format!("{policy:?}: before journal entry {pos}/{total} {:?}", replay.next_op());
        states += 1;
        if let Some(f) = check_cut(replay.fs(), policy, &model, &ctx) {
            failures.push(f);
        }
        // ... and the same after a power loss at that moment.
        let lost = replay.fs();
        lost.crash(CrashMode::POWER_LOSS);
        states += 1;
        if let Some(f) = check_cut(lost, policy, &model, &format!("{ctx} + power loss")) {
            failures.push(f);
        }
        // ... and every cut of it if it is a write.
        if let Some(op) = replay.next_op().filter(|o| o.kind == OpKind::Write) {
            for cut in cut_points(op.len).into_iter().skip(1) {
                let fs = replay.fs_with_partial(cut).expect("a write");
                states += 1;
                let ctx = format!("{ctx}, cut at byte {cut} of {}", op.len);
                if let Some(f) = check_cut(fs, policy, &model, &ctx) {
                    failures.push(f);
                }
            }
        }
        if !replay.advance().expect("replay") {
            break;
        }
    }
    eprintln!("{policy:?}: {states} crash states from {total} journal entries in {:?}", started.elapsed());
    if !failures.is_empty() {
        // Group by message shape (digits blanked) so one bug shows once, with its first instance.
        let mut kinds: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for f in &failures {
            let shape: String = f.chars().filter(|c| !c.is_ascii_digit()).collect();
            let shape = shape.split(": ").skip(2).collect::<Vec<_>>().join(": ");
            kinds.entry(shape).or_insert((0, f.clone())).0 += 1;
        }
        let report: Vec<String> = kinds.values().map(|(n, first)| format!("{n} x {first}")).collect();
        panic!("{} of {states} states failed:\n{}", failures.len(), report.join("\n\n"));
    }
}

#[test]
fn every_byte_of_every_write_always() {
    exhaustive_cuts(SyncPolicy::Always);
}

#[test]
fn every_byte_of_every_write_every_millis() {
    exhaustive_cuts(SyncPolicy::EveryMillis(1 << 40));
}

#[test]
fn every_byte_of_every_write_never() {
    exhaustive_cuts(SyncPolicy::Never);
}

/// A reopen after a crash needs no writer to read: reading a torn store before any recovery shows the
/// same prefix as after it (checked inside `check_store`/`resume_all_and_verify`), and a crash in a
/// mode that keeps nothing unsynced on a store where everything was synced loses nothing at all.
#[test]
fn synced_store_survives_every_mode_intact() {
    for mode in CrashMode::all(3) {
        let mut world = World::new(SyncPolicy::Always, 64);
        let mut rng = Rng(99);
        for _ in 0..60 {
            world.step(&mut rng);
        }
        let ctx = format!("{mode:?}");
        world.writers.clear();
        let before: BTreeMap<String, Vec<Ev>> =
            world.ids().into_iter().map(|id| (id.clone(), events_of(world.store(), &id).expect("events"))).collect();
        world.crash_and_check(mode, &ctx);
        for (id, evs) in before {
            assert_eq!(events_of(world.store(), &id).expect("events"), evs, "{ctx}: {id}");
        }
    }
}

#[test]
fn unsynced_modes_are_all_exercised() {
    // Guards the test itself: every data and entry fate is part of `CrashMode::all`.
    let all = CrashMode::all(0);
    for d in Unsynced::ALL {
        for e in Entries::ALL {
            assert!(all.contains(&CrashMode::new(d, e, 0)));
        }
    }
}

// ---- Regressions: minimal crash states that once broke an invariant ----

/// Opens the store on `fs` and returns every run's rows, or the first error.
fn all_rows(fs: &Arc<FaultFs>, policy: SyncPolicy) -> forklog::Result<BTreeMap<String, Vec<(u64, Metrics)>>> {
    let store = Store::open_with(FaultFs::store_path(), opts(fs, policy, 64))?;
    let mut out = BTreeMap::new();
    for info in store.runs()? {
        let rows = store.history(&info.id)?.map(|r| r.map(|r| (r.step, r.metrics))).collect::<forklog::Result<_>>()?;
        out.insert(info.id, rows);
    }
    Ok(out)
}

/// Resumes every run, then verifies; panics with `ctx` on any error or corruption.
fn resume_and_verify(fs: &Arc<FaultFs>, policy: SyncPolicy, ctx: &str) {
    let store = Store::open_with(FaultFs::store_path(), opts(fs, policy, 64)).expect("open");
    for info in store.runs().unwrap_or_else(|e| panic!("{ctx}: runs: {e}")) {
        drop(store.resume(&info.id).unwrap_or_else(|e| panic!("{ctx}: resume {}: {e}", info.id)));
    }
    let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
    assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
}

/// Every crash state around the journal entries that touch a file whose name contains `needle`: before
/// each of them, after a power loss there, and each write cut at every byte. `check` gets each state.
fn around(fs: &FaultFs, needle: &str, mut check: impl FnMut(Arc<FaultFs>, &str)) {
    let touching: Vec<usize> =
        fs.journal().iter().filter(|o| o.path.to_string_lossy().contains(needle)).map(|o| o.index).collect();
    let (first, last) = (*touching.first().expect("journal touches the file"), *touching.last().expect("one"));
    let mut r = fs.replay();
    while r.position() < first {
        r.advance().expect("replay");
    }
    while r.position() <= last + 1 {
        let op = r.next_op();
        let ctx = format!("before {op:?}");
        check(r.fs(), &ctx);
        let lost = r.fs();
        lost.crash(CrashMode::POWER_LOSS);
        check(lost, &format!("{ctx} + power loss"));
        if let Some(op) = op.filter(|o| o.kind == OpKind::Write) {
            for cut in 1..op.len {
                check(r.fs_with_partial(cut).expect("write"), &format!("{ctx} cut at {cut}"));
            }
        }
        if !r.advance().expect("replay") {
            break;
        }
    }
}

/// A writer that crashed while creating a segment and its index (or a power loss right after) must leave
/// an incomplete write, not corruption: readers show the rows before it, the next writer recovers, and
/// verify is clean. Found by the cut test: a segment or index with a partial 80- or 32-byte header made
/// every read of the run fail with "segment/index is shorter than its header".
#[test]
fn torn_segment_or_index_creation_is_a_torn_tail() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Always, 64)).expect("open");
    let mut w = store.create_run("r").expect("create");
    for i in 0..40u32 {
        w.log(forklog::metrics! { "x" => i, "pad" => "p".repeat(100) }).expect("log");
    }
    drop(w);
    let want = all_rows(&fs, SyncPolicy::Always).expect("rows");
    around(&fs, "v0-1.", |state, ctx| {
        let got = all_rows(&state, SyncPolicy::Always).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(got["r"].len() <= want["r"].len() && got["r"][..] == want["r"][..got["r"].len()], "{ctx}");
        resume_and_verify(&state, SyncPolicy::Always, ctx);
    });
}

/// A crash while a run's key table is being created (in particular a power loss after it was created and
/// dir-synced but before its header reached the disk, leaving an empty `vK.keys`) must not make the run
/// unreadable or impossible to resume: no frame uses a key before the table is durable.
#[test]
fn torn_key_table_creation_is_a_torn_tail() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Always, 64)).expect("open");
    let mut w = store.create_run("r").expect("create");
    w.log(forklog::metrics! { "x" => 1 }).expect("log");
    drop(w);
    around(&fs, "v0.keys", |state, ctx| {
        let got = all_rows(&state, SyncPolicy::Always).unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
        assert!(got["r"].len() <= 1, "{ctx}");
        resume_and_verify(&state, SyncPolicy::Always, ctx);
        let store = Store::open_with(FaultFs::store_path(), opts(&state, SyncPolicy::Always, 64)).expect("open");
        let mut w = store.resume("r").unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
        w.log(forklog::metrics! { "x" => 2 }).unwrap_or_else(|e| panic!("{ctx}: log after recovery: {e}"));
        drop(w);
        let n = all_rows(&state, SyncPolicy::Always).expect("rows")["r"].len();
        assert!(n == got["r"].len() + 1, "{ctx}");
        resume_and_verify(&state, SyncPolicy::Always, &format!("{ctx}, after relogging"));
    });
}

/// Under `SyncPolicy::Never` an OS crash may lose anything, but what survives must be consistent: a run,
/// fork or rewind header is whole or absent, never an empty or torn file that makes the run unreadable,
/// and a fork never points at parent bytes that did not survive.
#[test]
fn never_policy_power_loss_loses_but_never_corrupts() {
    for entries in Entries::ALL {
        let mode = CrashMode::new(Unsynced::Lost, entries, 5);
        let fs = FaultFs::new();
        let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never, 64)).expect("open");
        let mut w = store.create_run("a").expect("create");
        for i in 0..20u32 {
            w.log(forklog::metrics! { "x" => i }).expect("log");
        }
        drop(w);
        drop(store.fork("b", &ForkPoint::new("a", 10)).expect("fork"));
        drop(store.rewind("a", 5).expect("rewind"));
        fs.crash(mode);
        drop(store);
        let ctx = format!("{mode:?}");
        all_rows(&fs, SyncPolicy::Never).unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
        resume_and_verify(&fs, SyncPolicy::Never, &ctx);
    }
}

/// Unsynced index entries lost as zeros or garbage (the index is fsynced only when its segment is sealed)
/// must not make the active segment unreadable: the index is derived data.
#[test]
fn unsynced_index_entries_lost_as_garbage_are_not_corruption() {
    for data in [Unsynced::Zeroed, Unsynced::Garbage] {
        let fs = FaultFs::new();
        // Index entries every 4 KiB of frames; 32 KiB segments so several entries stay unsynced.
        let o = Options::default().vfs(fs.clone()).sync(SyncPolicy::Always).buffer_size(1).segment_size(32 << 10);
        let store = Store::open_with(FaultFs::store_path(), o).expect("open");
        let mut w = store.create_run("r").expect("create");
        for i in 0..300u32 {
            w.log(forklog::metrics! { "x" => i, "pad" => "p".repeat(60) }).expect("log");
        }
        fs.crash(CrashMode::new(data, Entries::Lost, 1));
        drop(w);
        drop(store);
        let ctx = format!("{data:?}");
        let got = all_rows(&fs, SyncPolicy::Always).unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
        assert_eq!(got["r"].len(), 300, "{ctx}: every row was acknowledged");
        resume_and_verify(&fs, SyncPolicy::Always, &ctx);
    }
}

/// Under `EveryMillis`/`Never` several frames can be unsynced at once, and a crash may persist a later one
/// but not an earlier one (SQLite's crash model; XFS/ext4 writeback order is not file order). Nothing
/// acknowledged is at stake — the hole is past the last sync. Regression: the engine called it corruption
/// ("valid frames follow") and refused to resume the run; now each frame records the segment's synced length,
/// so recovery cuts the hole and what follows it as a torn tail.
#[test]
fn reordered_unsynced_frames_do_not_brick_the_run() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::EveryMillis(1 << 40), 1)).expect("open");
    let mut w = store.create_run("r").expect("create");
    w.log(forklog::metrics! { "x" => 0 }).expect("log");
    w.sync().expect("sync");
    w.log(forklog::metrics! { "x" => 1 }).expect("log");
    w.log(forklog::metrics! { "x" => 2 }).expect("log");
    w.flush().expect("flush");
    let seg = "/fault/store/runs/r/v0-0.seg";
    let durable = fs.durable_contents(seg).expect("segment").len();
    // The crash kept the third frame but not the second: zero the second frame's bytes.
    let journal = fs.journal();
    let second = journal
        .iter()
        .find(|o| o.kind == OpKind::Write && o.path.ends_with("v0-0.seg") && o.offset as usize == durable)
        .expect("the first unsynced frame");
    fs.crash(CrashMode::PROCESS_KILL);
    drop(w);
    drop(store);
    let mut bytes = fs.contents(seg).expect("segment");
    bytes[second.offset as usize..second.offset as usize + second.len].fill(0);
    fs.set_contents(seg, &bytes).expect("edit");
    let got = all_rows(&fs, SyncPolicy::Always).unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(got["r"].len(), 1, "the synced row survives, nothing after the hole is shown");
    resume_and_verify(&fs, SyncPolicy::Always, "reordered");
}

/// Under `SyncPolicy::Never`, recovery that rewrote a stale step index (temp file + rename) must not let a
/// later crash undo the rename: the old index would come back naming a frame offset that now holds a
/// different frame, and the next recovery (which matches entries by offset) would keep it. Found by the
/// random workloads (verify: "index entries do not match the segment's frames").
#[test]
fn never_policy_index_rewrite_survives_a_second_crash() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never, 1)).expect("open");
    let mut w = store.create_run("r").expect("create");
    for i in 0..3u32 {
        w.log(forklog::metrics! { "x" => i }).expect("log");
    }
    drop(w);
    fs.crash(CrashMode::PROCESS_KILL);
    drop(store);
    // The disk lost the frames but kept the index entry naming the first one.
    let seg = "/fault/store/runs/r/v0-0.seg";
    let bytes = fs.contents(seg).expect("segment");
    fs.set_contents(seg, &bytes[..80]).expect("edit");
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never, 1)).expect("open");
    let mut w = store.resume("r").expect("resume rewrites the index");
    w.log_at(5, forklog::metrics! { "x" => 5 }).expect("log");
    drop(w);
    fs.crash(CrashMode::new(Unsynced::Kept, Entries::Lost, 0));
    drop(store);
    resume_and_verify(&fs, SyncPolicy::Never, "second crash");
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Never, 1)).expect("open");
    let rows: Vec<u64> = store.history("r").expect("history").map(|r| r.expect("row").step).collect();
    assert_eq!(rows, vec![5]);
}

/// A crash at any moment of `gc` removing a deleted run's directory (files go one by one, the tombstone
/// among them) must not bring the deleted run back, nor leave leftovers that break the store or a new run
/// created later under the same id.
#[test]
fn crash_during_gc_never_resurrects_a_deleted_run() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Always, 64)).expect("open");
    let mut w = store.create_run("e").expect("create");
    for i in 0..30u32 {
        w.log(forklog::metrics! { "x" => i, "pad" => "p".repeat(100) }).expect("log");
    }
    drop(w);
    let mut keep = store.create_run("keep").expect("create");
    keep.log(forklog::metrics! { "x" => 1 }).expect("log");
    drop(keep);
    store.delete_run("e").expect("delete");
    let start = fs.journal_len();
    let report = store.gc().expect("gc");
    assert_eq!(report.runs_removed, vec!["e".to_string()]);
    let end = fs.journal_len();
    drop(store);
    for pos in start..=end {
        for mode in
            [CrashMode::PROCESS_KILL, CrashMode::POWER_LOSS, CrashMode::new(Unsynced::Kept, Entries::Mixed, pos as u64)]
        {
            let ctx = format!("crash before journal entry {pos} of gc ({start}..{end}), {mode:?}");
            let state = fs.state_at(pos, None).expect("state");
            state.crash(mode);
            let store = Store::open_with(FaultFs::store_path(), opts(&state, SyncPolicy::Always, 64)).expect("open");
            match store.history("e") {
                Err(Error::RunNotFound { .. }) => {}
                other => panic!("{ctx}: the deleted run is back: {:?}", other.map(|h| h.count())),
            }
            let ids: Vec<String> =
                store.runs().unwrap_or_else(|e| panic!("{ctx}: {e}")).into_iter().map(|i| i.id).collect();
            assert_eq!(ids, vec!["keep".to_string()], "{ctx}");
            let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
            assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
            // The next gc finishes the job, and the id can be used again.
            store.gc().unwrap_or_else(|e| panic!("{ctx}: gc again: {e}"));
            let mut w = store.create_run("e").unwrap_or_else(|e| panic!("{ctx}: create e again: {e}"));
            w.log(forklog::metrics! { "y" => 1 }).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            drop(w);
            let rows = store.history("e").map(|h| h.count()).unwrap_or_else(|e| panic!("{ctx}: new e: {e}"));
            assert_eq!(rows, 1, "{ctx}");
            let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
            assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
        }
    }
}

/// A crash at any moment of `gc` trimming a deleted run down to what its fork still reads (segments past
/// the pinned one go, one by one) must leave the fork fully readable and the store clean.
#[test]
fn crash_during_gc_keeps_what_forks_read() {
    let fs = FaultFs::new();
    let store = Store::open_with(FaultFs::store_path(), opts(&fs, SyncPolicy::Always, 64)).expect("open");
    let mut w = store.create_run("d").expect("create");
    for i in 0..150u32 {
        w.log(forklog::metrics! { "x" => i, "pad" => "p".repeat(100) }).expect("log");
    }
    drop(w);
    let mut kid = store.fork("kid", &ForkPoint::new("d", 20)).expect("fork");
    kid.log(forklog::metrics! { "x" => 1000 }).expect("log");
    drop(kid);
    let want: Vec<(u64, Metrics)> = store
        .history("kid")
        .expect("kid")
        .map(|r| r.map(|r| (r.step, r.metrics)))
        .collect::<forklog::Result<_>>()
        .expect("rows");
    assert_eq!(want.len(), 22);
    store.delete_run("d").expect("delete");
    let start = fs.journal_len();
    let report = store.gc().expect("gc");
    assert!(report.files_removed > 4, "{report:?}");
    let end = fs.journal_len();
    drop(store);
    for pos in start..=end {
        for mode in [CrashMode::PROCESS_KILL, CrashMode::POWER_LOSS] {
            let ctx = format!("crash before journal entry {pos} of gc ({start}..{end}), {mode:?}");
            let state = fs.state_at(pos, None).expect("state");
            state.crash(mode);
            let store = Store::open_with(FaultFs::store_path(), opts(&state, SyncPolicy::Always, 64)).expect("open");
            let got: Vec<(u64, Metrics)> = store
                .history("kid")
                .and_then(|h| h.map(|r| r.map(|r| (r.step, r.metrics))).collect())
                .unwrap_or_else(|e| panic!("{ctx}: kid: {e}"));
            assert_eq!(got, want, "{ctx}");
            let report = store.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
            assert!(report.is_clean(), "{ctx}: {:#?}", report.problems);
            store.gc().unwrap_or_else(|e| panic!("{ctx}: gc again: {e}"));
            assert_eq!(store.history("kid").map(|h| h.count()).unwrap_or_else(|e| panic!("{ctx}: {e}")), 22, "{ctx}");
        }
    }
}

/// Step-index entries are written only after their frame was fsynced. So after a crash tore the unsynced
/// end of an active segment, no entry names a frame past the tear and the store is consistent before any
/// writer recovers the run: `verify` sees a torn tail, `info` counts only rows that exist, and a fork made
/// right away pins bytes that exist. A tear below the last entry, in data that was synced, is corruption.
#[test]
fn index_entries_vouch_for_synced_data_only() {
    let fs = FaultFs::new();
    let o = Options::default().vfs(fs.clone()).sync(SyncPolicy::Never).buffer_size(1).segment_size(64 << 10);
    let store = Store::open_with(FaultFs::store_path(), o.clone()).expect("open");
    let mut w = store.create_run("p").expect("create");
    for i in 0..120u32 {
        w.log(forklog::metrics! { "x" => i, "pad" => "p".repeat(200) }).expect("log");
        if i == 59 {
            w.sync().expect("sync");
        }
    }
    w.flush().expect("flush");
    let idx = fs.contents("/fault/store/runs/p/v0-0.idx").expect("index");
    let entries: Vec<usize> = idx[32..]
        .chunks_exact(64)
        .map(|e| u64::from_le_bytes(e[8..16].try_into().expect("8 bytes")) as usize)
        .collect();
    assert!(entries.len() >= 2, "several index entries: {entries:?}");
    fs.crash(CrashMode::PROCESS_KILL);
    drop(w);
    drop(store);
    let seg = "/fault/store/runs/p/v0-0.seg";
    let bytes = fs.contents(seg).expect("segment");
    let last = *entries.last().expect("an entry");
    // Every entry lies inside the synced first half; the crash tore the unsynced second half.
    assert!(last < bytes.len() / 2 + 300, "entry at {last} of {} bytes", bytes.len());
    let tear = bytes.len() * 3 / 4;
    fs.set_contents(seg, &bytes[..tear]).expect("tear");
    let store = Store::open_with(FaultFs::store_path(), o.clone()).expect("open");
    let rows = store.history("p").expect("history").count();
    assert!((60..120).contains(&rows), "{rows} rows");
    let report = store.verify().expect("verify");
    assert!(report.is_clean(), "verify right after the crash: {:#?}", report.problems);
    assert_eq!(store.info("p").expect("info").rows, rows as u64, "info counts rows that are not there");
    let kid = store.fork("kid", &ForkPoint::new("p", 1_000)).expect("fork");
    drop(kid);
    let kid_rows = store.history("kid").expect("kid").map(|r| r.map(|r| r.step)).collect::<forklog::Result<Vec<_>>>();
    assert_eq!(kid_rows.expect("kid rows").len(), rows);
    drop(store.resume("p").expect("the parent resumes"));
    let report = store.verify().expect("verify");
    assert!(report.is_clean(), "{:#?}", report.problems);
    drop(store);
    // Damage below the last entry (synced data): corruption, reported, never cut as a torn tail.
    let bytes = fs.contents(seg).expect("segment");
    let mut bad = bytes.clone();
    bad[last - 5] ^= 0xff;
    fs.set_contents(seg, &bad).expect("flip");
    let store = Store::open_with(FaultFs::store_path(), o).expect("open");
    assert!(matches!(store.history("p").expect("history").last(), Some(Err(forklog::Error::Corrupt { .. }))));
    assert!(!store.verify().expect("verify").is_clean());
    assert!(matches!(store.resume("p"), Err(forklog::Error::Corrupt { .. })));
    assert_eq!(fs.contents(seg).expect("segment"), bad, "nothing was cut");
}
