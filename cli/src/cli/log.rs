//! `forklog log` (JSON Lines from stdin) and `forklog import` (JSON Lines from a file).
//!
//! `log` reads stdin on a thread so that, while input is idle, it can make written rows visible to
//! readers and keep printing `--ack` lines as rows become durable. `import` reads its file directly,
//! syncs once at the end, and shows a progress bar by bytes read when stderr is a terminal.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use forklog::{Error, ForkPoint, Metrics, Options, RunWriter, Store, SyncPolicy};

use super::args::{LogArgs, SyncArg};
use super::ingest::{parse_line, parse_patch, Ingest, Line};
use super::{open_store, progress_bar, CliError, EXIT_OK};

/// How `log` starts writing RUN, checked before anything is written.
struct Start {
    /// Fork from this point first.
    fork_from: Option<ForkPoint>,
    /// Rewind to this point first.
    resume_from: Option<ForkPoint>,
}

impl Start {
    /// Parses `--fork-from` / `--resume-from`.
    fn new(run: &str, fork_from: Option<&str>, resume_from: Option<&str>) -> Result<Start, CliError> {
        forklog::validate_run_id(run)?;
        let fork_from = fork_from.map(str::parse::<ForkPoint>).transpose()?;
        let resume_from = resume_from.map(str::parse::<ForkPoint>).transpose()?;
        if let (Some(point), Some(spec)) = (&resume_from, resume_from.as_ref().map(ToString::to_string)) {
            if point.run.id != run {
                return Err(CliError::new(format!(
                    "--resume-from {spec} names run {}, not {run} \
                     (use --fork-from to start a new run from another run's history)",
                    point.run.id
                )));
            }
        }
        Ok(Start { fork_from, resume_from })
    }

    /// Checks the first row's explicit step against a fork or rewind point: the row must come after it.
    fn check_first(&self, run: &str, line_no: u64, line: &Line) -> Result<(), CliError> {
        let point = self.fork_from.as_ref().or(self.resume_from.as_ref());
        if let (Some(p), Some(step)) = (point, line.step()) {
            if step <= p.step {
                let e = Error::StepNotIncreasing { run: run.to_string(), last: p.step, got: step };
                return Err(CliError::from(e).context(format!("line {line_no}")));
            }
        }
        Ok(())
    }

    /// Opens the writer: a fork, a rewind, the existing run, or a new one. The flag says whether this
    /// call made a new run.
    fn open(&self, store: &Store, run: &str) -> Result<(RunWriter, bool), CliError> {
        if let Some(point) = &self.fork_from {
            return Ok((store.fork(run, point)?, true));
        }
        if let Some(point) = &self.resume_from {
            return Ok((store.rewind_to(point)?, false));
        }
        match store.resume(run) {
            Err(Error::RunNotFound { .. }) => Ok((store.create_run(run)?, true)),
            other => Ok((other?, false)),
        }
    }
}

/// Reads `--config` / `--config-file`.
fn config_patch(args: &LogArgs) -> Result<Option<Metrics>, CliError> {
    if let Some(text) = &args.config {
        return parse_patch("--config", text.as_bytes()).map(Some);
    }
    if let Some(file) = &args.config_file {
        let bytes = std::fs::read(file).map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display())))?;
        return parse_patch("--config-file", &bytes).map(Some);
    }
    Ok(None)
}

/// The lines before and including the first row, parsed and checked before the run is touched, so a log
/// that fails before storing a row leaves no new run (no fork, no rewind, no store).
struct Leading {
    /// Parsed lines with their numbers (patch-only lines, then the first row's line).
    lines: Vec<(u64, Line)>,
}

impl Leading {
    /// Reads lines from `next` until the first one holding a row (or the end of input), checking each.
    fn read(
        run: &str,
        start: &Start,
        mut next: impl FnMut() -> Result<Option<(u64, Vec<u8>)>, CliError>,
    ) -> Result<Leading, CliError> {
        let mut lines = Vec::new();
        while let Some((line_no, bytes)) = next()? {
            let line = match parse_line(&bytes) {
                Ok(Some(line)) => line,
                Ok(None) => continue,
                Err(message) => return Err(CliError::new(message).context(format!("line {line_no}"))),
            };
            start.check_first(run, line_no, &line)?;
            let row = line.has_row();
            lines.push((line_no, line));
            if row {
                break;
            }
        }
        Ok(Leading { lines })
    }

    /// Opens the writer, writes the `--config` patch and the leading lines. If this call made the run and a
    /// leading line still fails, the run is deleted again.
    fn begin(
        self,
        store: &Store,
        run: &str,
        start: &Start,
        config: Option<Metrics>,
        ack: bool,
        policy: Option<SyncPolicy>,
    ) -> Result<Ingest, CliError> {
        let (mut writer, made) = start.open(store, run)?;
        if let Some(p) = policy {
            writer.set_sync_policy(p);
        }
        let mut ingest = Ingest::new(writer, ack);
        let mut result = match config {
            Some(c) => ingest.writer().set_config(c).map_err(CliError::from),
            None => Ok(()),
        };
        for (line_no, line) in self.lines {
            if result.is_err() {
                break;
            }
            result = ingest.write(line_no, line);
        }
        match result {
            Ok(()) => Ok(ingest),
            Err(e) if made && ingest.rows() == 0 => {
                drop(ingest);
                // Nothing of the run is worth keeping: remove it (its id is free again after `gc`).
                match store.delete_run(run) {
                    Ok(()) => Err(e),
                    Err(d) => Err(e.also(CliError::new(format!("removing the new run also failed: {d}")))),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The sync policy chosen by `--sync` (`None`: the store's default).
fn policy(arg: SyncArg) -> SyncPolicy {
    match arg {
        SyncArg::Always => SyncPolicy::Always,
        SyncArg::Interval => SyncPolicy::EveryMillis(100),
        SyncArg::Never => SyncPolicy::Never,
    }
}

/// An input line (1-based number and bytes) or a read failure, sent by the stdin reader thread.
type Input = io::Result<(u64, Vec<u8>)>;

/// Reads stdin on a thread so the main loop can flush and acknowledge while input is idle.
fn spawn_stdin_reader() -> Receiver<Input> {
    let (tx, rx) = mpsc::sync_channel::<Input>(1024);
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut line_no = 0u64;
        loop {
            let mut buf = Vec::new();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    line_no += 1;
                    if tx.send(Ok((line_no, buf))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// How often to look for newly durable rows while input is idle and acknowledgements are due.
const ACK_POLL: Duration = Duration::from_millis(5);

/// `forklog log`: writes JSON Lines from stdin into a run.
pub fn log(dir: &Path, args: LogArgs) -> Result<u8, CliError> {
    let start = Start::new(&args.run, args.fork_from.as_deref(), args.resume_from.as_deref())?;
    let config = config_patch(&args)?;
    let effective = args.sync.map_or(Options::default().sync_policy(), policy);
    let interval = match effective {
        SyncPolicy::EveryMillis(ms) => Some(Duration::from_millis(ms)),
        _ => None,
    };
    let input = spawn_stdin_reader();
    let leading = Leading::read(&args.run, &start, || match input.recv() {
        Ok(Ok(item)) => Ok(Some(item)),
        Ok(Err(e)) => Err(CliError::new(format!("reading stdin: {e}"))),
        Err(_) => Ok(None),
    })?;
    let store = open_store(dir)?;
    let mut ingest = leading.begin(&store, &args.run, &start, config, args.ack, args.sync.map(policy))?;
    loop {
        let next = match input.try_recv() {
            Ok(item) => Some(item),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => wait_for_input(&input, &mut ingest, interval)?,
        };
        let Some(item) = next else { break };
        match item {
            Ok((line_no, bytes)) => ingest.line(line_no, &bytes)?,
            Err(e) => return Err(ingest.fail(CliError::new(format!("reading stdin: {e}")))),
        }
    }
    ingest.finish()?;
    Ok(EXIT_OK)
}

/// Blocks until the next input line (or end of input), keeping acknowledgements flowing meanwhile.
fn wait_for_input(
    input: &Receiver<Input>,
    ingest: &mut Ingest,
    interval: Option<Duration>,
) -> Result<Option<Input>, CliError> {
    ingest.idle(interval)?;
    loop {
        if !(ingest.awaiting_ack() && interval.is_some()) {
            return Ok(input.recv().ok());
        }
        match input.recv_timeout(ACK_POLL) {
            Ok(item) => return Ok(Some(item)),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => ingest.idle(interval)?,
        }
    }
}

/// `forklog import --format jsonl RUN FILE`: like `log`, reading FILE, syncing once at the end.
pub fn import(dir: &Path, run: &str, file: &Path) -> Result<u8, CliError> {
    let open_error = |e: io::Error| CliError::new(format!("cannot read {}: {e}", file.display()));
    let f = File::open(file).map_err(open_error)?;
    let len = f.metadata().map_err(open_error)?.len();
    let start = Start::new(run, None, None)?;
    let bar = progress_bar(len, true);
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let mut line_no = 0u64;
    let leading = Leading::read(run, &start, || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => Ok(None),
            Ok(n) => {
                line_no += 1;
                bar.inc(n as u64);
                Ok(Some((line_no, buf)))
            }
            Err(e) => Err(open_error(e)),
        }
    })
    .map_err(|e| {
        bar.finish_and_clear();
        e.context(file.display())
    })?;
    let store = open_store(dir)?;
    let mut ingest = leading.begin(&store, run, &start, None, false, Some(SyncPolicy::Never)).map_err(|e| {
        bar.finish_and_clear();
        // Errors of a line name the file; errors opening the run do not.
        if e.message.as_deref().is_some_and(|m| m.starts_with("line ")) {
            e.context(file.display())
        } else {
            e
        }
    })?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match reader.read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                bar.finish_and_clear();
                return Err(ingest.fail(open_error(e)));
            }
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        bar.inc(n as u64);
        if let Err(e) = ingest.line(line_no, &buf) {
            bar.finish_and_clear();
            return Err(e.context(file.display()));
        }
    }
    bar.finish_and_clear();
    ingest.finish()?;
    Ok(EXIT_OK)
}
