#!/usr/bin/env bash
# OVBench evaluation under torchrun, configured by environment variables (no paths are built in):
#
#   PROTOCOL=stream MODEL=OpenGVLab/VideoChat-Online-4B ANNO_DIR=/data/ovbench \
#   AVA_ROOT=/data/ava/frames COIN_ROOT=/data/coin/videos HIREST_ROOT=/data/hirest/videos TAO_ROOT=/data/tao/frames \
#   GPUS=8 OUTPUT_DIR=runs/ovbench_stream bash shell/eval/ovbench.sh
#
# PROTOCOL   stream | window | uniform | recompute               (default stream)
# MODEL      checkpoint directory or hub id                        (required)
# ANNO_DIR   folder with ava.json coin.json hirest.json tao.json   (required)
# *_ROOT     where each subset's videos / frame folders are; only subsets with a root are evaluated
# GPUS       processes (one per GPU) on this node                  (default 1)
# PRESET     published | project (README: OVBench)                 (default published)
# FPS        sampling rate                    (default: the preset's: published 8 for stream, 2 for window)
# CAPACITIES, GRID_SIZES, INTERVALS   pyramid memory               (default 2,2,12 / the model's / 8,4,1)
# WINDOW_SECONDS  published window: seconds before the question    (default 32)
# WINDOW     project window: sampled frames                        (default 32)
# UNIFORM_FRAMES  frames per question, uniform protocol            (default 16)
# OUTPUT_DIR (default runs/ovbench_$PROTOCOL); run again with the same one to resume
# Extra arguments are passed to `python -m videochat_online.eval`.
set -euo pipefail

PROTOCOL=${PROTOCOL:-stream}
: "${MODEL:?set MODEL to a checkpoint directory or hub id}"
: "${ANNO_DIR:?set ANNO_DIR to the folder holding ava.json, coin.json, hirest.json and tao.json}"
GPUS=${GPUS:-1}
OUTPUT_DIR=${OUTPUT_DIR:-runs/ovbench_${PROTOCOL}}

args=(--model "$MODEL" --anno-dir "$ANNO_DIR" --protocol "$PROTOCOL" --preset "${PRESET:-published}"
      --output-dir "$OUTPUT_DIR" --capacities "${CAPACITIES:-2,2,12}" --intervals "${INTERVALS:-8,4,1}"
      --window-seconds "${WINDOW_SECONDS:-32}" --window "${WINDOW:-32}" --uniform-frames "${UNIFORM_FRAMES:-16}")
[ -n "${FPS:-}" ] && args+=(--fps "$FPS")
[ -n "${GRID_SIZES:-}" ] && args+=(--grid-sizes "$GRID_SIZES")
subsets=()
for subset in ava coin hirest tao; do
  root_var="${subset^^}_ROOT"
  if [ -n "${!root_var:-}" ]; then
    args+=(--data-root "$subset=${!root_var}")
    subsets+=("$subset")
  fi
done
[ ${#subsets[@]} -gt 0 ] || { echo "set at least one of AVA_ROOT, COIN_ROOT, HIREST_ROOT, TAO_ROOT" >&2; exit 2; }
args+=(--subsets "$(IFS=,; echo "${subsets[*]}")")

mkdir -p "$OUTPUT_DIR"
torchrun --nproc_per_node "$GPUS" --master_port "${MASTER_PORT:-29500}" \
  -m videochat_online.eval "${args[@]}" "$@" 2>&1 | tee -a "$OUTPUT_DIR/eval.log"
