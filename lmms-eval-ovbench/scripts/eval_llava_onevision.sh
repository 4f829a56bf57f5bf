#!/usr/bin/env bash
# LLaVA-OneVision (lmms-eval's `llava_onevision` model) on OVBench: 16 frames over each question's clip.
#   PRETRAINED=lmms-lab/llava-onevision-qwen2-7b-ov GPUS=8 bash lmms-eval-ovbench/scripts/eval_llava_onevision.sh
MODEL=llava_onevision MODEL_ARGS="pretrained=${PRETRAINED:-lmms-lab/llava-onevision-qwen2-7b-ov},conv_template=qwen_1_5,model_name=llava_qwen" \
exec bash "$(dirname "$0")/run_ovbench.sh" "$@"
