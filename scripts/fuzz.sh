#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS_PER_TARGET (default 600), one at a time
# (libFuzzer, one process: the development machine has 2 cores), and prints each
# target's number of executions. Exits non-zero when a target crashes (the crashing
# input is left in fuzz/artifacts/TARGET/) or a build fails.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). FUZZ_TARGETS
# ("a b") runs only those targets. Logs go to fuzz/logs/TARGET.log; the inputs libFuzzer
# finds go to fuzz/corpus/TARGET/ next to the committed seeds (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-600}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "scripts/fuzz.sh: SECONDS_PER_TARGET must be a positive integer, got '$secs'" >&2
    exit 2
fi
read -r -a targets <<<"${FUZZ_TARGETS:-pipeline_config safetensors_header gguf_header mask_validation pattern_parse}"

# fuzz/ is a workspace of its own with sanitizer flags: keep its build out of the main
# target directory (CI exports one), so neither invalidates the other.
export CARGO_TARGET_DIR="${SPARSESWAPS_FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

echo "== fuzz: building the targets (nightly, AddressSanitizer)"
mkdir -p fuzz/logs
if ! cargo +nightly fuzz build >fuzz/logs/build.log 2>&1; then
    tail -n 30 fuzz/logs/build.log >&2
    echo "fuzz: build failed (full log: fuzz/logs/build.log)" >&2
    exit 1
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log="fuzz/logs/$t.log"
    start=$(date +%s)
    # -rss_limit_mb: an input that makes a loader allocate more than this is a bug (sizes
    # from a header must be checked against the file first); -timeout: likewise a hang.
    if cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 \
        >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$t")
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
    echo "fuzz: $t: ${execs:-?} executions in $(($(date +%s) - start)) s: $status"
    if [[ $status != ok ]]; then
        grep -E 'panicked|ERROR: |SUMMARY|Test unit written' "$log" | head -n 8 >&2 || true
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)" >&2
    exit 1
fi
