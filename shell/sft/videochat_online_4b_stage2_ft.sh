#!/usr/bin/env bash
# Stage 2, joint online + offline SFT (interleaved online dialogues added to the offline data), from
# InternVL2-4B; 4 nodes x 8 GPUs, per-device batch 2, global batch 1024 (DESIGN.md section 7). On each node:
#
#   MODEL=/ckpt/InternVL2-4B DATA_DIR=/data OUTPUT_DIR=runs/videochat_online_4b_stage2 \
#   NNODE=4 NODE_RANK=<0..3> MASTER_ADDR=<node 0> bash shell/sft/videochat_online_4b_stage2_ft.sh
here="$(cd "$(dirname "$0")" && pwd)"
META=${META:-$here/../../anno_data/stage1_offline.json,$here/../../anno_data/stage2_online.json} \
NNODE=${NNODE:-4} GPUS=${GPUS:-8} PER_DEVICE_BATCH=${PER_DEVICE_BATCH:-2} exec bash "$here/sft.sh" "$@"
