#!/usr/bin/env bash
# Runs the Rust engine and the NumPy reference (benches/reference/) side by side on a
# set of real layer files, one run, same machine.
#
#   scripts/bench-reference.sh LAYER_DIR [--rows N] [--sparsity 0.5] [--max-swaps 100]
#
# LAYER_DIR holds `layers/*.safetensors` files written by a pipeline with
# `save_grams = true` (see examples/smollm2-layerset.toml). The virtual environment
# (numpy, safetensors) is created on first use in benches/reference/.venv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/benches/reference/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet numpy safetensors
fi
cargo build --release -p sparseswaps-cli --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/sparseswaps"
exec "$VENV/bin/python" "$REPO/benches/reference/compare.py" "$BIN" "$@"
