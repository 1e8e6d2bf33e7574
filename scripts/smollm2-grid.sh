#!/usr/bin/env bash
# Runs cells of the SmolLM2-135M results grid (docs/results.md, "Warm starts × refinements
# × patterns") and keeps each run's report under docs/runs/NAME/report.json, where
# `sparseswaps compare` tables it (crates/pipeline/tests/docs_tables.rs checks the tables).
#
# Usage: scripts/smollm2-grid.sh [--bin PATH] [--work DIR] CELL...
#
# A cell is smollm2-PATTERN-WARM-VARIANT[-seedN]:
#   PATTERN  50 | 60 | 2of4                      (examples/smollm2-PATTERN.toml)
#   WARM     magnitude | wanda | ria | sparsegpt  (ria: the C example plugin, built here)
#   VARIANT  alone        max_swaps = 0
#            refit        max_swaps = 0, reconstruct = true
#            swaps        max_swaps = 100 (the example's setting)
#            swaps-refit  max_swaps = 100, reconstruct = true
#            objective    max_swaps = 100, objective = "refit"
#            layer        max_swaps = 100, budget = "layer"
#            layer-refit  max_swaps = 100, budget = "layer", reconstruct = true
#            layer-objective  max_swaps = 100, budget = "layer", objective = "refit"
#   seedN    calibration.seed = N (default 0)
# Every cell skips the dense evaluation (its perplexity is the same in every run: 47.254).
# The pruned model and masks of a cell are written under --work (default
# /tmp/sparseswaps-grid) and deleted once its report is kept; a cell whose report is
# already in docs/runs is skipped (delete the directory to run it again).
# Assets: $SPARSESWAPS_ASSETS (default .cache/assets), fetched by scripts/fetch-assets.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/sparseswaps"
work=/tmp/sparseswaps-grid
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        *) echo "smollm2-grid: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $# -gt 0 ]] || { sed -n '2,23p' "$0" >&2; exit 2; }
[[ -x $bin ]] || { echo "smollm2-grid: no binary at $bin (cargo build --release, or --bin)" >&2; exit 2; }
assets=${SPARSESWAPS_ASSETS:-$root/.cache/assets}
plugin_dir="$work/plugins"
mkdir -p "$work" "$plugin_dir"

# The RIA warm start is the C example plugin; build it once per work directory.
ria_lib="$plugin_dir/libria.so"
build_ria() {
    [[ -f $ria_lib ]] || cc -O2 -shared -fPIC -I"$root/plugins/include" \
        "$root/plugins/examples/ria/ria.c" -o "$ria_lib" -lm
}

# Appends lines ($3) under a table's header ([$2]) of a config file ($1): TOML takes a
# table's keys only between its header and the next one.
append_to_table() {
    awk -v table="[$2]" -v lines="$3" '{ print } $0 == table { print lines }' "$1" > "$1.tmp"
    mv "$1.tmp" "$1"
}

for cell in "$@"; do
    if [[ ! $cell =~ ^smollm2-(50|60|2of4)-(magnitude|wanda|ria|sparsegpt)-(alone|refit|swaps|swaps-refit|objective|layer|layer-refit|layer-objective)(-seed([0-9]+))?$ ]]; then
        echo "smollm2-grid: bad cell name '$cell' (see the usage at the top of $0)" >&2
        exit 2
    fi
    pattern=${BASH_REMATCH[1]} warm=${BASH_REMATCH[2]} variant=${BASH_REMATCH[3]}
    seed=${BASH_REMATCH[5]:-0}
    keep="$root/docs/runs/$cell"
    if [[ -f $keep/report.json ]]; then
        echo "smollm2-grid: $cell: kept already ($keep/report.json), skipped" >&2
        continue
    fi
    [[ $warm == ria ]] && build_ria

    max_swaps=100 extra=""
    case $variant in
        alone) max_swaps=0 ;;
        refit) max_swaps=0; extra='reconstruct = true' ;;
        swaps) ;;
        swaps-refit) extra='reconstruct = true' ;;
        objective) extra='objective = "refit"' ;;
        layer) extra='budget = "layer"' ;;
        layer-refit) extra=$'budget = "layer"\nreconstruct = true' ;;
        layer-objective) extra=$'budget = "layer"\nobjective = "refit"' ;;
    esac
    out="$work/$cell"
    config="$work/$cell.toml"
    # The example's settings, with this cell's warm start, refinement, seed and paths.
    sed -e "s|\${SPARSESWAPS_ASSETS:-.cache/assets}|$assets|" \
        -e "s|^seed = .*|seed = $seed|" \
        -e "s|^name = .*|name = \"$warm\"|" \
        -e "s|^max_swaps = .*|max_swaps = $max_swaps|" \
        -e "s|^dir = .*|dir = \"$out\"|" \
        "$root/examples/smollm2-$pattern.toml" > "$config"
    [[ -n $extra ]] && append_to_table "$config" refine "$extra"
    append_to_table "$config" eval 'dense = false'

    echo "smollm2-grid: $cell: $(date -u +%FT%TZ) start ($config)" >&2
    rm -rf "$out"
    "$bin" run "$config" --plugin-dir "$plugin_dir" --quiet
    mkdir -p "$keep"
    cp "$out/report.json" "$keep/report.json"
    rm -rf "$out"
    echo "smollm2-grid: $cell: $(date -u +%FT%TZ) kept $keep/report.json" >&2
done
