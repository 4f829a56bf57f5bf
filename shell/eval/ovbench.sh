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
# PRESET     published | project (docs/evaluation.md)              (default published)
# OUTPUT_DIR (default runs/ovbench_$PROTOCOL); run again with the same one to resume
# PYTHON     the interpreter (default: the project's .venv, else python3 on PATH)
# Every other option is `python -m videochat_online.eval`'s, given after the command (e.g. --fps 4,
# --capacities 2,2,12, --window-seconds 16) or in a file (--config my_eval.yaml); the memory's default is
# the one the checkpoint records.
set -euo pipefail

PROTOCOL=${PROTOCOL:-stream}
: "${MODEL:?set MODEL to a checkpoint directory or hub id}"
: "${ANNO_DIR:?set ANNO_DIR to the folder holding ava.json, coin.json, hirest.json and tao.json}"
GPUS=${GPUS:-1}
OUTPUT_DIR=${OUTPUT_DIR:-runs/ovbench_${PROTOCOL}}

py="${PYTHON:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}"
[ -x "$py" ] || py=$(command -v python3)
args=(--model "$MODEL" --anno-dir "$ANNO_DIR" --protocol "$PROTOCOL" --preset "${PRESET:-published}"
      --output-dir "$OUTPUT_DIR")
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
"$py" -m torch.distributed.run --nproc_per_node "$GPUS" --master_port "${MASTER_PORT:-29500}" \
  -m videochat_online.eval "${args[@]}" "$@" 2>&1 | tee -a "$OUTPUT_DIR/eval.log"
