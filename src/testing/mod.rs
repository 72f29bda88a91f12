//! Testing kit for forklog and for trackers that embed it (feature `testing`).
//!
//! - [`faultfs`]: an in-memory [`Vfs`](crate::vfs::Vfs) that simulates crashes and injects I/O faults.
//! - [`model`]: a simple in-memory reference model of a whole store.
//! - [`strategies`]: proptest strategies for values, histories and fork trees.

pub mod faultfs;
pub mod model;
pub mod strategies;
