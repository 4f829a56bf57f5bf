#!/usr/bin/env bash
# Stage 2, joint online + offline SFT, from InternVL2-4B: the recipe shell/sft/videochat_online_4b_stage2.yaml on
# 4 nodes x 8 GPUs, global batch 1024 (docs/training.md). On each node:
#
#   MODEL=/ckpt/InternVL2-4B DATA_DIR=/data OUTPUT_DIR=runs/videochat_online_4b_stage2 \
#   NNODE=4 NODE_RANK=<0..3> MASTER_ADDR=<node 0> bash shell/sft/videochat_online_4b_stage2_ft.sh
here="$(cd "$(dirname "$0")" && pwd)"
RECIPE=${RECIPE:-$here/videochat_online_4b_stage2.yaml} NNODE=${NNODE:-4} GPUS=${GPUS:-8} exec bash "$here/sft.sh" "$@"
