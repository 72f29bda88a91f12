//! What the store tells about a run: [`RunInfo`], [`RunState`], [`LineageEntry`].

use std::fmt;

use crate::ids::RunRef;
use crate::meta::RunMeta;

/// The lifecycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// A writer has the run open (in this or another process).
    Running,
    /// The last event of the run's visible history is a `Finish`.
    Finished,
    /// No writer has it open and it did not finish: its writer went away without `finish`.
    Crashed,
}

impl RunState {
    /// `running`, `finished` or `crashed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Crashed => "crashed",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about one run version.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Version number (0 unless the run was rewound).
    pub version: u32,
    /// True for an archived version (an older version of a rewound run).
    pub archived: bool,
    /// True for a deleted run still kept because forks use its files.
    pub deleted: bool,
    /// The fork parent (`ID@vK`), `None` for a root run. Rewinds keep it.
    pub parent: Option<RunRef>,
    /// The step the run was forked at.
    pub fork_step: Option<u64>,
    /// The step this version was rewound to (`None` for v0).
    pub rewind_step: Option<u64>,
    /// When the version was created, in seconds since the Unix epoch.
    pub created: f64,
    /// First `Log` step of the visible history (inherited rows included).
    pub first_step: Option<u64>,
    /// Last `Log` step of the visible history.
    pub last_step: Option<u64>,
    /// Number of rows `history` returns (inherited rows included).
    pub rows: u64,
    /// Number of events of every kind in the visible history.
    pub events: u64,
    /// Running, finished or crashed.
    pub state: RunState,
    /// Name, tags, notes and group as of the visible history (a fork's includes what it inherited).
    pub meta: RunMeta,
}

impl RunInfo {
    /// `ID@vK` of this version.
    pub fn run_ref(&self) -> RunRef {
        RunRef::at(self.id.clone(), self.version)
    }
}

/// One run in a lineage, root first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineageEntry {
    /// The run version (`ID@vK`).
    pub run: RunRef,
    /// The step at which this entry was forked from the previous one (`None` for the root).
    pub fork_step: Option<u64>,
}
