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

use forklog::{Error, ForkPoint, Options, RunWriter, Store, SyncPolicy};

use super::args::{LogArgs, SyncArg};
use super::ingest::Ingest;
use super::{open_store, progress_bar, CliError, EXIT_OK};

/// Opens the writer for `run`: a fork of `fork_from`, a rewind to `resume_from`, the existing run,
/// or a new one.
fn open_writer(
    store: &Store,
    run: &str,
    fork_from: Option<&str>,
    resume_from: Option<&str>,
) -> Result<RunWriter, CliError> {
    if let Some(spec) = fork_from {
        let point: ForkPoint = spec.parse()?;
        return Ok(store.fork(run, &point)?);
    }
    if let Some(spec) = resume_from {
        let point: ForkPoint = spec.parse()?;
        if point.run.id != run {
            return Err(CliError::new(format!(
                "--resume-from {spec} names run {}, not {run} \
                 (use --fork-from to start a new run from another run's history)",
                point.run.id
            )));
        }
        return Ok(store.rewind_to(&point)?);
    }
    match store.resume(run) {
        Err(Error::RunNotFound { .. }) => Ok(store.create_run(run)?),
        other => Ok(other?),
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
    let store = open_store(dir)?;
    let mut writer = open_writer(&store, &args.run, args.fork_from.as_deref(), args.resume_from.as_deref())?;
    let effective = match args.sync {
        Some(arg) => {
            writer.set_sync_policy(policy(arg));
            policy(arg)
        }
        None => Options::default().sync,
    };
    let interval = match effective {
        SyncPolicy::EveryMillis(ms) => Some(Duration::from_millis(ms)),
        _ => None,
    };
    let mut ingest = Ingest::new(writer, args.ack);
    let input = spawn_stdin_reader();
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
    let store = open_store(dir)?;
    let mut writer = open_writer(&store, run, None, None)?;
    writer.set_sync_policy(SyncPolicy::Never);
    let mut ingest = Ingest::new(writer, false);
    let bar = progress_bar(len, true);
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
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
