//! Reports returned by recovery, [`Store::verify`](crate::Store::verify) and [`Store::gc`](crate::Store::gc).

use std::fmt;
use std::path::PathBuf;

/// Bytes recovery removed from one file: a torn tail cut off, or a whole file whose creation a crash
/// interrupted (then `valid_len` is 0 and the file is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cut {
    /// The file (a segment, its step index, or the key table).
    pub file: PathBuf,
    /// How many bytes were removed.
    pub bytes_cut: u64,
    /// The file's length after the cut (0 for a removed file).
    pub valid_len: u64,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cut {} bytes from {} (now {} bytes)", self.bytes_cut, self.file.display(), self.valid_len)
    }
}

/// Everything recovery removed when a writer opened a run ([`RunWriter::recovery`](crate::RunWriter::recovery)):
/// from `resume`, and from `rewind` (which first recovers the version it archives). Recovery never removes a
/// byte without listing it here; an empty list means nothing was cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The run.
    pub run: String,
    /// Every cut, in the order recovery made them.
    pub cuts: Vec<Cut>,
}

impl RecoveryReport {
    /// True when recovery cut nothing.
    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty()
    }

    /// The bytes cut from all files together.
    pub fn bytes_cut(&self) -> u64 {
        self.cuts.iter().map(|c| c.bytes_cut).sum()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cuts.is_empty() {
            return write!(f, "run {}: nothing to recover", self.run);
        }
        write!(f, "run {}: ", self.run)?;
        for (i, c) in self.cuts.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The kind of a problem [`Store::verify`](crate::Store::verify) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// Bytes that fail a check where valid data must be: data would be lost or misread.
    Corrupt,
    /// An incomplete write at the end of an active segment or key table, left by a crash. Expected; the
    /// next writer of the run cuts it off.
    TornTail,
}

impl ProblemKind {
    /// `corrupt` or `torn tail`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::Corrupt => "corrupt",
            ProblemKind::TornTail => "torn tail",
        }
    }
}

/// One finding of [`Store::verify`](crate::Store::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
        write!(f, "{}:{}: {}: {}", self.file.display(), self.offset, self.kind.as_str(), self.message)
    }
}

/// The result of checking every byte of every file of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct RepairReport {
    /// Derived files (step indexes) rewritten from their segments.
    pub rebuilt: Vec<std::path::PathBuf>,
}

/// What [`Store::gc`](crate::Store::gc) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Files removed.
    pub files_removed: u64,
    /// Bytes those files held.
    pub bytes_freed: u64,
    /// Deleted runs whose directories were removed entirely.
    pub runs_removed: Vec<String>,
}
