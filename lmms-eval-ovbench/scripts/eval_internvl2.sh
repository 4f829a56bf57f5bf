#!/usr/bin/env bash
# InternVL2 (lmms-eval's `internvl2` model) on OVBench: 16 frames over each question's clip, as images.
#   PRETRAINED=OpenGVLab/InternVL2-8B GPUS=8 bash lmms-eval-ovbench/scripts/eval_internvl2.sh
MODEL=internvl2 MODEL_ARGS="pretrained=${PRETRAINED:-OpenGVLab/InternVL2-8B},modality=image" \
exec bash "$(dirname "$0")/run_ovbench.sh" "$@"
