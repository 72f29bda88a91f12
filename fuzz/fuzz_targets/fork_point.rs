//! `ForkPoint` ("RUN?_step=N", "ID@vK?_step=N") and `RunRef` ("ID", "ID@vK") parsing.
//!
//! Whatever parses must print back to a string that parses to the same value (and prints the same);
//! what fails must fail with the documented error kind; run ids that parse must pass `validate_run_id`.
#![no_main]

use forklog::{validate_run_id, Error, ForkPoint, RunRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };

    match s.parse::<RunRef>() {
        Ok(r) => {
            assert!(validate_run_id(&r.id).is_ok(), "{s:?} parsed to an invalid id {:?}", r.id);
            let shown = r.to_string();
            let back: RunRef = shown.parse().unwrap_or_else(|e| panic!("{shown:?} (from {s:?}) does not parse: {e}"));
            assert_eq!(back, r);
            assert_eq!(back.to_string(), shown);
        }
        Err(e) => {
            assert!(matches!(e, Error::InvalidRunId { .. }), "RunRef {s:?}: unexpected error {e:?}");
            let _ = e.to_string();
        }
    }

    match s.parse::<ForkPoint>() {
        Ok(p) => {
            assert!(validate_run_id(&p.run.id).is_ok(), "{s:?} parsed to an invalid id {:?}", p.run.id);
            let (run, _) = s.split_once('?').expect("a parsed fork point has a '?'");
            assert_eq!(run.parse::<RunRef>().ok().as_ref(), Some(&p.run), "run part of {s:?} parses differently");
            let shown = p.to_string();
            let back: ForkPoint =
                shown.parse().unwrap_or_else(|e| panic!("{shown:?} (from {s:?}) does not parse: {e}"));
            assert_eq!(back, p);
            assert_eq!(back.to_string(), shown);
        }
        Err(e) => {
            assert!(matches!(e, Error::InvalidSpec { .. }), "ForkPoint {s:?}: unexpected error {e:?}");
            let _ = e.to_string();
        }
    }
});
