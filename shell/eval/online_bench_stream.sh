#!/usr/bin/env bash
# OVBench, streaming protocol: each video watched once, each frame encoded once, questions answered from
# the Pyramid Memory Bank at their times. Configuration: the environment variables of ovbench.sh, e.g.
#
#   MODEL=OpenGVLab/VideoChat-Online-4B ANNO_DIR=/data/ovbench COIN_ROOT=/data/coin/videos GPUS=8 \
#     bash shell/eval/online_bench_stream.sh
PROTOCOL=stream exec bash "$(dirname "$0")/ovbench.sh" "$@"
