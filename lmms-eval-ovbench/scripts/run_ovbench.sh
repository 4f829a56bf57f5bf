#!/usr/bin/env bash
# Run OVBench (or other lmms-eval tasks) with lmms-eval and check its output files.
#
#   MODEL=videochat_online MODEL_ARGS=pretrained=OpenGVLab/VideoChat-Online-4B \
#   OVBENCH_AVA_ROOT=/data/ava/frames OVBENCH_COIN_ROOT=/data/coin/videos \
#   OVBENCH_HIREST_ROOT=/data/hirest/videos OVBENCH_TAO_ROOT=/data/tao/frames \
#   GPUS=8 bash lmms-eval-ovbench/scripts/run_ovbench.sh [extra lmms-eval arguments, e.g. --limit 10]
#
# MODEL        an lmms-eval model name                 (required)
# MODEL_ARGS   its --model_args                         (required)
# TASKS        comma-separated                          (default ovbench: the four subsets)
# GPUS         processes, one per GPU (torchrun)        (default 1)
# OUTPUT_PATH  (default runs/lmms_eval/$MODEL)
# PYTHON       the interpreter (default: the project's .venv, else python3 on PATH)
# DRY_RUN=1    print the lmms-eval command and stop
# lmms-eval exits 0 even when an evaluation fails, so the run is judged by its results file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$here/../../.venv/bin/python}"
[ -x "$py" ] || py=$(command -v python3)
: "${MODEL:?set MODEL to an lmms-eval model name}"
: "${MODEL_ARGS:?set MODEL_ARGS, e.g. pretrained=OpenGVLab/VideoChat-Online-4B}"
TASKS=${TASKS:-ovbench}
GPUS=${GPUS:-1}
OUTPUT_PATH=${OUTPUT_PATH:-runs/lmms_eval/$MODEL}

# torchrun rather than `accelerate launch`: accelerate's CLI imports timm, which needs a torchvision that
# imports (not so on a CPU machine with PyPI's CUDA build); the model plug-in starts the process group itself.
if [ "$GPUS" -gt 1 ]; then launcher=("$py" -m torch.distributed.run --nproc_per_node "$GPUS" --master_port "${MASTER_PORT:-29520}" -m lmms_eval)
else launcher=("$py" -m lmms_eval); fi
# every task folder: OVBench, and OVO-Bench's and StreamingBench's multiple-choice tasks
command=("${launcher[@]}" --model "$MODEL" --model_args "$MODEL_ARGS" --tasks "$TASKS" --include_path "$here/../tasks"
         --batch_size 1 --log_samples --output_path "$OUTPUT_PATH" "$@")
if [ -n "${DRY_RUN:-}" ]; then echo "${command[@]}"; exit 0; fi
mkdir -p "$OUTPUT_PATH"
started=$(date +%s)
"${command[@]}" 2>&1 | tee "$OUTPUT_PATH/lmms_eval.log"

checked=$(echo "$TASKS" | tr ',' ' ')
[ "$TASKS" = ovbench ] && checked="ovbench ovbench_ava ovbench_coin ovbench_hirest ovbench_tao"
# shellcheck disable=SC2086  # one argument per task
"$py" -m lmms_eval_ovbench.check "$OUTPUT_PATH" $checked --since "$started"
