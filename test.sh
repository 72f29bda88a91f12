#!/usr/bin/env bash
# Every test of the workspace: the engine's, the CLI's and the interop library's Rust tests (unit,
# integration, model-based, crash and fault injection, doctests).
#
#   ./test.sh            # everything
#
# Needs only a Rust toolchain and Python 3 (later steps create a virtualenv under target/ and install
# what they need from the package registry).
set -euo pipefail
cd "$(dirname "$0")"

echo "=== Rust: cargo test --workspace"
cargo test --workspace
