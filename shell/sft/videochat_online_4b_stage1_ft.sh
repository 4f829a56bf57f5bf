#!/usr/bin/env bash
# Stage 1, offline SFT, from InternVL2-4B: the recipe shell/sft/videochat_online_4b_stage1.yaml on 1 node x 8 GPUs,
# global batch 1024 (docs/training.md):
#
#   MODEL=/ckpt/InternVL2-4B DATA_DIR=/data OUTPUT_DIR=runs/videochat_online_4b_stage1 \
#     bash shell/sft/videochat_online_4b_stage1_ft.sh
#
# Every setting of sft.sh can be overridden by its environment variable (NNODE, GPUS, GLOBAL_BATCH, ...).
here="$(cd "$(dirname "$0")" && pwd)"
RECIPE=${RECIPE:-$here/videochat_online_4b_stage1.yaml} NNODE=${NNODE:-1} GPUS=${GPUS:-8} exec bash "$here/sft.sh" "$@"
