"""Settings a user chooses, in one place, checked once: the memory (`MemorySettings`), and the option values
the commands share (devices, attention implementations, rates).

The CLI, the OVBench evaluation, the lmms-eval model and training all build their memory from
`MemorySettings`, so the defaults, the checks and their messages exist once. Every check raises
`SettingsError` (an `InputError` and a `ValueError`) with one line naming the option, e.g.

    --capacities -1,2,12: each level's capacity must be >= 0

so that a mistake is reported when the options are read, before any model is loaded.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError

MEMORY_MODES = ("pyramid", "window", "uniform")
DEFAULT_CAPACITIES = (2, 2, 12)  # frames per pyramid level (the published evaluation's)
DEFAULT_INTERVALS = (8, 4, 1)  # sample interval per level: every 8th frame to level 0, other 4th to level 1, ...
ATTENTION = ("sdpa", "flash_attention_2", "eager")


class SettingsError(InputError, ValueError):
    """An option value that cannot be used; the message names the option and the allowed values."""


def show_ints(values: Sequence[int]) -> str:
    """(2, 2, 12) -> "2,2,12", as the options are written."""
    return ",".join(str(v) for v in values)


def parse_int_list(text: str | Sequence[int], option: str) -> tuple[int, ...]:
    """"2,2,12" (or lmms-eval's "2-2-12", where commas would split its model_args, or a sequence) -> (2, 2, 12)."""
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    separator = "-" if re.fullmatch(r"\d+(-\d+)+", text) else ","
    try:
        return tuple(int(p) for p in text.split(separator))
    except ValueError:
        raise SettingsError(f"{option} {text}: expected integers separated by commas, e.g. 2,2,12") from None


def level_of(index: int, sample_intervals: Sequence[int]) -> int:
    """The pyramid level frame `index` enters: the first whose sample interval divides it.

    Valid settings end with interval 1, so every frame has a level; training's token arrangement and
    the memory bank both use this one rule.
    """
    return next(k for k, s in enumerate(sample_intervals) if index % s == 0)


def check_intervals(sample_intervals: Sequence[int], levels: int | None = None,
                    option: str = "--intervals") -> tuple[int, ...]:
    """One sample interval >= 1 per level (`levels`, when given), the last 1 (so that every frame has a level)."""
    intervals = tuple(sample_intervals)
    if levels is not None and len(intervals) != levels:
        raise SettingsError(f"{option} {show_ints(intervals)}: give one interval per level ({levels} levels)")
    if any(s < 1 for s in intervals):
        raise SettingsError(f"{option} {show_ints(intervals)}: each level's sample interval must be >= 1")
    if intervals[-1] != 1:
        raise SettingsError(f"{option} {show_ints(intervals)}: the last level's interval must be 1, so that every "
                            "frame has a level")
    return intervals


def resolve_grid_sizes(grid_sizes: Sequence[int] | None, levels: int, grid_size: int | None = None,
                       option: str = "--grid-sizes") -> tuple[int, ...] | None:
    """One grid side per level, >= 1, never growing, the first the model's `grid_size` (when known).

    None gives the model's grid halved per level (16, 8, 4 for the published model), or None when the
    model's grid is not known yet.
    """
    if grid_sizes is None:
        return None if grid_size is None else tuple(max(1, grid_size >> k) for k in range(levels))
    sizes = tuple(grid_sizes)
    if len(sizes) != levels:
        raise SettingsError(f"{option} {show_ints(sizes)}: give one grid size per level ({levels} levels)")
    if any(g < 1 for g in sizes):
        raise SettingsError(f"{option} {show_ints(sizes)}: each grid size must be >= 1")
    if any(b > a for a, b in zip(sizes, sizes[1:])):
        raise SettingsError(f"{option} {show_ints(sizes)}: grid sizes must not grow from one level to the next")
    if grid_size is not None and sizes[0] != grid_size:
        raise SettingsError(f"{option} {show_ints(sizes)}: the first level keeps the model's full grid, {grid_size}; "
                            f"e.g. {show_ints(max(1, grid_size >> k) for k in range(levels))}")
    return sizes


def check_pyramid(capacities: Sequence[int], grid_sizes: Sequence[int] | None, sample_intervals: Sequence[int],
                  grid_size: int | None = None) -> tuple[int, ...] | None:
    """Check a pyramid's levels; returns its grid sizes (defaulted from the model's `grid_size` when None)."""
    caps = tuple(capacities)
    if not caps:
        raise SettingsError("--capacities: give at least one level, e.g. 2,2,12")
    if any(c < 0 for c in caps):
        raise SettingsError(f"--capacities {show_ints(caps)}: each level's capacity must be >= 0")
    if sum(caps) == 0:
        raise SettingsError(f"--capacities {show_ints(caps)}: at least one level must hold frames")
    if len(tuple(sample_intervals)) != len(caps):
        raise SettingsError(f"--capacities {show_ints(caps)} and --intervals {show_ints(sample_intervals)}: give one "
                            "interval per level")
    check_intervals(sample_intervals, len(caps))
    return resolve_grid_sizes(grid_sizes, len(caps), grid_size)


@dataclass(frozen=True)
class MemorySettings:
    """What the model remembers of a stream (DESIGN.md section 2).

    mode:             pyramid (the Pyramid Memory Bank), window (the last `window` frames at full
                      resolution) or uniform (`uniform_frames` frames spread over everything seen).
    capacities:       pyramid: frames each level holds.
    grid_sizes:       pyramid: grid side of each level; None: the model's grid halved per level (16, 8, 4).
    sample_intervals: pyramid: frame i enters the first level whose interval divides it; the last is 1.
    window:           window: frames held.
    uniform_frames:   uniform: frames shown.
    full_cascade:     pyramid: evictions fall through every level (off: one level deep, as published).
    """

    mode: str = "pyramid"
    capacities: tuple[int, ...] = DEFAULT_CAPACITIES
    grid_sizes: tuple[int, ...] | None = None
    sample_intervals: tuple[int, ...] = DEFAULT_INTERVALS
    window: int = 32
    uniform_frames: int = 16
    full_cascade: bool = False

    def __post_init__(self):
        if self.mode not in MEMORY_MODES:
            raise SettingsError(f"--memory {self.mode}: use one of {', '.join(MEMORY_MODES)}")
        for name in ("capacities", "sample_intervals") + (("grid_sizes",) if self.grid_sizes is not None else ()):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        check_pyramid(self.capacities, self.grid_sizes, self.sample_intervals)
        if self.window < 1:
            raise SettingsError(f"--window {self.window}: the window must hold at least 1 frame")
        if self.uniform_frames < 1:
            raise SettingsError(f"--uniform-frames {self.uniform_frames}: show at least 1 frame")

    def pyramid_grid_sizes(self, grid_size: int) -> tuple[int, ...]:
        """The pyramid's grid sizes for a model whose frames are `grid_size` x `grid_size` (checked)."""
        return check_pyramid(self.capacities, self.grid_sizes, self.sample_intervals, grid_size)

    def build(self, grid_size: int):
        """A fresh, empty memory for frames of a `grid_size` x `grid_size` feature grid."""
        from .memory import PyramidMemoryBank, SlidingWindowMemory, UniformMemory

        if self.mode == "window":
            return SlidingWindowMemory(self.window)
        if self.mode == "uniform":
            return UniformMemory(self.uniform_frames)
        return PyramidMemoryBank(self.capacities, self.pyramid_grid_sizes(grid_size), self.sample_intervals,
                                 full_cascade=self.full_cascade)


# --------------------------------------------------------------------------------------------------
# Option values the commands share
# --------------------------------------------------------------------------------------------------
def check_positive(value: float, option: str, integer: bool = False) -> float:
    """A finite number > 0 (an integer >= 1 when `integer`)."""
    if isinstance(value, float) and not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
        kind = "an integer >= 1" if integer else "a finite number > 0"
        raise SettingsError(f"{option} {value}: must be {kind}")
    return value


def check_device(device: str | None) -> str | None:
    """A device that exists here: cpu, cuda or cuda:N (N below the GPU count), mps where available."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise SettingsError(f"--device {device}: not a device; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"--device {device}: CUDA is not available on this machine; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise SettingsError(f"--device {device}: this machine has {torch.cuda.device_count()} GPUs")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise SettingsError(f"--device {device}: MPS is not available on this machine; use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise SettingsError(f"--device {device}: use cpu, cuda or cuda:N")
    return device


def check_attention(name: str | None) -> str | None:
    """An attention implementation that is installed."""
    if name is None:
        return None
    if name not in ATTENTION:
        raise SettingsError(f"--attn {name}: use one of {', '.join(ATTENTION)}")
    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise SettingsError("--attn flash_attention_2: the flash-attn package is not installed; use sdpa")
    return name
