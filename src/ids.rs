//! Run ids, version references (`ID@vK`) and fork points (`RUN?_step=N`).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest allowed run id, in bytes.
pub(crate) const MAX_RUN_ID_LEN: usize = 64;

/// Checks a run id against the rule: 1..=64 characters of `[A-Za-z0-9._-]`, and not `.` or `..`.
pub fn validate_run_id(id: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::InvalidRunId { id: id.to_string(), reason: reason.to_string() });
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > MAX_RUN_ID_LEN {
        return bad("it is longer than 64 characters");
    }
    if id == "." || id == ".." {
        return bad("it is a directory name");
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return bad(&format!("character {c:?} is not allowed"));
    }
    Ok(())
}

/// A reference to a run: its live (current) version, or one archived version with `@vK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunRef {
    /// The run id.
    pub id: String,
    /// `Some(K)` for `ID@vK`; `None` for the run's current version.
    pub version: Option<u32>,
}

impl RunRef {
    /// A reference to the current version of `id` (the id is not validated here).
    pub fn live(id: impl Into<String>) -> RunRef {
        RunRef { id: id.into(), version: None }
    }

    /// A reference to version `version` of `id`.
    pub fn at(id: impl Into<String>, version: u32) -> RunRef {
        RunRef { id: id.into(), version: Some(version) }
    }
}

impl FromStr for RunRef {
    type Err = Error;

    /// Parses `ID` or `ID@vK`.
    fn from_str(s: &str) -> Result<RunRef> {
        match s.split_once('@') {
            None => {
                validate_run_id(s)?;
                Ok(RunRef::live(s))
            }
            Some((id, ver)) => {
                validate_run_id(id)?;
                let version = ver
                    .strip_prefix('v')
                    .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse::<u32>().ok())
                    .ok_or_else(|| Error::InvalidRunId {
                        id: s.to_string(),
                        reason: format!("version {ver:?} is not of the form vK with K a number"),
                    })?;
                Ok(RunRef::at(id, version))
            }
        }
    }
}

impl fmt::Display for RunRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            None => write!(f, "{}", self.id),
            Some(v) => write!(f, "{}@v{v}", self.id),
        }
    }
}

/// Where a fork or rewind starts: every event of `run` with step `<= step` is inherited.
///
/// Parses the trackers' syntax `"RUN?_step=N"` (W&B `fork_from` / `resume_from`); `RUN` may be
/// `ID@vK` to name an archived version.
///
/// ```
/// use forklog::ForkPoint;
/// let p: ForkPoint = "base@v1?_step=200".parse().unwrap();
/// assert_eq!(p.run.id, "base");
/// assert_eq!(p.run.version, Some(1));
/// assert_eq!(p.step, 200);
/// assert!("base?step=2".parse::<ForkPoint>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkPoint {
    /// The run (or archived version) to inherit from.
    pub run: RunRef,
    /// The last inherited step (inclusive).
    pub step: u64,
}

impl ForkPoint {
    /// A fork point on the current version of `id` at `step`.
    pub fn new(id: impl Into<String>, step: u64) -> ForkPoint {
        ForkPoint { run: RunRef::live(id), step }
    }
}

impl FromStr for ForkPoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<ForkPoint> {
        let bad = |reason: &str| Error::InvalidSpec { spec: s.to_string(), reason: reason.to_string() };
        let (run, query) = s.split_once('?').ok_or_else(|| bad("missing \"?_step=N\""))?;
        if run.is_empty() {
            return Err(bad("missing the run id before \"?\""));
        }
        let run: RunRef = run.parse().map_err(|e| match e {
            Error::InvalidRunId { reason, .. } => bad(&format!("bad run id: {reason}")),
            other => other,
        })?;
        let digits = query.strip_prefix("_step=").ok_or_else(|| bad("the query must be \"_step=N\""))?;
        if digits.is_empty() {
            return Err(bad("the step is empty"));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the step must be a non-negative integer"));
        }
        let step = digits.parse::<u64>().map_err(|_| bad("the step does not fit in 64 bits"))?;
        Ok(ForkPoint { run, step })
    }
}

impl fmt::Display for ForkPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}?_step={}", self.run, self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids() {
        for ok in ["a", "run-1", "A.b_c-9", &"x".repeat(64)] {
            assert!(validate_run_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(65), "a@v1"] {
            assert!(validate_run_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fork_points() {
        let p: ForkPoint = "r?_step=0".parse().unwrap();
        assert_eq!(p, ForkPoint::new("r", 0));
        assert_eq!(p.to_string(), "r?_step=0");
        for bad in [
            "r",
            "?_step=1",
            "r?_step=",
            "r?_step=-1",
            "r?_step=1.5",
            "r?step=1",
            "r?_step=99999999999999999999999",
            "r@v?_step=1",
            "r@x1?_step=1",
            "r/1?_step=1",
            "r?_step=1&x=2",
        ] {
            assert!(bad.parse::<ForkPoint>().is_err(), "{bad}");
        }
    }
}
