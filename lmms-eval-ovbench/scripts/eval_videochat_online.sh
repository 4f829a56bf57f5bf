#!/usr/bin/env bash
# VideoChat-Online on OVBench through lmms-eval: each video watched once as a stream, under the published
# preset (its 8 fps frame step, prompt and reply length) with the published OVBench system message, the
# memory the checkpoint records. Set the OVBENCH_*_ROOT variables (see run_ovbench.sh).
#   PRETRAINED=OpenGVLab/VideoChat-Online-4B GPUS=8 bash lmms-eval-ovbench/scripts/eval_videochat_online.sh
# PRESET (published or project), FPS and MEMORY change what `videochat-online eval --preset --fps --memory` would.
args="pretrained=${PRETRAINED:-OpenGVLab/VideoChat-Online-4B},preset=${PRESET:-published},system_message=ovbench"
[ -n "${FPS:-}" ] && args+=",fps=$FPS"
[ -n "${MEMORY:-}" ] && args+=",memory=$MEMORY"
MODEL=videochat_online MODEL_ARGS="$args" exec bash "$(dirname "$0")/run_ovbench.sh" "$@"
