//! The W&B `.wandb` decoder (forklog-interop): framing, `Record` protobufs and the run plan.
//!
//! Input: a whole file. `read_records` never panics; what it returns is consistent (offsets increase, the
//! dropped tail fits in the file, re-framing the payloads and decoding again gives the same payloads and no
//! dropped bytes); `plan_file` never panics and returns a plan or an error naming an offset inside the file.
//! Inputs that start without the W&B header get one, so the framing code is reached.
#![no_main]

use forklog_interop::import::wandb::{plan_file, read_records, write_records, FILE_HEADER};
use forklog_interop::import::Location;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let owned;
    let data = if data.starts_with(&FILE_HEADER[..4]) {
        data
    } else {
        owned = [&FILE_HEADER[..], data].concat();
        &owned[..]
    };
    match read_records(data) {
        Ok(recs) => {
            assert!(recs.dropped as usize <= data.len());
            let mut last = None;
            for (off, _) in &recs.records {
                assert!((*off as usize) < data.len());
                assert!(last.is_none_or(|l| l < *off), "offsets increase");
                last = Some(*off);
            }
            let payloads: Vec<Vec<u8>> = recs.records.iter().map(|r| r.1.clone()).collect();
            let again = read_records(&write_records(&payloads)).expect("re-framed records decode");
            assert_eq!(again.dropped, 0);
            assert_eq!(again.records.iter().map(|r| &r.1).collect::<Vec<_>>(), payloads.iter().collect::<Vec<_>>());
        }
        Err((off, why)) => {
            assert!((off as usize) <= data.len(), "{why}");
        }
    }
    match plan_file(std::path::Path::new("fuzz.wandb"), data) {
        Ok(plan) => {
            assert!(!plan.parts.is_empty());
        }
        Err(e) => {
            if let Location::Offset(off) = e.at {
                assert!((off as usize) <= data.len());
            }
            let _ = e.to_string();
        }
    }
});
