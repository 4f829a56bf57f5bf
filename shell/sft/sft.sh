#!/usr/bin/env bash
# SFT under torchrun + DeepSpeed: the GPU and node layout. The recipe (data, freezing, schedule, DeepSpeed
# config, ...) is a file read by the trainer itself (`--config`); the stage launchers name theirs.
#
#   RECIPE=shell/sft/videochat_online_4b_stage1.yaml MODEL=/ckpt/InternVL2-4B OUTPUT_DIR=runs/stage1 bash shell/sft/sft.sh
#
# RECIPE            the recipe file (keys: the options of `python -m videochat_online.train.sft`)     (required)
# MODEL             starting checkpoint (InternVL2-4B, original layout, or any load_pretrained reads)  (required)
# OUTPUT_DIR        (required)
# DATA_DIR          base of the meta files' relative paths (default: each meta file's folder)
# NNODE, NODE_RANK, MASTER_ADDR, MASTER_PORT   the nodes (default 1 node)
# GPUS              GPUs per node                                                                       (default 8)
# GLOBAL_BATCH      samples per optimizer step                                                           (default 1024)
# DRY_RUN=1         print the torchrun command instead of running it
# PYTHON            the interpreter (default: the project's .venv, else python3 on PATH)
# Gradient accumulation = GLOBAL_BATCH / (the recipe's per_device_train_batch_size x GPUS x NNODE). Relative
# paths (RECIPE, MODEL, OUTPUT_DIR, DATA_DIR) are taken from where you are; the recipe's own from the
# repository root. Extra arguments go to the trainer and override the recipe (e.g. --use_llm_lora 16).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=$(command -v python3)
: "${RECIPE:?set RECIPE to a recipe file (e.g. shell/sft/videochat_online_4b_stage1.yaml)}"
: "${MODEL:?set MODEL to the starting checkpoint (e.g. an InternVL2-4B directory)}"
: "${OUTPUT_DIR:?set OUTPUT_DIR}"
absolute() { if [ -e "$1" ] || [[ "$1" == ./* || "$1" == ../* || "$1" == */*/* ]]; then realpath -m "$1"; else echo "$1"; fi; }
RECIPE=$(realpath -m "$RECIPE") MODEL=$(absolute "$MODEL") OUTPUT_DIR=$(realpath -m "$OUTPUT_DIR")
[ -n "${DATA_DIR:-}" ] && DATA_DIR=$(realpath -m "$DATA_DIR")
NNODE=${NNODE:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
GPUS=${GPUS:-8}
GLOBAL_BATCH=${GLOBAL_BATCH:-1024}
per_device=$("$py" -c 'import sys, yaml; print((yaml.safe_load(open(sys.argv[1])) or {}).get("per_device_train_batch_size", 8))' "$RECIPE")

world=$((GPUS * NNODE))
if [ $((GLOBAL_BATCH % (per_device * world))) -ne 0 ]; then
  echo "error: GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of the recipe's per-device batch $per_device x $world GPUs" >&2
  exit 2
fi
grad_acc=$((GLOBAL_BATCH / (per_device * world)))
echo "nodes=$NNODE gpus/node=$GPUS per-device batch=$per_device grad accumulation=$grad_acc global batch=$GLOBAL_BATCH"

if [ "${DRY_RUN:-0}" != 1 ]; then  # a layout this machine cannot run: one line saying what runs instead
  here=$("$py" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
  if [ "$here" -lt "$GPUS" ]; then
    if [ "$here" -eq 0 ]; then
      echo "error: GPUS=$GPUS but this machine has no CUDA GPU; on the CPU train in one process:" \
           "$py -m videochat_online.train.sft --config $RECIPE --model_name_or_path $MODEL --output_dir $OUTPUT_DIR" \
           "--use_cpu True --bf16 False --deepspeed ''" >&2
    else
      echo "error: GPUS=$GPUS but this machine has $here CUDA GPUs; set GPUS=$here (and GLOBAL_BATCH to fit)" >&2
    fi
    exit 2
  fi
fi

cd "$root"  # the recipe's paths are relative to the repository root
run=()
if [ "${DRY_RUN:-0}" = 1 ]; then run=(echo); else mkdir -p "$OUTPUT_DIR"; fi
"${run[@]}" "$py" -m torch.distributed.run --nnodes "$NNODE" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" -m videochat_online.train.sft --config "$RECIPE" \
  --model_name_or_path "$MODEL" ${DATA_DIR:+--data_dir "$DATA_DIR"} --output_dir "$OUTPUT_DIR" \
  --gradient_accumulation_steps "$grad_acc" "$@" 2>&1 | if [ "${DRY_RUN:-0}" = 1 ]; then cat; else tee -a "$OUTPUT_DIR/train.log"; fi
