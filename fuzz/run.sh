#!/usr/bin/env bash
# Runs every fuzz target for a bounded time with cargo-fuzz (libFuzzer) and fails if any target crashes.
#
#   fuzz/run.sh                      # every target, 30 s each
#   FUZZ_SECONDS=300 fuzz/run.sh ops # one target, 5 minutes
#
# Environment:
#   FUZZ_SECONDS    time per target (default 30)
#   FUZZ_SANITIZER  none (default) or address. forklog's fuzzed code is safe Rust (its one `unsafe`, the mmap
#                   of StdFs, is not reached: the targets use in-memory file systems), so AddressSanitizer has
#                   little to find, while it costs 3-7x fewer executions per second. Without it, panics
#                   (overflow checks and debug assertions are on), aborts, stack overflows, allocation failures,
#                   -rss_limit_mb and -timeout are still caught. Use address to also check leaks and unsafe deps.
#   FUZZ_TOOLCHAIN  rustup toolchain (default nightly; cargo-fuzz needs nightly). Without it the run is
#                   skipped with a message (exit 0), or fails with FUZZ_REQUIRE=1.
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 20)
#   FUZZ_KEEP       1: keep the inputs found by earlier runs and start from them (default: start from the
#                   seeds only; libFuzzer runs its whole starting corpus before -max_total_time applies,
#                   so a grown corpus would stretch a "30 s" run)
#
# New inputs libFuzzer finds go to fuzz/target/corpus/<target> (ignored by git); the committed seeds in
# fuzz/corpus/<target> are only read. Crashes are written to fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run -s none <target> fuzz/artifacts/<target>/crash-...   (the same -s as the run)
set -euo pipefail

cd "$(dirname "$0")/.."
ALL_TARGETS=(record_decode segment_recovery run_header step_index fork_point ops wandb_decode tfrecord_decode)
SECONDS_EACH=${FUZZ_SECONDS:-30}
SANITIZER=${FUZZ_SANITIZER:-none}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
TIMEOUT=${FUZZ_TIMEOUT:-20}
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: the $TOOLCHAIN toolchain is missing (rustup toolchain install $TOOLCHAIN)" >&2
    if [ "${FUZZ_REQUIRE:-0}" = 1 ]; then exit 1; fi
    exit 0
fi

start=$(date +%s)
echo "fuzz: building ${#TARGETS[@]} targets (sanitizer: $SANITIZER)" >&2
if [ $# -gt 0 ]; then
    for t in "${TARGETS[@]}"; do cargo "+$TOOLCHAIN" fuzz build -s "$SANITIZER" "$t" >&2; done
else
    cargo "+$TOOLCHAIN" fuzz build -s "$SANITIZER" >&2
fi
echo "fuzz: build took $(( $(date +%s) - start )) s" >&2

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    seeds=fuzz/corpus/$t
    work=fuzz/target/corpus/$t
    if [ "${FUZZ_KEEP:-0}" != 1 ]; then rm -rf "$work"; fi
    mkdir -p "$work" "$seeds"
    log=fuzz/target/fuzz-$t.log
    echo "fuzz: $t for $SECONDS_EACH s" >&2
    t0=$(date +%s)
    # The first corpus directory receives new inputs; the seeds are read only.
    if cargo "+$TOOLCHAIN" fuzz run -s "$SANITIZER" "$t" "$work" "$seeds" -- \
        -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        summary+=("$t: ok, $runs runs in $(( $(date +%s) - t0 )) s")
    else
        tail -n 60 "$log" >&2
        failed+=("$t")
        summary+=("$t: FAILED (log: $log; artifacts: fuzz/artifacts/$t/)")
    fi
done

echo "fuzz: summary (total $(( $(date +%s) - start )) s)" >&2
printf '  %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
