//! Turning JSON Lines into history rows, shared by `forklog log` and `forklog import`.
//!
//! [`Ingest`] parses a line, writes it with the run's writer, and (for `log --ack`) prints each row's
//! step once the writer reports it durable. On a bad line, what was written before is synced and
//! nothing more (not even the Finish event) is written; on success the run is finished.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use forklog::{Key, Metrics, RunWriter};

use super::CliError;
use forklog_interop::json::from_json;

/// One parsed input line.
struct Row {
    /// `_step`, when given.
    step: Option<u64>,
    /// `_timestamp` (unix seconds), when given.
    time: Option<f64>,
    /// Every other key.
    metrics: Metrics,
}

/// The name of a JSON value's type, for error messages.
fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses one input line; `Ok(None)` for a blank line. Errors are messages without the line number.
fn parse_row(bytes: &[u8]) -> Result<Option<Row>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let what = text.strip_suffix(&position).unwrap_or(&text);
        format!("invalid JSON at column {}: {what}", e.column())
    })?;
    let serde_json::Value::Object(object) = json else {
        return Err("expected a JSON object".to_string());
    };
    let mut row = Row { step: None, time: None, metrics: Metrics::new() };
    for (key, value) in object {
        match key.as_str() {
            "_step" => match value.as_u64() {
                Some(step) => row.step = Some(step),
                None => return Err(format!("_step must be a non-negative integer, got {value}")),
            },
            "_timestamp" => match value.as_f64().filter(|t| t.is_finite()) {
                Some(t) => row.time = Some(t),
                None => return Err(format!("_timestamp must be a number of unix seconds, got {}", json_type(&value))),
            },
            _ => {
                row.metrics.insert(Key::from(key), from_json(value));
            }
        }
    }
    Ok(Some(row))
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
}

impl Ingest {
    /// Wraps `writer`.
    pub fn new(writer: RunWriter, ack: bool) -> Ingest {
        Ingest { writer, ack, pending: VecDeque::new(), unflushed: false }
    }

    /// Parses and writes line `line_no` (1-based); on failure syncs what came before and returns
    /// the error naming the line.
    pub fn line(&mut self, line_no: u64, bytes: &[u8]) -> Result<(), CliError> {
        let row = match parse_row(bytes) {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(()),
            Err(message) => return Err(self.fail(CliError::new(message).context(format!("line {line_no}")))),
        };
        match write_row(&mut self.writer, row) {
            Ok(step) => {
                self.unflushed = true;
                if self.ack {
                    self.pending.push_back((step, Instant::now()));
                    self.print_durable()?;
                }
                Ok(())
            }
            Err(e) => Err(self.fail(CliError::from(e).context(format!("line {line_no}")))),
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
        let row =
            parse_row(br#"{"_step": 4, "_timestamp": 1.5, "loss": 0.25, "n": 2}"#).expect("valid").expect("not blank");
        assert_eq!(row.step, Some(4));
        assert_eq!(row.time, Some(1.5));
        assert_eq!(row.metrics.len(), 2);
        assert!(parse_row(b"  \r\n").expect("blank").is_none());
        assert_eq!(parse_row(b"[1]").err().as_deref(), Some("expected a JSON object"));
        for bad in [&br#"{"_step": -1}"#[..], br#"{"_step": 1.0}"#, br#"{"_step": "3"}"#] {
            let err = parse_row(bad).err().expect("rejected");
            assert!(err.starts_with("_step must be a non-negative integer"), "{err}");
        }
        let err = parse_row(b"{\"a\": }").err().expect("rejected");
        assert!(err.starts_with("invalid JSON at column 7: "), "{err}");
    }
}
