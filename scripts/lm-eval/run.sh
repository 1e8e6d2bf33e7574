#!/usr/bin/env bash
# Zero-shot scores of one or more Hugging Face model directories (a pruned output's
# `model/`, or a dense model converted with `sparseswaps convert`) with
# lm-evaluation-harness, the tool papers use for their zero-shot tables. Developer tool:
# needs Python with lm_eval, torch, transformers and accelerate (docs/lm-eval.md gives the
# versions and the one-line install); CI never runs it.
#
# usage: scripts/lm-eval/run.sh TASKS MODEL_DIR...
#   TASKS: lm-eval task names, comma-separated (hellaswag,arc_easy,... fetch their data
#   from the Hugging Face hub), or one of two tasks on local data, which need no hub:
#     local             last-word prediction on the evaluation text (make_task.py)
#     winogrande_local  WinoGrande twin sentences from BIG-bench's PyPI package, scored
#                       by lm-eval's own winogrande code (make_winogrande.py; the
#                       package's sdist, 358 MB, is downloaded once into $OUT)
# env: PYTHON (default python3), SPARSESWAPS_ASSETS (the evaluation text for `local`),
#   OUT (results directory, default out/lm-eval), BATCH (default 16), LIMIT (examples
#   per task, default all), PAIRS (sentence pairs of winogrande_local, default 500).
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n 2,19p "$0"; exit 2; }
tasks=$1
shift
py=${PYTHON:-python3}
out=${OUT:-out/lm-eval}
here=$(cd "$(dirname "$0")" && pwd)
extra=()
if [[ $tasks == local ]]; then
    assets=${SPARSESWAPS_ASSETS:-$here/../../.cache/assets}
    "$py" "$here/make_task.py" "$assets/moby-dick.txt" "$out/task" 500
    extra=(--include_path "$out/task")
    tasks=sentences_lastword
elif [[ $tasks == winogrande_local ]]; then
    task_json=$out/bigbench/subtask029_winogrande_full_object/task.json
    if [[ ! -f $task_json ]]; then
        mkdir -p "$out/bigbench"
        "$py" "$here/fetch_bigbench_task.py" bigbench==1.0.0 \
            natural_instructions/subtask029_winogrande_full_object/task.json "$task_json"
    fi
    "$py" "$here/make_winogrande.py" "$task_json" "$out/task-winogrande" "${PAIRS:-500}"
    extra=(--include_path "$out/task-winogrande")
fi
[[ -n ${LIMIT:-} ]] && extra+=(--limit "$LIMIT")
for model in "$@"; do
    [[ -f $model/config.json ]] || { echo "$model: no config.json (not a Hugging Face model directory)" >&2; exit 1; }
    name=$(basename "$(dirname "$(realpath "$model")")")-$(basename "$model")
    echo "== $model"
    "$py" -m lm_eval --model hf \
        --model_args "pretrained=$model,dtype=float32" \
        --tasks "$tasks" --device cpu --batch_size "${BATCH:-16}" \
        --output_path "$out/$name" "${extra[@]}"
done
