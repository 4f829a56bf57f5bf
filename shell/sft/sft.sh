#!/usr/bin/env bash
# SFT under torchrun + DeepSpeed, configured by environment variables; the stage launchers set the recipe.
#
# MODEL             starting checkpoint (InternVL2-4B, original layout, or any load_pretrained reads)  (required)
# META              meta file(s), comma-separated                                                        (required)
# DATA_DIR          base of the meta files' relative paths (default: each meta file's folder)
# OUTPUT_DIR        (required)
# NNODE, NODE_RANK, MASTER_ADDR, MASTER_PORT   the nodes (default 1 node)
# GPUS              GPUs per node                                                                       (default 8)
# GLOBAL_BATCH      samples per optimizer step                                                           (default 1024)
# PER_DEVICE_BATCH  samples per GPU per forward
# DEEPSPEED         ZeRO config file (default shell/sft/zero_stage1_config.json; stage 2 and 3 beside it)
# DRY_RUN=1         print the torchrun command instead of running it
# Gradient accumulation = GLOBAL_BATCH / (PER_DEVICE_BATCH x GPUS x NNODE). Extra arguments go to
# `python -m videochat_online.train.sft` (e.g. --use_llm_lora 16, --resume_from_checkpoint DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${MODEL:?set MODEL to the starting checkpoint (e.g. an InternVL2-4B directory)}"
: "${META:?set META to the meta file(s) naming the training data}"
: "${OUTPUT_DIR:?set OUTPUT_DIR}"
NNODE=${NNODE:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
GPUS=${GPUS:-8}
GLOBAL_BATCH=${GLOBAL_BATCH:-1024}
PER_DEVICE_BATCH=${PER_DEVICE_BATCH:-1}
DEEPSPEED=${DEEPSPEED:-$here/zero_stage1_config.json}

world=$((GPUS * NNODE))
if [ $((GLOBAL_BATCH % (PER_DEVICE_BATCH * world))) -ne 0 ]; then
  echo "GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of PER_DEVICE_BATCH=$PER_DEVICE_BATCH x $world GPUs" >&2
  exit 2
fi
grad_acc=$((GLOBAL_BATCH / (PER_DEVICE_BATCH * world)))
IFS=, read -ra metas <<<"$META"
meta_args=(--meta_path "${metas[@]}")  # one option, several values (a repeated --meta_path keeps only the last)
mkdir -p "$OUTPUT_DIR"
echo "nodes=$NNODE gpus/node=$GPUS per-device batch=$PER_DEVICE_BATCH grad accumulation=$grad_acc global batch=$GLOBAL_BATCH"

run=()
[ "${DRY_RUN:-0}" = 1 ] && run=(echo)  # print the command instead of running it
"${run[@]}" torchrun --nnodes "$NNODE" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" -m videochat_online.train.sft \
  --model_name_or_path "$MODEL" "${meta_args[@]}" ${DATA_DIR:+--data_dir "$DATA_DIR"} --output_dir "$OUTPUT_DIR" \
  --freeze_vision True --freeze_projector False --freeze_llm False --drop_path_rate 0.1 \
  --max_dynamic_patch 12 --fps 1 --max_num_frames 64 --pyramid_intervals 8,4,1 --max_seq_length 32768 \
  --bf16 True --gradient_checkpointing True --train_sampling_strategy group_by_length \
  --num_train_epochs 1 --learning_rate 1e-4 --weight_decay 0.05 --warmup_steps 0.03 --lr_scheduler_type cosine \
  --per_device_train_batch_size "$PER_DEVICE_BATCH" --gradient_accumulation_steps "$grad_acc" \
  --save_strategy steps --save_steps 500 --save_total_limit 2 --logging_steps 1 --report_to "${REPORT_TO:-none}" \
  --dataloader_num_workers "${WORKERS:-4}" --deepspeed "$DEEPSPEED" "$@" 2>&1 | tee -a "$OUTPUT_DIR/train.log"
