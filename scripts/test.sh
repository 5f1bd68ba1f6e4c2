#!/usr/bin/env bash
# The project's test command: every crate's unit, integration, property and
# doc tests, plus the benchmarks compiled and run once in test mode so they
# cannot rot. Needs ../shared next to the repository (set WIRESIGNAL_SHARED to
# point elsewhere); with CI=true a missing data folder fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"
