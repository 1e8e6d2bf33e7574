#!/usr/bin/env bash
# GPU check of the CUDA backend (crates/kernels): one command on a machine with an NVIDIA
# GPU, under 8 minutes on an H100/H200-class card.
#
#   scripts/gpu-check.sh [RESULTS_FILE]
#
#   1. builds sparseswaps-kernels in release with nvcc REQUIRED (SPARSESWAPS_REQUIRE_NVCC=1:
#      a missing or failing nvcc stops the check instead of timing a build without kernels);
#   2. runs the crate's tests with the GPU tests enabled (SPARSESWAPS_GPU_TESTS=1): the CUDA
#      backend against the CPU engine, bit for bit, on small layers; the cuBLAS Gram;
#   3. times the backend at Llama-3.1-8B layer shapes (4096x4096, 14336x4096, 4096x14336;
#      50% unstructured and 2:4; max_swaps 100) on synthetic LLM-like data, with the CPU
#      engine run on the first rows of each layer for agreement (examples/gpu_timing.rs).
#   Figures go to RESULTS_FILE (default: $OUT/gpu-check-results.txt when OUT is set, else
#   ./gpu-check-results.txt); docs/results.md (GPU) quotes that file.
#
# Machines with nvcc but no Rust toolchain (the lent GPU machines' image): build on a
# machine that has cargo and an nvcc NOT NEWER than the GPU machine's driver supports
# (PTX from a newer nvcc fails to load: CUDA_ERROR_UNSUPPORTED_PTX_VERSION). For a CUDA
# 13.0 driver, an nvcc from PyPI in a throwaway venv outside the repo does:
#   python3 -m venv /tmp/nvcc13 && /tmp/nvcc13/bin/pip install nvidia-cuda-nvcc==13.0.88 \
#     'nvidia-nvvm==13.0.*' 'nvidia-cuda-crt==13.0.*' 'nvidia-cuda-runtime==13.0.*'
#   NVCC=$(echo /tmp/nvcc13/lib/python3*/site-packages/nvidia/cu13/bin/nvcc) \
#     scripts/gpu-check.sh --prepare
# which leaves the binaries in .gpu-check/ (added to .git/info/exclude); carry that folder
# to the GPU machine and run there
#   scripts/gpu-check.sh --prebuilt [RESULTS_FILE]
# Without an option the script builds when cargo exists, else uses .gpu-check/.
#
# Environment: NVCC / CUDA_HOME (nvcc to use), SPARSESWAPS_CUDA_ARCH (default compute_80),
# GPU_CHECK_TIMING_ARGS (extra arguments of the timing run, e.g. "--cpu-rows 32").
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
MODE=auto
case "${1:-}" in
  --prepare) MODE=prepare; shift ;;
  --prebuilt) MODE=prebuilt; shift ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac
if [ -n "${1:-}" ]; then
  RESULTS="$1"
elif [ -n "${OUT:-}" ]; then
  RESULTS="$OUT/gpu-check-results.txt"
else
  RESULTS="$ROOT/gpu-check-results.txt"
fi
PREBUILT="$ROOT/.gpu-check"
export SPARSESWAPS_REQUIRE_NVCC=1

# An nvcc on the usual paths when none was named (build.rs searches the same places, but
# saying which one is used belongs in the results).
if [ -z "${NVCC:-}" ] && [ -z "${CUDA_HOME:-}" ] && ! command -v nvcc >/dev/null 2>&1; then
  [ -x /usr/local/cuda/bin/nvcc ] && export CUDA_HOME=/usr/local/cuda
fi

# Build the test and timing binaries; print the paths of (gpu tests, selection tests,
# timing example).
build() {
  local log
  log=$(mktemp)
  # Logs go to stderr on failure: stdout carries only the three paths.
  if ! cargo build --release -p sparseswaps-kernels --example gpu_timing >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; return 1
  fi
  if ! cargo test --release -p sparseswaps-kernels --no-run >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; return 1
  fi
  local gpu sel dir
  gpu=$(sed -n 's/.*Executable tests\/gpu.rs (\(.*\))/\1/p' "$log" | tail -1)
  sel=$(sed -n 's/.*Executable tests\/selection.rs (\(.*\))/\1/p' "$log" | tail -1)
  rm -f "$log"
  dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [ -n "$dir" ] || dir="$ROOT/target"
  case "$gpu" in /*) ;; *) gpu="$ROOT/$gpu" ;; esac
  case "$sel" in /*) ;; *) sel="$ROOT/$sel" ;; esac
  echo "$gpu" "$sel" "$dir/release/examples/gpu_timing"
}

if [ "$MODE" = prepare ]; then
  command -v cargo >/dev/null 2>&1 || { echo "gpu-check --prepare needs cargo"; exit 2; }
  echo "building with nvcc required ..."
  PATHS=$(build) || exit 1
  read -r GPU_T SEL_T TIMING <<< "$PATHS"
  [ -x "$GPU_T" ] && [ -x "$SEL_T" ] && [ -x "$TIMING" ] || { echo "build produced no binaries"; exit 1; }
  mkdir -p "$PREBUILT"
  cp "$GPU_T" "$PREBUILT/gpu-tests"
  cp "$SEL_T" "$PREBUILT/selection-tests"
  cp "$TIMING" "$PREBUILT/gpu_timing"
  grep -qx '/.gpu-check/' .git/info/exclude 2>/dev/null || echo '/.gpu-check/' >> .git/info/exclude
  { echo "built $(date -u +%FT%TZ) on $(uname -m) by $(git rev-parse --short HEAD 2>/dev/null)"
    "$PREBUILT/selection-tests" ptx_status --nocapture 2>/dev/null | grep -i "kernels" ; } \
    > "$PREBUILT/BUILD_INFO"
  cat "$PREBUILT/BUILD_INFO"
  echo "ready: carry .gpu-check and run scripts/gpu-check.sh --prebuilt on the GPU machine"
  exit 0
fi

if [ "$MODE" = auto ]; then
  if command -v cargo >/dev/null 2>&1; then MODE=build; else MODE=prebuilt; fi
fi

mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"
say() { echo "$*" | tee -a "$RESULTS"; }
START=$(date +%s)
say "== sparseswaps GPU check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), mode $MODE"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$RESULTS"
else
  say "gpu: nvidia-smi not found"
fi

# cuBLAS (Gram accumulation) is found by the dynamic loader: add the usual CUDA library
# folders, including pip's nvidia-* wheels.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
if command -v python3 >/dev/null 2>&1; then
  for d in $(python3 -c 'import site,glob;print(" ".join(d for p in site.getsitepackages() for d in glob.glob(p+"/nvidia/*/lib")))' 2>/dev/null); do
    LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
fi
export LD_LIBRARY_PATH

if [ "$MODE" = build ]; then
  say "nvcc: $( (${NVCC:-nvcc} --version 2>/dev/null || "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>/dev/null) | tail -1)"
  say "-- build (release, SPARSESWAPS_REQUIRE_NVCC=1)"
  if ! PATHS=$(build); then
    say "BUILD FAILED (see above)"; exit 1
  fi
  read -r GPU_T SEL_T TIMING <<< "$PATHS"
  say "build done in $(( $(date +%s) - START )) s"
else
  [ -x "$PREBUILT/gpu_timing" ] || { say "no cargo here and no prebuilt binaries in $PREBUILT (run --prepare where cargo is)"; exit 2; }
  GPU_T="$PREBUILT/gpu-tests"; SEL_T="$PREBUILT/selection-tests"; TIMING="$PREBUILT/gpu_timing"
  [ -f "$PREBUILT/BUILD_INFO" ] && sed 's/^/prebuilt: /' "$PREBUILT/BUILD_INFO" | tee -a "$RESULTS"
fi

STATUS=0
export SPARSESWAPS_GPU_TESTS=1
say "-- tests"
timeout 60 "$SEL_T" 2>&1 | tail -12 | tee -a "$RESULTS"; [ "${PIPESTATUS[0]}" = 0 ] || STATUS=1
timeout 150 "$GPU_T" 2>&1 | tee -a "$RESULTS"; [ "${PIPESTATUS[0]}" = 0 ] || STATUS=1

say "-- timing (Llama-3.1-8B shapes)"
# shellcheck disable=SC2086
timeout 330 "$TIMING" --out "$RESULTS.timing" ${GPU_CHECK_TIMING_ARGS:-}
rc=$?
[ -f "$RESULTS.timing" ] && cat "$RESULTS.timing" >> "$RESULTS" && rm -f "$RESULTS.timing"
if [ "$rc" != 0 ]; then
  say "timing run exited with $rc$([ "$rc" = 124 ] && echo ' (timed out)')"; STATUS=1
fi
say "== done in $(( $(date +%s) - START )) s, status $([ $STATUS = 0 ] && echo OK || echo FAILED)"
exit $STATUS
