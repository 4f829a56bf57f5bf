#!/usr/bin/env bash
# VideoChat-Online on OVBench through lmms-eval: each video watched once as a stream (Pyramid Memory Bank),
# with the published OVBench system message. Set the OVBENCH_*_ROOT variables (see run_ovbench.sh).
#   PRETRAINED=OpenGVLab/VideoChat-Online-4B GPUS=8 bash lmms-eval-ovbench/scripts/eval_videochat_online.sh
MODEL=videochat_online \
MODEL_ARGS="pretrained=${PRETRAINED:-OpenGVLab/VideoChat-Online-4B},memory=${MEMORY:-pyramid},fps=${FPS:-2},system_message=ovbench" \
exec bash "$(dirname "$0")/run_ovbench.sh" "$@"
