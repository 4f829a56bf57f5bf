"""Command-line options shared by `videochat-online` and `python -m videochat_online.eval`.

Every option is checked when the command line is read, before any model is loaded, and a bad value
ends the command with exit status 2 and one line naming the option (`Parser.error`, and the
`SettingsError`s of `settings.py`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .settings import (
    DEFAULT_CAPACITIES,
    DEFAULT_INTERVALS,
    MEMORY_MODES,
    MemorySettings,
    check_attention,
    check_device,
    parse_int_list,
    show_ints,
)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (`error: ...`) and exit status 2."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def add_model_args(parser: argparse.ArgumentParser, device: bool = True, default_model: str | None = None) -> None:
    parser.add_argument("--model", required=default_model is None, default=default_model,
                        help="checkpoint directory (this project's or the original InternVL layout) or a hub id"
                             + (f" (default: {default_model})" if default_model else ""))
    if device:
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"],
                        help="default: bf16 on a GPU, fp32 on the CPU")
    parser.add_argument("--attn", default=None, choices=["sdpa", "flash_attention_2", "eager"],
                        help="attention implementation (default: flash_attention_2 when installed on a GPU, else sdpa)")
    parser.add_argument("--kv-cache", default="dynamic", choices=["dynamic", "static"],
                        help="the KV cache a stream's questions reuse: static is preallocated and, on a GPU, lets "
                             "generate compile its decoding step (replies are the same)")
    parser.add_argument("--compile-vision", default=None, choices=COMPILE_MODES,
                        help="run the vision tower under torch.compile in this mode (reduce-overhead: CUDA graphs); "
                             "the first batch of each size compiles")


def add_memory_args(parser: argparse.ArgumentParser, mode: bool = True) -> None:
    """The memory options (`settings.MemorySettings`); values are checked by `memory_settings`."""
    if mode:
        parser.add_argument("--memory", default="pyramid", choices=MEMORY_MODES,
                            help="pyramid: the Pyramid Memory Bank; window: the last frames; uniform: frames spread "
                                 "over everything seen")
    parser.add_argument("--capacities", default=show_ints(DEFAULT_CAPACITIES), help="pyramid: frames per level")
    parser.add_argument("--grid-sizes", default=None,
                        help="pyramid: grid side per level, never growing (default: the model's g, g/2, g/4)")
    parser.add_argument("--intervals", default=show_ints(DEFAULT_INTERVALS),
                        help="pyramid: frame i enters the first level whose interval divides it; the last is 1")
    parser.add_argument("--window", type=int, default=32, help="window: frames held")
    parser.add_argument("--uniform-frames", type=int, default=16, help="uniform: frames shown")


def memory_settings(args: argparse.Namespace) -> MemorySettings:
    """The checked memory settings of parsed options (a SettingsError names a bad one)."""
    grid_sizes = None if args.grid_sizes is None else parse_int_list(args.grid_sizes, "--grid-sizes")
    return MemorySettings(mode=getattr(args, "memory", "pyramid"),
                          capacities=parse_int_list(args.capacities, "--capacities"), grid_sizes=grid_sizes,
                          sample_intervals=parse_int_list(args.intervals, "--intervals"), window=args.window,
                          uniform_frames=args.uniform_frames)


def model_grid_size(path_or_id: str) -> int | None:
    """The feature-grid side of a local checkpoint, read from its config alone (None for a hub id or a bad folder:
    loading reports those)."""
    root = Path(path_or_id).expanduser()
    if not (root / "config.json").is_file():
        return None
    from .errors import CheckpointError
    from .model.checkpoint import read_config

    try:
        return read_config(root)[0].grid_size
    except CheckpointError:
        return None


def check_model_args(args: argparse.Namespace, memory: MemorySettings | None = None) -> None:
    """Device and attention implementation usable here; the memory's grid sizes fit the model's grid."""
    check_device(getattr(args, "device", None))
    check_attention(args.attn)
    if memory is not None and memory.mode == "pyramid":
        grid = model_grid_size(args.model)
        if grid is not None:
            memory.pyramid_grid_sizes(grid)
