#!/usr/bin/env bash
# Every test of the workspace: the engine's, the CLI's and the interop library's Rust tests (unit,
# integration, model-based, crash and fault injection, doctests), then the Python package's tests.
#
#   ./test.sh            # everything
#
# Needs only a Rust toolchain and Python 3 (3.9 or later). The Python step creates a virtualenv under
# target/python-venv (reused when present), installs pytest, hypothesis, numpy, pyarrow and pandas from
# PyPI, builds and installs the package from ./python (maturin, into this workspace's cargo target dir, so
# the engine is compiled once) and runs python/tests.
set -euo pipefail
cd "$(dirname "$0")"

echo "=== Rust: cargo test --workspace"
cargo test --workspace

echo "=== Python: virtualenv, wheel, pytest"
PYTHON="${PYTHON:-python3}"
target_dir="$(cargo metadata --format-version 1 --no-deps | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
venv="$target_dir/python-venv"
if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python" -m pip install --quiet pytest hypothesis numpy pyarrow pandas
# CARGO_TARGET_DIR: the wheel's build shares the workspace's compiled crates.
CARGO_TARGET_DIR="$target_dir" "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps ./python
cd python
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests

# --- interop cross-checks (interop/tests/python): forklog's imports and exports against the trackers' own
# readers (TensorBoard's EventAccumulator, MlflowClient.get_metric_history, `wandb leet inspect --json`) and
# pyarrow, pandas and DuckDB, in the same virtualenv, with the pinned versions of requirements.txt. They run
# the `forklog` binary `cargo test` built.
root="$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["workspace_root"])')"
echo "=== Python: interop cross-checks"
"$venv/bin/python" -m pip install --quiet -r "$root/interop/tests/python/requirements.txt"
cargo build --quiet -p forklog-cli --bin forklog
FORKLOG="$target_dir/debug/forklog" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/interop/tests/python"
