//! The README's testing-kit example, kept compiling and passing: a tracker that embeds forklog
//! property-tests its own code against the reference model (`forklog::testing`, feature `testing`).

use forklog::testing::{assert_store_matches, strategies, Model};
use forklog::{ForkPoint, Metrics, Store};
use proptest::prelude::*;

/// The embedder's code under test: a tiny tracker that records a training run and branches a sweep from it.
mod my_tracker {
    use forklog::{ForkPoint, Metrics, Store};

    /// Logs one row per epoch and finishes the run.
    pub fn record(store: &Store, run: &str, epochs: &[Metrics]) -> forklog::Result<()> {
        let mut w = store.create_run(run)?;
        w.set_config(forklog::metrics! { "epochs" => epochs.len() as i64 })?;
        for m in epochs {
            w.log(m.clone())?;
        }
        w.finish(0)
    }

    /// Starts a sweep branch from `base` at `step` and logs its first row.
    pub fn branch(store: &Store, base: &str, name: &str, step: u64, first: Metrics) -> forklog::Result<()> {
        let mut w = store.fork(name, &ForkPoint::new(base, step))?;
        w.log(first)?;
        Ok(()) // dropped without finish: the branch is still "crashed" until resumed
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tracker_matches_model(
        epochs in proptest::collection::vec(strategies::metrics(3), 1..20),
        fork_at in 0u64..25,
        first in strategies::metrics(2),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();

        // The tracker writes to a real store...
        my_tracker::record(&store, "base", &epochs).unwrap();
        my_tracker::branch(&store, "base", "sweep", fork_at, first.clone()).unwrap();

        // ...and the test says what that should amount to, on the model.
        let mut model = Model::new();
        model.create_run("base").unwrap();
        model.set_config("base", forklog::metrics! { "epochs" => epochs.len() as i64 }).unwrap();
        for m in &epochs {
            model.log("base", None, None, m.clone()).unwrap(); // time None: the wall clock, matched loosely
        }
        model.finish("base", 0).unwrap();
        model.fork("sweep", &ForkPoint::new("base", fork_at)).unwrap();
        model.log("sweep", None, None, first).unwrap();
        model.close("sweep");

        // Every history (plain and filtered), event, summary, config, info, lineage and listing must agree.
        assert_store_matches(&store, &model).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fork_trees_match_model(tree in strategies::fork_tree(6, 5)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut model = Model::new();
        tree.apply(&store, &mut model).unwrap();
        assert_store_matches(&store, &model).map_err(TestCaseError::fail)?;
    }
}

/// The model catches a tracker bug: here a "branch" that forgot to inherit the config.
#[test]
fn the_model_catches_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    my_tracker::record(&store, "base", &[Metrics::new()]).unwrap();
    let mut model = Model::new();
    model.create_run("base").unwrap();
    model.log("base", None, None, Metrics::new()).unwrap(); // no config: the store has one
    model.finish("base", 0).unwrap();
    let diff = assert_store_matches(&store, &model).unwrap_err();
    assert!(diff.contains("config(base)"), "{diff}");
}
