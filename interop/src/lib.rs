//! # forklog-interop
//!
//! Code the forklog command-line tool and the Python package share, kept out of the engine crate so
//! that embedders of the engine compile none of it: the mapping between forklog values and JSON
//! ([`json`]).
#![deny(missing_docs)]

pub mod json;
