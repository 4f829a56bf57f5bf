"""The options of an OVBench evaluation (`videochat-online eval`, `python -m videochat_online.eval`).

Light to import (no torch, no model): the options are read and checked before anything is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..options import add_memory_args, add_model_args, check_model_args, memory_settings
from ..settings import check_positive
from .ovbench import KNOWN_SUBSETS, SUBSETS
from .presets import PRESETS, PROTOCOLS, ProtocolConfig


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--anno-dir", required=True, help="folder with ava.json, coin.json, hirest.json, tao.json")
    parser.add_argument("--data-root", action="append", default=[], metavar="SUBSET=DIR",
                        help="where a subset's videos or frame folders are (repeat per subset)")
    parser.add_argument("--subsets", default=",".join(SUBSETS),
                        help=f"comma-separated, of {', '.join(KNOWN_SUBSETS)} (default: OVBench's four; synth is the "
                             "synthetic benchmark of videochat_online.synthetic)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="stream")
    parser.add_argument("--preset", choices=PRESETS, default="published",
                        help="published: the published evaluation's frame selection, prompt and reply length "
                             "(README: OVBench); project: this project's own")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--fps", type=float, default=None,
                        help="sampling rate (default: published 8 for stream, 2 for window; project 2). The published "
                             "preset turns it into a native frame step")
    add_memory_args(parser, mode=False)  # the protocol picks the memory: --window is the project window's frames
    parser.add_argument("--window-seconds", type=float, default=32.0, help="published window: seconds before the question")
    parser.add_argument("--window-max-frames", type=int, default=64, help="published window: thinned beyond this")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per vision-tower batch")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: published 128, project 32")
    parser.add_argument("--max-videos", type=int, default=None, help="evaluate only the first N videos (a smoke test)")
    add_model_args(parser, device=False)  # each process uses the GPU of its local rank
    parser.add_argument("--allow-failures", action="store_true",
                        help="exit 0 even when some questions failed (they are scored wrong and listed)")


def check_eval_args(args: argparse.Namespace) -> None:
    """Every option, before anything is loaded: sets args.roots, args.subset_list and args.protocol_config."""
    args.roots = {}
    for item in args.data_root:
        subset, sep, path = item.partition("=")
        if not sep or subset not in KNOWN_SUBSETS or not path:
            raise InputError(f"--data-root {item}: write it as SUBSET=DIR with SUBSET one of {', '.join(KNOWN_SUBSETS)}")
        args.roots[subset] = path
    args.subset_list = tuple(s for s in args.subsets.split(",") if s)
    unknown = [s for s in args.subset_list if s not in KNOWN_SUBSETS]
    if unknown or not args.subset_list:
        raise InputError(f"--subsets {args.subsets}: use one or more of {', '.join(KNOWN_SUBSETS)}, comma-separated")
    if args.max_videos is not None:
        check_positive(args.max_videos, "--max-videos", integer=True)
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output-dir {out}: exists and is not a directory")
    memory = memory_settings(args)
    args.protocol_config = ProtocolConfig(
        name=args.protocol, preset=args.preset, fps=args.fps, memory=memory, window_seconds=args.window_seconds,
        window_max_frames=args.window_max_frames, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    check_model_args(args, memory)
