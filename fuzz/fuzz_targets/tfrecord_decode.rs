//! The TFRecord framing and TensorBoard `Event` decoder (forklog-interop).
//!
//! Input: a whole event file. The record iterator never panics, stops after its first error, and its
//! records re-frame to exactly the bytes they came from; `plan_bytes` (events → rows, restarts → rewinds)
//! never panics and its rows have increasing steps within each part. Half the inputs are taken as the data
//! of one record framed with valid checksums, so the `Event` decoder behind the CRCs is reached.
#![no_main]

use forklog_interop::import::tensorboard::plan_bytes;
use forklog_interop::import::tfrecord::{records, write_record};
use forklog_interop::import::PlanEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else { return };
    let data = if mode & 1 == 1 {
        // Split the body into records at 0xFF bytes and frame each with valid CRCs.
        let mut out = Vec::new();
        for part in body.split(|&b| b == 0xff) {
            write_record(&mut out, part);
        }
        out
    } else {
        body.to_vec()
    };
    let mut rebuilt = Vec::new();
    let mut failed = false;
    for r in records(&data) {
        assert!(!failed, "no record after an error");
        match r {
            Ok((off, rec)) => {
                assert_eq!(off as usize, rebuilt.len());
                write_record(&mut rebuilt, rec);
            }
            Err((off, _)) => {
                assert_eq!(off as usize, rebuilt.len());
                failed = true;
            }
        }
    }
    assert_eq!(&data[..rebuilt.len()], &rebuilt[..]);
    if mode & 1 == 1 {
        assert!(!failed);
    }
    if let Ok(plan) = plan_bytes(std::path::Path::new("fuzz.tfevents"), &data) {
        for part in &plan.parts {
            let mut last = None;
            for e in &part.events {
                if let PlanEvent::Log { step, .. } = e {
                    assert!(last.is_none_or(|l| l < *step), "steps increase within a part");
                    assert!(part.rewind_at.is_none_or(|r| r < *step));
                    last = Some(*step);
                }
            }
        }
    }
});
