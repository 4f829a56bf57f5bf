#!/usr/bin/env bash
# OVBench, sliding-window protocol: the frames of the last 32 seconds before each question (published preset:
# at 2 fps, at most 64, through a fresh Pyramid Memory Bank). Configuration: the environment variables of
# ovbench.sh, e.g.
#
#   MODEL=OpenGVLab/VideoChat-Online-4B ANNO_DIR=/data/ovbench COIN_ROOT=/data/coin/videos GPUS=8 \
#     bash shell/eval/online_bench_sliding_window.sh
PROTOCOL=window exec bash "$(dirname "$0")/ovbench.sh" "$@"
