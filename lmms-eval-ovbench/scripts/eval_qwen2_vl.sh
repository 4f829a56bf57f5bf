#!/usr/bin/env bash
# Qwen2-VL (lmms-eval's `qwen2_vl` model) on OVBench: 16 frames over each question's clip.
#   PRETRAINED=Qwen/Qwen2-VL-7B-Instruct GPUS=8 bash lmms-eval-ovbench/scripts/eval_qwen2_vl.sh
MODEL=qwen2_vl MODEL_ARGS="pretrained=${PRETRAINED:-Qwen/Qwen2-VL-7B-Instruct},max_pixels=${MAX_PIXELS:-200704}" \
exec bash "$(dirname "$0")/run_ovbench.sh" "$@"
