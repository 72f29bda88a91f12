//! The command line, declared with clap's derive API. The doc comments here are the `--help` text,
//! so they state the contract: commands, flags, output formats and exit statuses.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Text shown after the command list in `forklog --help`.
const AFTER_HELP: &str = "\
SPEC is PARENT?_step=N: PARENT is a run id or ID@vK (an archived version), N a non-negative integer.
A fork or rewind at step N keeps every event with step <= N; new rows start at N + 1.

Exit status: 0 on success; 1 when `verify` finds corruption; 2 on any other error, reported as one
line on stderr starting with `error: `.";

/// forklog: an event-sourced store for experiment-tracking runs with copy-free fork and rewind.
#[derive(Debug, Parser)]
#[command(name = "forklog", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The store directory, or a remote store `s3://BUCKET/PREFIX` (with --cache; credentials and endpoint
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP).
    #[arg(long, global = true, value_name = "DIR|URL", env = "FORKLOG_STORE", default_value = "./forklog-store")]
    pub store: PathBuf,

    /// The local cache directory of a remote store (--store s3://...): the writer's active segments and
    /// downloaded objects.
    #[arg(long, global = true, value_name = "DIR", env = "FORKLOG_CACHE")]
    pub cache: Option<PathBuf>,

    /// How JSON output spells NaN and the infinities: bare NaN/Infinity/-Infinity (the default; what
    /// Python's json module writes and forklog reads back bit for bit), null, or the strings "NaN",
    /// "Infinity", "-Infinity" (for strict JSON consumers).
    #[arg(long, global = true, value_enum, default_value_t = NonFiniteArg::Bare, value_name = "bare|null|string")]
    pub json_nonfinite: NonFiniteArg,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log JSON Lines from stdin into RUN, one history row per line.
    ///
    /// Each line is a JSON object. Its optional "_step" (a non-negative integer) gives the step;
    /// without it the row takes the next step. An optional "_timestamp" (unix seconds) sets the
    /// row's time. "_config" and "_summary" (JSON objects) are config and summary patches, written
    /// after the line's row, at its step. Every other key is a metric (numbers, booleans, strings,
    /// null, arrays, objects; bare NaN, Infinity and -Infinity are floats). A line with only
    /// "_config"/"_summary" is no row; `{}` is an empty row. Blank lines are skipped. RUN is created
    /// if missing and appended to if it exists. A malformed line or a step that is not increasing
    /// stops the command with exit 2 and names the line: every earlier line is kept and durable,
    /// nothing from that line on is written; a log that fails before its first row leaves no new run
    /// (no fork, no rewind). On success the run ends with a Finish event.
    Log(LogArgs),

    /// Create NEW_RUN as a fork of SPEC (PARENT?_step=N) with no new rows.
    Fork {
        /// The id of the new run.
        new_run: String,
        /// Where to fork: PARENT?_step=N (PARENT may be ID@vK).
        spec: String,
    },

    /// Rewind a run in place to SPEC (RUN?_step=N): the current version is archived as RUN@vK.
    Rewind {
        /// RUN?_step=N.
        spec: String,
    },

    /// Print RUN's history, one row per Log event in step order, inherited prefix included.
    ///
    /// JSONL rows are {"_step": N, "_timestamp": SECONDS, ...metrics} (plus "_run": "ID@vK" with
    /// --origin). Integers stay integers; floats print in shortest round-trip form; NaN and the
    /// infinities print bare (NaN, Infinity, -Infinity; see --json-nonfinite). CSV has a header row
    /// _step,_timestamp followed by the sorted union of metric keys (and _run with --origin);
    /// missing cells are empty.
    History(HistoryArgs),

    /// List runs (live runs; --all adds archived versions and deleted runs kept for their forks).
    ///
    /// --json prints one object per line with keys id, version, parent, fork_step, first_step,
    /// last_step, rows, state, created (and archived, deleted with --all), then name, tags, group (and summary
    /// with --summary).
    Runs {
        /// One JSON object per line instead of a table.
        #[arg(long, conflicts_with = "tree")]
        json: bool,
        /// Draw the fork tree.
        #[arg(long)]
        tree: bool,
        /// Include archived versions and deleted runs still kept for their descendants.
        #[arg(long)]
        all: bool,
        /// Only runs with this tag (repeat: runs with every one of them).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Only runs in this group.
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// With --json: add "summary", the run's summary object (as `forklog summary` prints it).
        #[arg(long, requires = "json", conflicts_with = "all")]
        summary: bool,
        /// With --summary: only these summary keys (comma-separated; a key a run lacks is left out).
        #[arg(long, value_name = "K1,K2", value_delimiter = ',', requires = "summary")]
        keys: Option<Vec<String>>,
    },

    /// Change a run's config, summary or metadata (name, tags, notes, group).
    ///
    /// Each option writes a patch at the run's current step (so forks and rewinds cut it like
    /// every event). An empty --name, --notes or --group clears that field. A finished run stays
    /// finished (with its exit code).
    Set(SetArgs),

    /// Print RUN's summary (last value of each metric, overridden by summary patches) as JSON.
    Summary {
        /// RUN or ID@vK.
        run: String,
    },

    /// Print RUN's config as JSON.
    Config {
        /// RUN or ID@vK.
        run: String,
    },

    /// Print RUN's lineage as a JSON array of {"run": "ID@vK", "fork_step": N|null}, root first.
    Lineage {
        /// RUN or ID@vK.
        run: String,
    },

    /// Check every file of the store; exit 0 when clean, 1 when corruption is found.
    ///
    /// Prints one line per problem, "<file>:<offset>: <corrupt|torn tail>: <message>", then a
    /// summary line. A torn tail left by a crash is expected, not corruption: it is reported and
    /// the exit status stays 0. Damage in derived data (a step index) is corruption too; --repair
    /// rebuilds derived files from the segments, then verifies again.
    Verify {
        /// Rebuild derived files (step indexes) from the segments first.
        #[arg(long)]
        repair: bool,
    },

    /// Delete a run (its files stay while forks still read them; `gc` frees the rest).
    Delete {
        /// The run id.
        run: String,
    },

    /// Remove files no live run needs any more, and print what was freed.
    Gc,

    /// Load runs: `import --format jsonl RUN FILE` (JSON Lines into RUN, same rules as `log`), or
    /// `import --format wandb|tensorboard|mlflow|trackio [--prefix P] [--as ID] SOURCE...` (another
    /// tracker's files; one JSON line per imported run on stdout).
    Import(ImportArgs),

    /// Write runs: `export RUN FILE` (RUN's history as JSON Lines), or
    /// `export RUN... [--tree RUN] [--flat] --format jsonl|csv|parquet|arrow|tensorboard OUT`.
    Export(ExportArgs),

    /// Draw runs as line charts (SVG or PNG): one panel per metric, each run's exact downsampled
    /// curve with its min/max band, fork points marked on the parent's curve and labelled with the
    /// child's id, a legend naming each run ID@vK.
    Plot(super::plot::PlotArgs),

    /// Run the demonstration: log, fork, fork a fork, rewind, replay and verify, with timings.
    Demo {
        /// The demo store directory: missing, empty, or a previous demo's store (recognised by its
        /// marker file, and replaced); anything else is refused.
        #[arg(long, value_name = "DIR", default_value = "./forklog-demo-store")]
        dir: PathBuf,
        /// Rows in the base run (forks are taken at 1%, 50% and 99% of it).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(100..))]
        rows: u64,
    },
}

/// Arguments of `forklog log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The run to write (created if missing).
    pub run: String,
    /// Create RUN as a fork of PARENT?_step=N first (error if RUN exists).
    #[arg(long, value_name = "SPEC", conflicts_with = "resume_from")]
    pub fork_from: Option<String>,
    /// Rewind RUN to RUN?_step=N first.
    #[arg(long, value_name = "SPEC")]
    pub resume_from: Option<String>,
    /// When rows are made durable: after every row, every 100 ms, or only at the end.
    /// Default: the store's default (every second).
    #[arg(long, value_enum)]
    pub sync: Option<SyncArg>,
    /// Print each row's step on stdout (flushed) once it is durable.
    #[arg(long)]
    pub ack: bool,
    /// A config patch (a JSON object) written when the run starts, before the first row.
    #[arg(long, value_name = "JSON_OBJECT", conflicts_with = "config_file")]
    pub config: Option<String>,
    /// Like --config, reading the JSON object from FILE.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
}

/// Arguments of `forklog set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The run to change.
    pub run: String,
    /// A config patch (a JSON object).
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// A summary patch (a JSON object).
    #[arg(long, value_name = "JSON")]
    pub summary: Option<String>,
    /// The display name ("" clears it).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Add a tag (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Remove a tag (repeatable).
    #[arg(long = "untag", value_name = "T")]
    pub untags: Vec<String>,
    /// Notes ("" clears them).
    #[arg(long, value_name = "TEXT")]
    pub notes: Option<String>,
    /// The group ("" clears it).
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
}

/// `--json-nonfinite` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NonFiniteArg {
    /// Bare NaN, Infinity, -Infinity.
    Bare,
    /// null.
    Null,
    /// The strings "NaN", "Infinity", "-Infinity".
    String,
}

impl NonFiniteArg {
    /// The interop library's setting.
    pub fn mode(self) -> forklog_interop::json::NonFinite {
        match self {
            NonFiniteArg::Bare => forklog_interop::json::NonFinite::Bare,
            NonFiniteArg::Null => forklog_interop::json::NonFinite::Null,
            NonFiniteArg::String => forklog_interop::json::NonFinite::String,
        }
    }
}

/// Arguments of `forklog history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// RUN or ID@vK.
    pub run: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Jsonl)]
    pub format: HistoryFormat,
    /// First step to print (inclusive).
    #[arg(long, value_name = "A")]
    pub from_step: Option<u64>,
    /// Last step to print (inclusive).
    #[arg(long, value_name = "B")]
    pub to_step: Option<u64>,
    /// Only these metrics (comma-separated); rows with none of them are skipped.
    #[arg(long, value_name = "K1,K2", value_delimiter = ',')]
    pub keys: Option<Vec<String>>,
    /// Only the run's own rows, without the inherited prefix.
    #[arg(long)]
    pub own: bool,
    /// Add "_run": the version (ID@vK) each row is stored in.
    #[arg(long)]
    pub origin: bool,
    /// Downsample exactly (M4): split the step range (--from-step..--to-step, default the run's first to
    /// last step) into N equal buckets and print one line per key and non-empty bucket: its step range,
    /// count, and first, last, min and max values with their steps. See the README for the format.
    #[arg(long, value_name = "N", conflicts_with_all = ["own", "origin"], value_parser = clap::value_parser!(u32).range(1..))]
    pub buckets: Option<u32>,
}

/// `--sync` values of `forklog log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncArg {
    /// fsync after every row.
    Always,
    /// fsync at most 100 ms after a row.
    Interval,
    /// fsync only at the end.
    Never,
}

/// `--format` values of `forklog history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

/// `--format` values of `forklog import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// JSON Lines, as read by `forklog log`.
    Jsonl,
    /// W&B offline runs (`.wandb` files, `offline-run-*` or `wandb/` folders).
    Wandb,
    /// TensorBoard log directories (`events.out.tfevents.*`).
    Tensorboard,
    /// MLflow file store (`mlruns/`) or SQLite database (`mlflow.db`).
    Mlflow,
    /// trackio project databases (`<project>.db`).
    Trackio,
}

/// Arguments of `forklog import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The input format.
    #[arg(long, value_enum, default_value_t = ImportFormat::Jsonl)]
    pub format: ImportFormat,
    /// Prepended to every imported run id (tracker formats).
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// The id of the single run imported (tracker formats).
    #[arg(long = "as", value_name = "ID")]
    pub as_id: Option<String>,
    /// `RUN FILE` for jsonl; one or more sources for the tracker formats.
    #[arg(required = true, value_name = "RUN FILE | SOURCE...")]
    pub args: Vec<PathBuf>,
}

/// `--format` values of `forklog export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// JSON Lines.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Apache Arrow IPC file.
    Arrow,
    /// TensorBoard event files, one folder per run.
    Tensorboard,
}

/// Arguments of `forklog export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Export this run and every run forked from it, recursively.
    #[arg(long, value_name = "RUN")]
    pub tree: Option<String>,
    /// Label rows with the exported run's id (not where each row is stored) and write each run's whole history.
    #[arg(long)]
    pub flat: bool,
    /// The runs (RUN or ID@vK), then the output file (or folder for tensorboard).
    #[arg(required = true, value_name = "RUN... OUT")]
    pub args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
