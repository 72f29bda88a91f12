//! The events a run is made of, and the records replay hands back.

use crate::ids::RunRef;
use crate::meta::MetaPatch;
use crate::value::Metrics;

/// One event of a run. Every event sits at a step, so forks and rewinds cut all kinds consistently.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// One history row. `Log` steps are strictly increasing within a run's visible history.
    Log {
        /// The row's step.
        step: u64,
        /// Wall-clock time in seconds since the Unix epoch (stored with microsecond precision).
        time: f64,
        /// The row's metrics.
        metrics: Metrics,
    },
    /// A patch merged into the run's config.
    Config {
        /// The step current when the patch was written.
        step: u64,
        /// Keys to set.
        patch: Metrics,
    },
    /// Explicit summary values; they override the automatic last-value summary.
    Summary {
        /// The step current when the patch was written.
        step: u64,
        /// Keys to set.
        patch: Metrics,
    },
    /// System metrics (time-indexed samples); they do not advance the step.
    System {
        /// The step current when the sample was taken.
        step: u64,
        /// Wall-clock time in seconds since the Unix epoch.
        time: f64,
        /// The sampled metrics.
        metrics: Metrics,
    },
    /// The run ended with this exit code.
    Finish {
        /// The step current when the run finished.
        step: u64,
        /// The process exit code.
        exit_code: i32,
    },
    /// A change to the run's metadata (name, tags, notes, group); format version 2.
    Meta {
        /// The step current when the patch was written.
        step: u64,
        /// The change.
        patch: MetaPatch,
    },
}

impl Event {
    /// The event's step.
    pub fn step(&self) -> u64 {
        match self {
            Event::Log { step, .. }
            | Event::Config { step, .. }
            | Event::Summary { step, .. }
            | Event::System { step, .. }
            | Event::Finish { step, .. }
            | Event::Meta { step, .. } => *step,
        }
    }

    /// The event kind's name: `log`, `config`, `summary`, `system`, `finish` or `meta`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Log { .. } => "log",
            Event::Config { .. } => "config",
            Event::Summary { .. } => "summary",
            Event::System { .. } => "system",
            Event::Finish { .. } => "finish",
            Event::Meta { .. } => "meta",
        }
    }
}

/// An event as replay returns it, with the run version it physically came from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventRecord {
    /// Where the event is stored: the run itself, or an ancestor for an inherited event.
    pub origin: RunRef,
    /// The event.
    pub event: Event,
}

/// One history row as [`Store::history`](crate::Store::history) returns it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogRow {
    /// The row's step.
    pub step: u64,
    /// Wall-clock time in seconds since the Unix epoch.
    pub time: f64,
    /// The row's metrics (filtered to the requested keys, if any).
    pub metrics: Metrics,
    /// Where the row is stored: the run itself (`ID@vK`), or the ancestor it was inherited from.
    pub origin: RunRef,
}

impl LogRow {
    /// Deserializes the row's metrics into any `T: Deserialize` (a struct with one field per metric).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        crate::value_serde::from_value(crate::Value::Map(self.metrics.clone()))
    }
}
