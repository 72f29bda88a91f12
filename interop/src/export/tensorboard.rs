//! TensorBoard export: one folder per run under the output folder, holding one event file
//! (`events.out.tfevents.<unix seconds>.forklog`): the `brain.Event:2` version event, then one `Event` per
//! row (`wall_time` the row time, `step` the row step) whose `Summary` carries each numeric metric as a
//! float32 `simple_value` (ints and bools converted; strings and other values are not scalars and are left
//! out). A run's folder holds its whole visible history, inherited rows included, so each fork shows as a
//! full curve next to its parent.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use forklog::{HistoryOptions, Store, Value};
use prost::Message;

use super::{ExportError, ExportSummary};
use crate::import::tensorboard::{Event, Summary, SummaryValue, ValueKind};
use crate::import::tfrecord::write_record;

/// Writes each of `runs` as a TensorBoard run folder under `out` (created if missing). A run's folder must
/// not exist yet; a failed export removes the folders it made.
pub fn export_tensorboard(store: &Store, runs: &[String], out: &Path) -> Result<ExportSummary, ExportError> {
    let io = |path: &Path, error: std::io::Error| ExportError::Io { path: path.to_path_buf(), error };
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let mut made = Vec::new();
    let res = (|| {
        let mut rows = 0u64;
        for run in runs {
            let dir = out.join(run);
            if dir.exists() {
                return Err(ExportError::Usage(format!("{} exists: remove it or export elsewhere", dir.display())));
            }
            std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
            made.push(dir.clone());
            let created = store.info(run)?.created;
            let path = dir.join(format!("events.out.tfevents.{}.forklog", created.max(0.0) as u64));
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
            let version = Event {
                wall_time: created,
                step: 0,
                file_version: Some("brain.Event:2".into()),
                summary: None,
                session_log: None,
            };
            write_record(&mut buf, &version.encode_to_vec());
            let mut f = File::create(&path).map_err(|e| io(&path, e))?;
            let mut werr = None;
            let mut scratch = Vec::with_capacity(256);
            store.history_with(run, &HistoryOptions::new())?.for_each_row(|row| {
                let value: Vec<SummaryValue> = row
                    .metrics()
                    .filter_map(|(k, v)| {
                        let x = match v {
                            Value::Float(x) => *x as f32,
                            Value::Int(i) => *i as f32,
                            Value::Bool(b) => f32::from(u8::from(*b)),
                            _ => return None,
                        };
                        Some(SummaryValue {
                            tag: k.to_string(),
                            metadata: None,
                            value: Some(ValueKind::SimpleValue(x)),
                        })
                    })
                    .collect();
                let ev = Event {
                    wall_time: row.time,
                    step: i64::try_from(row.step).unwrap_or(i64::MAX),
                    file_version: None,
                    summary: Some(Summary { value }),
                    session_log: None,
                };
                scratch.clear();
                if ev.encode(&mut scratch).is_ok() {
                    write_record(&mut buf, &scratch);
                }
                rows += 1;
                if buf.len() >= 1 << 20 && werr.is_none() {
                    werr = f.write_all(&buf).err();
                    buf.clear();
                }
            })?;
            if let Some(e) = werr {
                return Err(io(&path, e));
            }
            f.write_all(&buf).map_err(|e| io(&path, e))?;
            f.sync_all().map_err(|e| io(&path, e))?;
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        if let Ok(d) = File::open(out) {
            let _ = d.sync_all();
        }
        Ok(ExportSummary { runs: runs.len(), rows })
    })();
    if res.is_err() {
        for d in made {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    res
}
