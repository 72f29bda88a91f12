//! `forklog runs`: the run list as an aligned table, JSON Lines, or a fork tree.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use forklog::RunInfo;
use serde::Serialize;

use super::{open_existing, stdout_error, CliError, EXIT_OK};
use forklog_interop::json::{write_map, NonFinite};

/// One run as a `runs --json` line; the field order is the contract's key order.
#[derive(Serialize)]
struct RunJson<'a> {
    /// The run id.
    id: &'a str,
    /// The version number (K of `ID@vK`).
    version: u32,
    /// The fork parent as `ID@vK`, or null.
    parent: Option<String>,
    /// The step the run was forked at, or null.
    fork_step: Option<u64>,
    /// The first step of its history (inherited included), or null when empty.
    first_step: Option<u64>,
    /// The last step of its history, or null when empty.
    last_step: Option<u64>,
    /// Rows `history` returns, inherited included.
    rows: u64,
    /// `running`, `finished` or `crashed`.
    state: &'static str,
    /// Creation time in unix seconds.
    created: f64,
    /// Whether this is an archived version (only with `--all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    archived: Option<bool>,
    /// Whether the run was deleted and is kept for its forks (only with `--all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    /// The display name, or null.
    name: Option<&'a str>,
    /// The tags, sorted.
    tags: &'a [String],
    /// The group, or null.
    group: Option<&'a str>,
}

/// What `forklog runs` lists and how.
pub struct Listing {
    /// One JSON object per line.
    pub json: bool,
    /// The fork tree.
    pub tree: bool,
    /// Archived versions and deleted runs too.
    pub all: bool,
    /// Only runs with every one of these tags.
    pub tags: Vec<String>,
    /// Only runs in this group.
    pub group: Option<String>,
    /// With `--summary` (and its `--keys`): each JSON line ends with the run's summary (the runs table).
    pub summary: Option<Vec<String>>,
}

/// One `runs --json` line, keys in the contract's order. `created` is a time from the clock: always finite.
fn json_line(r: &RunInfo, all: bool) -> RunJson<'_> {
    RunJson {
        id: &r.id,
        version: r.version,
        parent: r.parent.as_ref().map(ToString::to_string),
        fork_step: r.fork_step,
        first_step: r.first_step,
        last_step: r.last_step,
        rows: r.rows,
        state: r.state.as_str(),
        created: r.created,
        archived: all.then_some(r.archived),
        deleted: all.then_some(r.deleted),
        name: r.meta.name.as_deref(),
        tags: &r.meta.tags,
        group: r.meta.group.as_deref(),
    }
}

/// `forklog runs`: lists live runs (with `all`, archived versions and deleted runs too), filtered by
/// tags and group.
pub fn runs(dir: &Path, l: Listing, nf: NonFinite) -> Result<u8, CliError> {
    let store = open_existing(dir)?;
    // Issue 12: the runs table (every live run with its summary) when --summary is given.
    let mut sums: std::collections::HashMap<String, forklog::Metrics> = std::collections::HashMap::new();
    let mut runs = match &l.summary {
        Some(keys) => {
            let table = store.runs_table(keys)?;
            let runs = table.iter().map(|r| r.info.clone()).collect();
            sums = table.into_iter().map(|r| (r.info.id.clone(), r.summary)).collect();
            runs
        }
        None if l.all => store.runs_all()?,
        None => store.runs()?,
    };
    runs.retain(|r| {
        l.tags.iter().all(|t| r.meta.has_tag(t)) && l.group.as_ref().is_none_or(|g| r.meta.group.as_ref() == Some(g))
    });
    let (json, tree, all) = (l.json, l.tree, l.all);
    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        for r in &runs {
            let mut line = serde_json::to_vec(&json_line(r, all)).map_err(|e| stdout_error(e.into()))?;
            if let Some(sum) = sums.get(&r.id).filter(|_| l.summary.is_some()) {
                // `"summary": {...}` as the last key, its floats by the --json-nonfinite rule.
                line.pop();
                line.extend_from_slice(b",\"summary\":");
                write_map(&mut line, sum.iter().map(|(k, v)| (&**k, v)), nf);
                line.push(b'}');
            }
            out.write_all(&line).map_err(stdout_error)?;
            writeln!(out).map_err(stdout_error)?;
        }
    } else if tree {
        for line in tree_lines(&runs) {
            writeln!(out, "{line}").map_err(stdout_error)?;
        }
    } else {
        write_table(&runs, all, &mut out).map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    Ok(EXIT_OK)
}

/// Text for an optional number: the number or `-`.
fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// `archived`/`deleted` flags of a run, comma-separated, or `-`.
fn flags(r: &RunInfo) -> String {
    let mut f = Vec::new();
    if r.archived {
        f.push("archived");
    }
    if r.deleted {
        f.push("deleted");
    }
    if f.is_empty() {
        "-".to_string()
    } else {
        f.join(",")
    }
}

/// Writes the human table: one header row, then one aligned row per run.
fn write_table(runs: &[RunInfo], all: bool, out: &mut impl Write) -> io::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let mut header = vec!["RUN", "VERSION", "PARENT", "FORK_STEP", "FIRST", "LAST", "ROWS", "STATE", "CREATED (UTC)"];
    if all {
        header.push("FLAGS");
    }
    // Numeric columns are right-aligned.
    let numeric = [false, true, false, true, true, true, true, false, false, false];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(ToString::to_string).collect()];
    for r in runs {
        let mut row = vec![
            r.id.clone(),
            r.version.to_string(),
            r.parent.as_ref().map_or_else(|| "-".to_string(), ToString::to_string),
            opt(r.fork_step),
            opt(r.first_step),
            opt(r.last_step),
            r.rows.to_string(),
            r.state.to_string(),
            utc_text(r.created),
        ];
        if all {
            row.push(flags(r));
        }
        table.push(row);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    for row in &table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if numeric[c] {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Formats unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC.
fn utc_text(unix: f64) -> String {
    if !unix.is_finite() {
        return "-".to_string();
    }
    let secs = unix.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3_600, rem / 60 % 60, rem % 60)
}

/// The label of one tree node: `id@vK`, how it was made, and its flags.
fn node_label(r: &RunInfo, under_parent: bool) -> String {
    let mut label = r.run_ref().to_string();
    if let (Some(parent), Some(step)) = (&r.parent, r.fork_step) {
        if under_parent {
            label.push_str(&format!(" (fork at step {step})"));
        } else {
            label.push_str(&format!(" (fork of {parent} at step {step})"));
        }
    }
    if let Some(step) = r.rewind_step {
        label.push_str(&format!(" (rewound to step {step})"));
    }
    if r.archived {
        label.push_str(" [archived]");
    }
    if r.deleted {
        label.push_str(" [deleted]");
    }
    label
}

/// The fork tree: each run under the listed version it was forked from. A run whose parent is not
/// listed (an archived or deleted parent without `--all`) is a root that names its parent.
fn tree_lines(runs: &[RunInfo]) -> Vec<String> {
    let parent_index = |r: &RunInfo| {
        let p = r.parent.as_ref()?;
        runs.iter().position(|q| q.id == p.id && Some(q.version) == p.version)
    };
    let parents: Vec<Option<usize>> = runs.iter().map(parent_index).collect();
    let children = |i: usize| -> Vec<usize> { (0..runs.len()).filter(|&c| parents[c] == Some(i)).collect() };
    let mut lines = Vec::new();
    // Depth-first with an explicit stack: (node, prefix for its children, its own line prefix).
    let roots: Vec<usize> = (0..runs.len()).filter(|&i| parents[i].is_none()).collect();
    let mut stack: Vec<(usize, String, String)> =
        roots.iter().rev().map(|&i| (i, String::new(), String::new())).collect();
    while let Some((node, child_prefix, own_prefix)) = stack.pop() {
        lines.push(format!("{own_prefix}{}", node_label(&runs[node], parents[node].is_some())));
        let kids = children(node);
        for (k, &kid) in kids.iter().enumerate().rev() {
            let last = k + 1 == kids.len();
            let own = format!("{child_prefix}{}", if last { "└── " } else { "├── " });
            let next = format!("{child_prefix}{}", if last { "    " } else { "│   " });
            stack.push((kid, next, own));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_text(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc_text(951_782_400.5), "2000-02-29 00:00:00");
        assert_eq!(utc_text(1_718_000_000.0), "2024-06-10 06:13:20");
    }
}
