//! Reports returned by recovery, [`Store::verify`](crate::Store::verify) and [`Store::gc`](crate::Store::gc).

use std::fmt;
use std::path::PathBuf;

/// A torn tail that recovery cut off an active segment before appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The run.
    pub run: String,
    /// The segment that was truncated.
    pub file: PathBuf,
    /// How many bytes were cut.
    pub bytes_cut: u64,
    /// The segment's length after the cut.
    pub valid_len: u64,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {}: cut a torn tail of {} bytes from {} (now {} bytes)",
            self.run,
            self.bytes_cut,
            self.file.display(),
            self.valid_len
        )
    }
}

/// The kind of a problem [`Store::verify`](crate::Store::verify) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Bytes that fail a check where valid data must be: data would be lost or misread.
    Corrupt,
    /// An incomplete write at the end of an active segment or key table, left by a crash. Expected; the
    /// next writer of the run cuts it off.
    TornTail,
}

/// One finding of [`Store::verify`](crate::Store::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Byte offset of the problem in the file.
    pub offset: u64,
    /// Corruption or torn tail.
    pub kind: ProblemKind,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ProblemKind::Corrupt => "corrupt",
            ProblemKind::TornTail => "torn tail",
        };
        write!(f, "{}:{}: {}: {}", self.file.display(), self.offset, kind, self.message)
    }
}

/// The result of checking every byte of every file of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files checked.
    pub files: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// Everything found, in file order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is corrupt (torn tails are expected after a crash and do not count).
    pub fn is_clean(&self) -> bool {
        self.problems.iter().all(|p| p.kind == ProblemKind::TornTail)
    }
}

/// What [`Store::repair`](crate::Store::repair) rebuilt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Derived files (step indexes) rewritten from their segments.
    pub rebuilt: Vec<std::path::PathBuf>,
}

/// What [`Store::gc`](crate::Store::gc) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Files removed.
    pub files_removed: u64,
    /// Bytes those files held.
    pub bytes_freed: u64,
    /// Deleted runs whose directories were removed entirely.
    pub runs_removed: Vec<String>,
}
