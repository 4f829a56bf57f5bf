#!/usr/bin/env bash
# OVBench, sliding-window protocol: the last WINDOW frames (default 32, at FPS=2) at full resolution before
# each question. Configuration: the environment variables of ovbench.sh, e.g.
#
#   MODEL=OpenGVLab/VideoChat-Online-4B ANNO_DIR=/data/ovbench COIN_ROOT=/data/coin/videos GPUS=8 \
#     bash shell/eval/online_bench_sliding_window.sh
PROTOCOL=window exec bash "$(dirname "$0")/ovbench.sh" "$@"
