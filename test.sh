#!/usr/bin/env bash
# Every test of the workspace: the engine's, the CLI's, the interop library's and the object-storage tier's
# Rust tests (unit, integration, model-based, crash and fault injection, a real S3 server, doctests), then the
# Python package's tests.
#
#   ./test.sh            # everything
#
# Needs only a Rust toolchain and Python 3 (3.9 or later). It first creates a virtualenv under
# target/python-venv (reused when present), installs pytest, hypothesis, numpy, pyarrow, pandas and
# moto[server] from PyPI and exports FORKLOG_MOTO_SERVER for `cargo test`; then builds and installs the
# package from ./python (maturin, into this workspace's cargo target dir, so the engine is compiled once) and
# runs python/tests.
set -euo pipefail
cd "$(dirname "$0")"

# The virtualenv comes first: it also holds moto's S3 server (moto[server]), which the object-storage tests
# (remote/tests/s3.rs, cli/tests/cli_remote.rs) start on 127.0.0.1 through FORKLOG_MOTO_SERVER.
echo "=== Python: virtualenv (pytest, moto's S3 server, ...)"
PYTHON="${PYTHON:-python3}"
target_dir="$(cargo metadata --format-version 1 --no-deps | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
venv="$target_dir/python-venv"
if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python" -m pip install --quiet pytest hypothesis numpy pyarrow pandas 'moto[server]>=5,<6'
export FORKLOG_MOTO_SERVER="$venv/bin/moto_server"

echo "=== Rust: cargo test --workspace"
cargo test --workspace

echo "=== Python: wheel, pytest"
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
