//! # forklog
//!
//! An event-sourced storage engine for experiment-tracking runs, with **copy-free forks**.
//!
//! A tracker embeds forklog to persist each run's history: step-ordered metric rows, config and summary
//! patches, system samples and a finish marker. `fork("new", "base?_step=N")` makes a run that inherits
//! every event of `base` with step `<= N` by writing one small header that points into `base`'s log — no
//! history byte is copied. Rewinding (`resume_from`), replay across fork-of-fork trees and archived
//! versions follow from the same pointer.
//!
//! ```
//! use forklog::{metrics, Store, HistoryOptions};
//!
//! # fn main() -> forklog::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path())?;
//!
//! // Log a base run.
//! let mut base = store.create_run("base")?;
//! base.set_config(metrics! { "lr" => 0.1 })?;
//! for step in 0..100u32 {
//!     base.log(metrics! { "loss" => 1.0 / f64::from(step + 1) })?;
//! }
//! base.finish(0)?;
//!
//! // Fork at step 49: the fork inherits steps 0..=49 and continues at 50.
//! let mut fork = store.fork("fork", &"base?_step=49".parse()?)?;
//! assert_eq!(fork.next_step(), 50);
//! fork.log(metrics! { "loss" => 0.5 })?;
//! drop(fork);
//! assert_eq!(store.history("fork")?.count(), 51);
//! assert_eq!(store.config("fork")?["lr"], forklog::Value::Float(0.1));
//!
//! // Rewind the base to step 9: v0 is archived as base@v0, v1 continues at step 10.
//! let mut rewound = store.rewind("base", 9)?;
//! rewound.log(metrics! { "loss" => 0.25 })?;
//! drop(rewound);
//! assert_eq!(store.history("base")?.count(), 11);
//! assert_eq!(store.history("base@v0")?.count(), 100);
//!
//! // Replay with a step range and a key filter; each row says where it is stored.
//! let rows: Vec<_> = store
//!     .history_with("fork", &HistoryOptions::new().from_step(48).keys(["loss"]))?
//!     .collect::<forklog::Result<_>>()?;
//! assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), vec![48, 49, 50]);
//! assert_eq!(rows[0].origin.to_string(), "base@v0");
//! assert_eq!(rows[2].origin.to_string(), "fork@v0");
//! assert!(store.verify()?.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! For float metrics there are faster paths: [`RunWriter::log_floats`] (a `(key, f64)` slice per row) and
//! [`RunWriter::log_columns`] (a batch as one slice per metric) to write, [`Store::columns`] (a history as one
//! vector per metric) and [`Store::scan_columns`] (the same in chunks, bounded memory) to read.
//!
//! See `docs/DESIGN.md` for the modules and the life of a write, a fork and a replay, and `docs/FORMAT.md`
//! for the byte-level format.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

// Platforms: forklog builds on Unix (Linux, macOS, the BSDs): it uses `std::os::unix` positioned I/O, advisory
// file locks and memory maps of sealed segments.
#[cfg(not(unix))]
compile_error!("forklog builds on Unix only (Linux, macOS, the BSDs): it uses std::os::unix");

mod active;
mod catalog;
mod codec;
mod columns;
mod error;
mod event;
mod format;
mod gc;
mod header;
mod ids;
mod index;
mod info;
mod keys;
mod meta;
mod options;
mod recovery;
mod registry;
mod replay;
mod report;
mod runs_table;
mod sample;
mod scan;
mod segment;
mod snapshot;
mod source;
mod stats;
mod store;
mod value;
mod value_serde;
mod verify;
// The storage seam (`Options::vfs`): the file system every byte goes through. Hidden from the docs and not yet
// a stable extension point: its traits may gain methods (with defaults) in minor releases.
#[doc(hidden)]
pub mod vfs;
mod writer;
mod zonemap;

#[cfg(feature = "testing")]
pub mod testing;

/// Low-level decoders exposed for the fuzz targets (fuzz/) and the format tests, behind the `fuzz` feature.
/// Not a stable API.
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod internals {
    pub use crate::codec::PayloadDecoder;
    pub use crate::header::VersionHeader;
    pub use crate::index::parse_index;
    pub use crate::keys::parse_keys;
    pub use crate::segment::{SegmentHeader, SegmentReader};
    // For the fuzz targets (fuzz/): the engine's own frame decoding path, the payload encoder for
    // round-trip checks, and what a harness needs to build CRC-valid frames and index entries.
    pub use crate::codec::{encode_event, encode_prefix, frame_events, DecodeError, EncEvent, Lean, RawEvent};
    pub use crate::index::{close_record, encode_close_record, Close, IndexEntry};
    pub use crate::segment::frame_header;
    pub use crate::stats::Stats;
}

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use columns::{Column, Columns};
pub use error::{Error, Result};
pub use event::{Event, EventRecord, LogRow};
pub use ids::{validate_run_id, ForkPoint, RunRef};
pub use info::{LineageEntry, RunInfo, RunState};
pub use meta::{MetaPatch, RunMeta};
pub use options::{Options, SyncPolicy, DEFAULT_BUFFER_SIZE, DEFAULT_SEGMENT_SIZE};
pub use replay::{Events, History, HistoryOptions, RowRef};
pub use report::{Cut, GcReport, Problem, ProblemKind, RecoveryReport, RepairReport, VerifyReport};
pub use runs_table::RunRow;
pub use sample::{Bucket, Point, Sample, Series};
pub use store::Store;
pub use value::{Key, Metrics, Value, ValueKinds};
pub use value_serde::{from_value, to_metrics, to_value};
pub use writer::RunWriter;
