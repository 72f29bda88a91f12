//! The crate's error type.
//!
//! One `#[non_exhaustive]` enum: every fallible call in forklog returns [`Result`]. Messages say what
//! happened and, where there is one, what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Shorthand for `std::result::Result<T, forklog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in forklog.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A run id broke the naming rule (1..=64 chars of `[A-Za-z0-9._-]`, not `.` or `..`).
    InvalidRunId {
        /// The offending id.
        id: String,
        /// Which part of the rule it broke.
        reason: String,
    },
    /// A fork or rewind spec (`RUN?_step=N`, `RUN@vK?_step=N`) could not be parsed.
    InvalidSpec {
        /// The offending spec.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No live run (or no such archived version) has this id.
    RunNotFound {
        /// The run (or `ID@vK`) that was asked for.
        run: String,
    },
    /// `create_run` or `fork` was given an id that is already taken (possibly by a deleted run whose
    /// files are still kept for its forks).
    RunExists {
        /// The id that is taken.
        run: String,
    },
    /// Another writer (in this or another process) has the run open, so it cannot be written,
    /// rewound or deleted now.
    RunBusy {
        /// The busy run.
        run: String,
    },
    /// A `Log` step was not greater than the last one; nothing was written.
    StepNotIncreasing {
        /// The run being written.
        run: String,
        /// The last step of its visible history (or the fork/rewind step of a fresh fork).
        last: u64,
        /// The step that was rejected.
        got: u64,
    },
    /// A fork's new id equals its parent's id.
    ForkOntoItself {
        /// The id given for both.
        run: String,
    },
    /// An archived version (`ID@vK`) was given where only a live run can be used (writing, deleting).
    ReadOnlyVersion {
        /// The archived version asked for.
        run: String,
    },
    /// The directory exists and holds files, but no store file: it is not a forklog store, and forklog will
    /// not create one among files that are not its own.
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// No store at this path (the directory is missing, or empty), and the open was not allowed to create one
    /// ([`Store::open_existing`](crate::Store::open_existing), or [`Options::create`](crate::Options) off).
    NoStore {
        /// The directory.
        path: PathBuf,
    },
    /// A write (creating, forking, rewinding, resuming, deleting a run, gc, repair) through a store opened
    /// read-only.
    ReadOnlyStore {
        /// The store directory.
        path: PathBuf,
    },
    /// A file failed a check: a bad magic, CRC, length or structure.
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the bad structure inside `file`.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A file was written by a format version this build cannot read.
    UnsupportedFormat {
        /// The file.
        file: PathBuf,
        /// The version found in the file.
        found: u16,
        /// The newest version this build reads (and the one it writes); it reads every version from 1.
        supported: u16,
    },
    /// A writer saw an I/O failure on write or fsync, or a panic inside it (a poisoned lock), or an internal
    /// check failed; it refuses every later call because what reached the disk is unknown. Drop it and
    /// `resume` the run: recovery will find what survived.
    Poisoned {
        /// The run whose writer is poisoned.
        run: String,
        /// What poisoned it: the first failure, as it was reported.
        cause: String,
    },
    /// A value could not be converted to or from forklog's [`Value`](crate::Value) model.
    Value {
        /// What went wrong.
        reason: String,
    },
    /// An argument of a read was out of range (e.g. `sample` with zero buckets or `from_step > to_step`).
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
    /// A single event or frame is larger than the format allows.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// An operating-system I/O error.
    Io {
        /// What forklog was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }

    /// Builds an [`Error::Corrupt`].
    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt { file: file.into(), offset, reason: reason.into() }
    }

    /// True for [`Error::Corrupt`] and [`Error::UnsupportedFormat`]: the bytes on disk are bad.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::UnsupportedFormat { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRunId { id, reason } => write!(
                f,
                "invalid run id {id:?}: {reason} (ids are 1 to 64 characters of A-Z a-z 0-9 . _ -, and not \".\" or \"..\")"
            ),
            Error::InvalidSpec { spec, reason } => write!(
                f,
                "invalid run spec {spec:?}: {reason} (expected RUN?_step=N or RUN@vK?_step=N with N a non-negative integer)"
            ),
            Error::RunNotFound { run } => write!(f, "run {run} not found"),
            Error::RunExists { run } => write!(
                f,
                "run {run} already exists (a deleted run keeps its id while forks still use its files; run gc to free it)"
            ),
            Error::RunBusy { run } => write!(
                f,
                "run {run} is busy: another writer has it open; close that writer first"
            ),
            Error::StepNotIncreasing { run, last, got } => write!(
                f,
                "run {run}: step {got} is not greater than the last step {last}; nothing was written"
            ),
            Error::ForkOntoItself { run } => {
                write!(f, "cannot fork run {run} onto itself: choose a new id")
            }
            Error::ReadOnlyVersion { run } => write!(
                f,
                "{run} is an archived version: it can be read and forked, not written or deleted"
            ),
            Error::NotAStore { path } => {
                write!(f, "{} is not a forklog store (it holds other files)", path.display())
            }
            Error::NoStore { path } => write!(f, "no store at {}", path.display()),
            Error::ReadOnlyStore { path } => {
                write!(f, "the store at {} is open read-only: it cannot be changed", path.display())
            }
            Error::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {reason}",
                file.display()
            ),
            Error::UnsupportedFormat {
                file,
                found,
                supported,
            } => write!(
                f,
                "{} has format version {found}, this build reads versions 1 to {supported}",
                file.display()
            ),
            Error::Poisoned { run, cause } => write!(
                f,
                "writer for run {run} is poisoned by an earlier failure ({cause}); drop it and resume the run"
            ),
            Error::Value { reason } => write!(f, "value conversion failed: {reason}"),
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            Error::TooLarge { what, size, limit } => {
                write!(f, "{what} is {size} bytes, over the limit of {limit} bytes")
            }
            Error::Io { op, path, source } => {
                write!(f, "I/O error while {op} {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
