#!/usr/bin/env bash
# Stage 1, offline SFT (image, multi-image and video instruction data), from InternVL2-4B; 1 node x 8 GPUs,
# per-device batch 1, global batch 1024 (DESIGN.md section 7):
#
#   MODEL=/ckpt/InternVL2-4B DATA_DIR=/data OUTPUT_DIR=runs/videochat_online_4b_stage1 \
#     bash shell/sft/videochat_online_4b_stage1_ft.sh
#
# Every setting of sft.sh can be overridden by its environment variable (NNODE, GPUS, PER_DEVICE_BATCH, ...).
here="$(cd "$(dirname "$0")" && pwd)"
META=${META:-$here/../../anno_data/stage1_offline.json} NNODE=${NNODE:-1} GPUS=${GPUS:-8} \
PER_DEVICE_BATCH=${PER_DEVICE_BATCH:-1} exec bash "$here/sft.sh" "$@"
