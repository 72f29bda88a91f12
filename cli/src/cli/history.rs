//! `forklog history` (JSONL or CSV on stdout) and `forklog export` (JSONL into a file).
//!
//! Rows stream straight from the store to the output: nothing is collected in memory. CSV needs its
//! header (the sorted union of metric keys) before the first row, so it reads the history twice.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use forklog::{HistoryOptions, Key, LogRow, Value};

use super::args::{HistoryArgs, HistoryFormat};
use super::{open_existing, progress_bar, stdout_error, CliError, EXIT_OK};
use forklog_interop::json::{float_text, value_line, write_f64, write_row, write_str, NonFinite};

/// Builds the library's history options from the command's flags; an empty step range is an error.
fn options(args: &HistoryArgs) -> Result<HistoryOptions, CliError> {
    if let (Some(a), Some(b)) = (args.from_step, args.to_step) {
        if a > b {
            return Err(CliError::new(format!("--from-step {a} is after --to-step {b}: the range holds no step")));
        }
    }
    let mut opts = HistoryOptions::new().own_only(args.own);
    if let Some(a) = args.from_step {
        opts = opts.from_step(a);
    }
    if let Some(b) = args.to_step {
        opts = opts.to_step(b);
    }
    if let Some(keys) = &args.keys {
        opts = opts.keys(keys.iter().filter(|k| !k.is_empty()).cloned().collect::<Vec<_>>());
    }
    Ok(opts)
}

/// `forklog history`: prints a run's rows on stdout.
pub fn history(dir: &Path, args: HistoryArgs, nf: NonFinite) -> Result<u8, CliError> {
    let opts = options(&args)?;
    let store = open_existing(dir)?;
    if let Some(n) = args.buckets {
        return buckets(&open_existing(dir)?, &args, n, nf);
    }
    let rows = store.history_with(&args.run, &opts)?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match args.format {
        HistoryFormat::Jsonl => {
            write_jsonl(rows, args.origin, nf, &mut out, stdout_error, |_| ())?;
        }
        HistoryFormat::Csv => {
            let mut keys = BTreeSet::<Key>::new();
            for row in rows {
                for key in row?.metrics.into_keys() {
                    keys.insert(key);
                }
            }
            let rows = store.history_with(&args.run, &opts)?;
            write_csv(rows, &keys, args.origin, &mut out)?;
        }
    }
    out.flush().map_err(stdout_error)?;
    Ok(EXIT_OK)
}

/// Writes `rows` as JSON Lines, calling `on_row` after each; returns how many were written.
fn write_jsonl<W: Write>(
    rows: impl Iterator<Item = forklog::Result<LogRow>>,
    origin: bool,
    nf: NonFinite,
    out: &mut W,
    io_error: impl Fn(io::Error) -> CliError,
    mut on_row: impl FnMut(&LogRow),
) -> Result<u64, CliError> {
    let mut n = 0;
    let mut line = Vec::with_capacity(256);
    for row in rows {
        let row = row?;
        line.clear();
        write_row(&mut line, &row, origin, nf);
        line.push(b'\n');
        out.write_all(&line).map_err(&io_error)?;
        on_row(&row);
        n += 1;
    }
    Ok(n)
}

/// Writes `rows` as CSV with columns `_step,_timestamp`, `keys`, and `_run` when `origin`.
fn write_csv<W: Write>(
    rows: impl Iterator<Item = forklog::Result<LogRow>>,
    keys: &BTreeSet<Key>,
    origin: bool,
    out: &mut W,
) -> Result<(), CliError> {
    let mut header = vec!["_step".to_string(), "_timestamp".to_string()];
    header.extend(keys.iter().map(|k| csv_field(k)));
    if origin {
        header.push("_run".to_string());
    }
    writeln!(out, "{}", header.join(",")).map_err(stdout_error)?;
    let mut line = String::new();
    for row in rows {
        let row = row?;
        line.clear();
        line.push_str(&row.step.to_string());
        line.push(',');
        line.push_str(&float_text(row.time));
        for key in keys {
            line.push(',');
            if let Some(value) = row.metrics.get(&**key) {
                line.push_str(&csv_field(&cell_text(value)));
            }
        }
        if origin {
            line.push(',');
            line.push_str(&csv_field(&row.origin.to_string()));
        }
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(stdout_error)?;
    }
    Ok(())
}

/// The text of one CSV cell before quoting: numbers and booleans as in JSON, strings raw, null
/// empty, and lists, maps and bytes as compact JSON.
fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => float_text(*x),
        Value::Str(s) => s.clone(),
        other => value_line(other, NonFinite::Bare),
    }
}

/// Quotes a CSV field (RFC 4180) when it holds a comma, a quote, or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `forklog export RUN FILE`: writes the run's history (inherited prefix included) as JSON Lines.
/// A failed export removes the partial file.
pub fn export(dir: &Path, run: &str, file: &Path, nf: NonFinite) -> Result<u8, CliError> {
    let store = open_existing(dir)?;
    let rows = store.history(run)?;
    let bar = progress_bar(0, false);
    if !bar.is_hidden() {
        bar.set_length(store.info(run)?.rows);
    }
    let file_error = |e: io::Error| CliError::new(format!("writing {}: {e}", file.display()));
    let f = File::create(file).map_err(file_error)?;
    let mut out = BufWriter::with_capacity(1 << 16, f);
    let result = write_jsonl(rows, false, nf, &mut out, file_error, |_| bar.inc(1))
        .and_then(|_| out.flush().map_err(file_error));
    bar.finish_and_clear();
    if let Err(e) = result {
        drop(out);
        let _ = fs::remove_file(file);
        return Err(e);
    }
    Ok(EXIT_OK)
}

/// `forklog history RUN --buckets N`: the exact downsampled history ([`forklog::Store::sample`]), one line
/// (JSONL) or row (CSV) per key and non-empty bucket, keys in order (`--keys` order, else sorted), buckets
/// by index. JSON floats follow `--json-nonfinite`.
fn buckets(store: &forklog::Store, args: &HistoryArgs, n: u32, nf: NonFinite) -> Result<u8, CliError> {
    let keys: Vec<String> = args.keys.iter().flatten().filter(|k| !k.is_empty()).cloned().collect();
    let sample = store.sample(&args.run, &keys, n, args.from_step, args.to_step)?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    if matches!(args.format, HistoryFormat::Csv) {
        writeln!(out, "key,bucket,start,end,count,first_step,first,last_step,last,min_step,min,max_step,max")
            .map_err(stdout_error)?;
    }
    for series in &sample.series {
        for b in &series.buckets {
            match args.format {
                HistoryFormat::Jsonl => {
                    let mut line = Vec::with_capacity(256);
                    line.extend_from_slice(b"{\"key\":");
                    write_str(&mut line, &series.key);
                    let ints = [("bucket", u64::from(b.index)), ("start", b.start), ("end", b.end), ("count", b.count)];
                    for (name, x) in ints {
                        line.extend_from_slice(format!(",\"{name}\":{x}").as_bytes());
                    }
                    for (name, p) in [("first", b.first), ("last", b.last), ("min", b.min), ("max", b.max)] {
                        line.extend_from_slice(format!(",\"{name}_step\":{},\"{name}\":", p.step).as_bytes());
                        write_f64(&mut line, p.value, nf);
                    }
                    line.extend_from_slice(b"}\n");
                    out.write_all(&line).map_err(stdout_error)?;
                }
                HistoryFormat::Csv => {
                    writeln!(
                        out,
                        "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                        csv_field(&series.key),
                        b.index,
                        b.start,
                        b.end,
                        b.count,
                        b.first.step,
                        float_text(b.first.value),
                        b.last.step,
                        float_text(b.last.value),
                        b.min.step,
                        float_text(b.min.value),
                        b.max.step,
                        float_text(b.max.value)
                    )
                    .map_err(stdout_error)?;
                }
            }
        }
    }
    out.flush().map_err(stdout_error)?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell_text(&Value::Float(2.0)), "2.0");
        assert_eq!(cell_text(&Value::Float(f64::INFINITY)), "Infinity");
        assert_eq!(cell_text(&Value::List(vec![Value::Int(1), Value::Int(2)])), "[1,2]");
    }
}
