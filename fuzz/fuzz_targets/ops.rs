//! Store operations against the reference model: the fuzz input decodes (via `arbitrary`) to store options
//! and a sequence of operations (`forklog_fuzz::ops::Input`), which `forklog::testing::Harness` runs on a
//! real store (on the testing kit's in-memory `FaultFs`) and on `forklog::testing::Model` side by side.
//! After every operation the results and everything readable must agree (`assert_store_matches`); a crash
//! under `SyncPolicy::Always` must lose nothing acknowledged; `verify` must be clean.
#![no_main]

use forklog_fuzz::ops::{run, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| {
    if let Err(e) = run(&input) {
        panic!("{e}");
    }
});
