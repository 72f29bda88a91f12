//! # forklog-interop
//!
//! Code the forklog command-line tool and the Python package share, kept out of the engine crate so
//! that embedders of the engine compile none of it: the mapping between forklog values and JSON
//! ([`json`]), importers from other trackers' files ([`import`]: W&B, TensorBoard, MLflow, trackio) and
//! exporters to what analysis tools read ([`export`]: Parquet, Arrow IPC, TensorBoard, JSONL, CSV).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod export;
pub mod import;
pub mod json;
