//! JSON Lines and CSV exports of several runs: the rows `forklog history` prints, plus `_run`.

use std::fs::File;
use std::io::{BufWriter, Write};

use super::{for_each_row, ExportError, ExportFormat, ExportOptions, ExportSummary, Schema};
use crate::json::{float_text, to_line, write_f64, write_str, write_value, Json};
use forklog::{Store, Value};

/// A CSV cell: quoted when it holds a comma, quote or line break.
fn cell(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Float(x) => float_text(*x),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => s.clone(),
        other => to_line(&Json(other)),
    }
}

/// Writes the rows of `runs` as JSONL or CSV (`schema` gives the CSV header).
pub fn write(
    store: &Store,
    runs: &[String],
    opts: &ExportOptions,
    schema: Option<&Schema>,
    format: ExportFormat,
    w: &mut BufWriter<File>,
) -> Result<ExportSummary, ExportError> {
    let mut rows = 0u64;
    let mut err: Option<std::io::Error> = None;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let index: std::collections::HashMap<&str, usize> =
        schema.map(|s| s.columns.iter().enumerate().map(|(i, (k, _))| (k.as_str(), i)).collect()).unwrap_or_default();
    let ncols = schema.map_or(0, |s| s.columns.len());
    if format == ExportFormat::Csv {
        line.extend_from_slice(b"_run,_step,_timestamp");
        for (k, _) in schema.map(|s| s.columns.as_slice()).unwrap_or_default() {
            line.push(b',');
            cell(&mut line, k);
        }
        line.push(b'\n');
        w.write_all(&line).map_err(|error| ExportError::Io { path: "export".into(), error })?;
    }
    let mut cells: Vec<Option<String>> = vec![None; ncols];
    for_each_row(store, runs, opts, |label, row| {
        if err.is_some() {
            return;
        }
        line.clear();
        if format == ExportFormat::Jsonl {
            line.extend_from_slice(b"{\"_step\":");
            line.extend_from_slice(row.step.to_string().as_bytes());
            line.extend_from_slice(b",\"_timestamp\":");
            write_f64(&mut line, row.time, opts.nonfinite);
            for (k, v) in row.metrics() {
                line.push(b',');
                write_str(&mut line, k);
                line.push(b':');
                write_value(&mut line, v, opts.nonfinite);
            }
            line.extend_from_slice(b",\"_run\":");
            write_str(&mut line, label);
            line.push(b'}');
        } else {
            cell(&mut line, label);
            line.push(b',');
            line.extend_from_slice(row.step.to_string().as_bytes());
            line.push(b',');
            line.extend_from_slice(float_text(row.time).as_bytes());
            for c in cells.iter_mut() {
                *c = None;
            }
            for (k, v) in row.metrics() {
                if let Some(&i) = index.get(k) {
                    cells[i] = Some(value_text(v));
                }
            }
            for c in &cells {
                line.push(b',');
                if let Some(t) = c {
                    cell(&mut line, t);
                }
            }
        }
        line.push(b'\n');
        if let Err(e) = w.write_all(&line) {
            err = Some(e);
        }
        rows += 1;
    })?;
    if let Some(error) = err {
        return Err(ExportError::Io { path: "export".into(), error });
    }
    super::flush(w, "export")?;
    Ok(ExportSummary { runs: runs.len(), rows })
}
