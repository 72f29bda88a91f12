//! Turning JSON Lines into history rows, shared by `forklog log` and `forklog import`.
//!
//! [`Ingest`] parses a line, writes it with the run's writer, and (for `log --ack`) prints each row's
//! step once the writer reports it durable. On a bad line, what was written before is synced and
//! nothing more (not even the Finish event) is written; on success the run is finished.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use forklog::{Key, Metrics, RunWriter, Value};

use super::CliError;
use forklog_interop::json::{parse_object, parse_object_spans, ParseError};

/// Longest metric or config key the engine stores, in bytes.
const MAX_KEY_LEN: usize = 64 << 10;

/// One parsed input line: a row, patches, or both.
pub struct Line {
    /// The history row, unless the line holds only `_config`/`_summary`.
    row: Option<Row>,
    /// `_config`: a config patch written after the row, at its step.
    config: Option<Metrics>,
    /// `_summary`: a summary patch written after the row, at its step.
    summary: Option<Metrics>,
}

impl Line {
    /// The row's explicit `_step`, if any.
    pub fn step(&self) -> Option<u64> {
        self.row.as_ref().and_then(|r| r.step)
    }

    /// True when the line holds a row.
    pub fn has_row(&self) -> bool {
        self.row.is_some()
    }
}

/// One history row.
struct Row {
    /// `_step`, when given.
    step: Option<u64>,
    /// `_timestamp` (unix seconds), when given.
    time: Option<f64>,
    /// Every other key.
    metrics: Metrics,
}

/// The name of a value's type, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Bytes(_) | Value::List(_) => "an array",
        Value::Map(_) => "an object",
    }
}

/// Checks a metric or patch key's length.
fn check_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_LEN {
        return Err(format!("key of {} bytes is over the limit of {MAX_KEY_LEN} bytes", key.len()));
    }
    Ok(())
}

/// A `_config`/`_summary` value: an object of patch keys.
fn patch(name: &str, value: Value) -> Result<Metrics, String> {
    let Value::Map(map) = value else {
        return Err(format!("{name} must be a JSON object, got {}", type_name(&value)));
    };
    let mut m = Metrics::new();
    for (k, v) in map {
        check_key(&k)?;
        m.insert(Key::from(k), v);
    }
    Ok(m)
}

/// Parses a JSON object given on the command line or in a file (`--config`, `set --summary`).
pub fn parse_patch(name: &str, text: &[u8]) -> Result<Metrics, CliError> {
    let entries = parse_object(text).map_err(|e| CliError::new(format!("{name}: {e}")))?;
    patch(name, Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())).map_err(CliError::new)
}

/// Parses one input line; `Ok(None)` for a blank line. Errors are messages without the line number.
pub fn parse_line(bytes: &[u8]) -> Result<Option<Line>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let entries = parse_object_spans(bytes).map_err(|e: ParseError| {
        // Valid JSON that is not an object is named as such; anything else is invalid JSON at a column.
        let not_object = e.message == "expected a JSON object"
            && forklog_interop::json::parse_with_depth(bytes, forklog_interop::json::MAX_NESTING).is_ok();
        if not_object {
            e.message
        } else {
            e.to_string()
        }
    })?;
    let mut row = Row { step: None, time: None, metrics: Metrics::new() };
    let (mut config, mut summary) = (None, None);
    let mut is_row = entries.is_empty();
    for (key, value, span) in entries {
        match key.as_str() {
            "_config" => config = Some(patch("_config", value)?),
            "_summary" => summary = Some(patch("_summary", value)?),
            "_step" => {
                is_row = true;
                // Integers past i64 read as floats: take a u64 step from its literal, exactly.
                let literal = std::str::from_utf8(&bytes[span]).ok().and_then(|t| t.parse::<u64>().ok());
                match (value, literal) {
                    (Value::Int(step), _) if step >= 0 => row.step = Some(step as u64),
                    (Value::Float(_), Some(step)) => row.step = Some(step),
                    (other, _) => {
                        return Err(format!(
                            "_step must be a non-negative integer, got {}",
                            forklog_interop::json::value_line(&other, Default::default())
                        ))
                    }
                }
            }
            "_timestamp" => {
                is_row = true;
                match value {
                    Value::Int(t) => row.time = Some(t as f64),
                    Value::Float(t) if t.is_finite() => row.time = Some(t),
                    other => {
                        return Err(format!("_timestamp must be a number of unix seconds, got {}", type_name(&other)))
                    }
                }
            }
            _ => {
                is_row = true;
                check_key(&key)?;
                row.metrics.insert(Key::from(key), value);
            }
        }
    }
    Ok(Some(Line { row: is_row.then_some(row), config, summary }))
}

/// Writes one row and returns its step.
fn write_row(writer: &mut RunWriter, row: Row) -> forklog::Result<u64> {
    match (row.step, row.time) {
        (step, Some(time)) => writer.log_with_time(step, time, row.metrics),
        (Some(step), None) => writer.log_at(step, row.metrics).map(|()| step),
        (None, None) => writer.log(row.metrics),
    }
}

/// Writes rows into one run and tracks which of them are durable (for `--ack`).
pub struct Ingest {
    /// The run's writer.
    writer: RunWriter,
    /// Whether to print steps as they become durable.
    ack: bool,
    /// Steps written but not yet printed as durable (only with `ack`), and when each was written.
    pending: VecDeque<(u64, Instant)>,
    /// Rows written since the last flush.
    unflushed: bool,
    /// Rows written so far.
    rows: u64,
}

impl Ingest {
    /// Wraps `writer`.
    pub fn new(writer: RunWriter, ack: bool) -> Ingest {
        Ingest { writer, ack, pending: VecDeque::new(), unflushed: false, rows: 0 }
    }

    /// The writer (to write patches before the first row).
    pub fn writer(&mut self) -> &mut RunWriter {
        &mut self.writer
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Parses and writes line `line_no` (1-based); on failure syncs what came before and returns
    /// the error naming the line.
    pub fn line(&mut self, line_no: u64, bytes: &[u8]) -> Result<(), CliError> {
        match parse_line(bytes) {
            Ok(Some(line)) => self.write(line_no, line),
            Ok(None) => Ok(()),
            Err(message) => Err(self.fail(CliError::new(message).context(format!("line {line_no}")))),
        }
    }

    /// Writes parsed line `line_no`: its row, then its config and summary patches (at the row's step).
    pub fn write(&mut self, line_no: u64, line: Line) -> Result<(), CliError> {
        let at = |e: forklog::Error| CliError::from(e).context(format!("line {line_no}"));
        let mut result = Ok(());
        if let Some(row) = line.row {
            match write_row(&mut self.writer, row) {
                Ok(step) => {
                    self.unflushed = true;
                    self.rows += 1;
                    if self.ack {
                        self.pending.push_back((step, Instant::now()));
                    }
                }
                Err(e) => result = Err(at(e)),
            }
        }
        if result.is_ok() {
            if let Some(config) = line.config {
                result = self.writer.set_config(config).map_err(at);
            }
        }
        if result.is_ok() {
            if let Some(summary) = line.summary {
                result = self.writer.set_summary(summary).map_err(at);
            }
        }
        match result {
            Ok(()) => {
                self.unflushed = true;
                if self.ack {
                    self.print_durable()?;
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Prints (and flushes) every pending step the writer now reports durable.
    fn print_durable(&mut self) -> Result<(), CliError> {
        let Some(durable) = self.writer.durable_step() else {
            return Ok(());
        };
        if self.pending.front().is_none_or(|&(step, _)| step > durable) {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        while let Some(&(step, _)) = self.pending.front() {
            if step > durable {
                break;
            }
            writeln!(out, "{step}").map_err(ack_error)?;
            self.pending.pop_front();
        }
        out.flush().map_err(ack_error)
    }

    /// Called while waiting for input: makes written rows visible to readers, prints newly durable
    /// steps, and syncs when the oldest unacknowledged row has waited `interval`.
    pub fn idle(&mut self, interval: Option<Duration>) -> Result<(), CliError> {
        if self.unflushed {
            self.writer.flush()?;
            self.unflushed = false;
        }
        self.print_durable()?;
        if let (Some(interval), Some(&(_, written))) = (interval, self.pending.front()) {
            if written.elapsed() >= interval {
                self.writer.sync()?;
                self.print_durable()?;
            }
        }
        Ok(())
    }

    /// Whether some written row still waits for its acknowledgement.
    pub fn awaiting_ack(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Makes every row written so far durable (and acknowledged), then returns `err` (extended if
    /// the sync itself failed). Nothing else is written: the run is not finished.
    pub fn fail(&mut self, err: CliError) -> CliError {
        match self.writer.sync() {
            Ok(()) => match self.print_durable() {
                Ok(()) => err,
                Err(ack) => err.also(ack),
            },
            Err(e) => err.also(CliError::new(format!("syncing earlier rows also failed: {e}"))),
        }
    }

    /// Syncs, acknowledges the remaining rows, and ends the run with a Finish event.
    pub fn finish(mut self) -> Result<(), CliError> {
        self.writer.sync()?;
        self.print_durable()?;
        self.writer.finish(0)?;
        Ok(())
    }
}

/// Maps a failure to print acknowledgements: the caller can no longer learn what is durable.
fn ack_error(e: io::Error) -> CliError {
    CliError::new(format!("writing acknowledgements to stdout: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        let line = parse_line(br#"{"_step": 4, "_timestamp": 1.5, "loss": 0.25, "n": 2, "x": NaN}"#)
            .expect("valid")
            .expect("not blank");
        let row = line.row.expect("a row");
        assert_eq!(row.step, Some(4));
        assert_eq!(row.time, Some(1.5));
        assert_eq!(row.metrics.len(), 3);
        assert!(matches!(row.metrics.get("x"), Some(Value::Float(x)) if x.is_nan()));
        assert!(parse_line(b"  \r\n").expect("blank").is_none());
        assert!(parse_line(b"[1]").err().expect("rejected").contains("expected a JSON object"));
        for bad in [&br#"{"_step": -1}"#[..], br#"{"_step": 1.0}"#, br#"{"_step": "3"}"#] {
            let err = parse_line(bad).err().expect("rejected");
            assert!(err.starts_with("_step must be a non-negative integer"), "{err}");
        }
        let err = parse_line(b"{\"a\": }").err().expect("rejected");
        assert!(err.starts_with("invalid JSON at column 7: "), "{err}");
        // Patches only: no row; `{}`: an empty row.
        let p = parse_line(br#"{"_config": {"lr": 0.1}}"#).expect("valid").expect("a line");
        assert!(p.row.is_none() && p.config.is_some());
        assert!(parse_line(b"{}").expect("valid").expect("a line").row.is_some());
        assert!(parse_line(br#"{"_summary": 3}"#).err().expect("rejected").contains("_summary must be a JSON object"));
    }
}
