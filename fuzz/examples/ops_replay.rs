//! Decodes `ops` fuzz inputs and runs them outside libFuzzer, printing the input, the trace and any
//! disagreement: `cargo run --example ops_replay -- fuzz/artifacts/ops/crash-...`.

use arbitrary::{Arbitrary, Unstructured};
use forklog_fuzz::ops::{run, Input};

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let input = match Input::arbitrary_take_rest(Unstructured::new(&bytes)) {
            Ok(i) => i,
            Err(e) => {
                println!("{path}: does not decode ({e}); libFuzzer skips it");
                continue;
            }
        };
        println!("== {path}\n{input:#?}");
        match run(&input) {
            Ok(trace) => println!("-- ok\n{}", trace.join("\n")),
            Err(e) => {
                println!("-- FAILED\n{e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
