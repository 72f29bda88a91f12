//! The runs table ([`Store::runs_table`](crate::Store::runs_table)): every live run with its facts and its
//! summary values, what a tracker's run list shows. Each summary comes from the zone maps' snapshots
//! (src/snapshot.rs), so listing costs the same whatever the runs' history lengths.

use crate::info::RunInfo;
use crate::value::Metrics;

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunRow {
    /// The run's facts, as [`Store::info`](crate::Store::info) gives them.
    pub info: RunInfo,
    /// Its summary (as [`Store::summary`](crate::Store::summary)), restricted to the requested keys if any
    /// (a key the run lacks is absent).
    pub summary: Metrics,
}
