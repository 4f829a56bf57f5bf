"""The Pyramid Memory Bank (`--memory pyramid`, the default): a constant token budget over an unbounded stream.

Frame `i` enters the first level whose interval divides it, pooled to that level's grid; a full level
evicts the earlier frame of its most similar neighbouring pair, which cascades one level down (docs/design.md,
"The Pyramid Memory Bank", states the exact rules this file follows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..settings import SettingsError, show_ints
from .base import MemoryFrame, MemoryPolicy, Option, register

if TYPE_CHECKING:
    import torch

DEFAULT_CAPACITIES = (2, 2, 12)  # frames per pyramid level (the published evaluation's)
DEFAULT_INTERVALS = (8, 4, 1)  # sample interval per level: every 8th frame to level 0, other 4th to level 1, ...


def level_of(index: int, sample_intervals: Sequence[int]) -> int:
    """The pyramid level frame `index` enters: the first whose sample interval divides it (the last is 1); the
    memory bank and training's token arrangement both use this one rule."""
    return next(k for k, s in enumerate(sample_intervals) if index % s == 0)


def check_pyramid(capacities: Sequence[int], grid_sizes: Sequence[int] | None, sample_intervals: Sequence[int],
                  grid_size: int | None = None) -> tuple[int, ...] | None:
    """Check a pyramid's levels (a SettingsError names the option); returns its grid sizes: one side per level,
    >= 1, never growing, the first the model's `grid_size` when known; None gives the model's grid halved per
    level (16, 8, 4 for the published model), or None while the model's grid is unknown."""
    caps, intervals = tuple(capacities), tuple(sample_intervals)
    if not caps:
        raise SettingsError("--capacities: give at least one level, e.g. 2,2,12")
    if any(c < 0 for c in caps):
        raise SettingsError(f"--capacities {show_ints(caps)}: each level's capacity must be >= 0")
    if sum(caps) == 0:
        raise SettingsError(f"--capacities {show_ints(caps)}: at least one level must hold frames")
    if len(intervals) != len(caps):
        raise SettingsError(f"--capacities {show_ints(caps)} and --intervals {show_ints(intervals)}: give one "
                            "interval per level")
    if any(s < 1 for s in intervals):
        raise SettingsError(f"--intervals {show_ints(intervals)}: each level's sample interval must be >= 1")
    if intervals[-1] != 1:
        raise SettingsError(f"--intervals {show_ints(intervals)}: the last level's interval must be 1, so that every "
                            "frame has a level")
    halved = tuple(max(1, (grid_size or 0) >> k) for k in range(len(caps)))
    if grid_sizes is None:
        return None if grid_size is None else halved
    sizes = tuple(grid_sizes)
    if len(sizes) != len(caps):
        raise SettingsError(f"--grid-sizes {show_ints(sizes)}: give one grid size per level ({len(caps)} levels)")
    if any(g < 1 for g in sizes):
        raise SettingsError(f"--grid-sizes {show_ints(sizes)}: each grid size must be >= 1")
    if any(b > a for a, b in zip(sizes, sizes[1:])):
        raise SettingsError(f"--grid-sizes {show_ints(sizes)}: grid sizes must not grow from one level to the next")
    if grid_size is not None and sizes[0] != grid_size:
        raise SettingsError(f"--grid-sizes {show_ints(sizes)}: the first level keeps the model's full grid, "
                            f"{grid_size}; e.g. {show_ints(halved)}")
    return sizes


def most_redundant(frames: Sequence[MemoryFrame]) -> int:
    """Position of the frame to evict: the earlier frame of the first most similar neighbouring pair."""
    if len(frames) == 1:
        return 0
    import torch

    means = torch.stack([f.mean for f in frames])  # [n, C]
    similarity = torch.nn.functional.cosine_similarity(means[:-1], means[1:], dim=-1)  # [n-1]: (0,1), (1,2), ...
    return int(torch.argmax(similarity))  # argmax returns the first of equal maxima


def _check_grid(features: torch.Tensor, size: int) -> None:
    if features.dim() != 3 or features.shape[1] != size or features.shape[2] != size:
        raise ValueError(f"memory expects a feature grid [C, {size}, {size}], got {list(features.shape)}")


@register
class PyramidMemoryBank(MemoryPolicy):
    """the Pyramid Memory Bank: levels of coarser frames, a constant token budget (docs/design.md)"""

    name = "pyramid"
    options = (
        Option("capacities", DEFAULT_CAPACITIES, "pyramid: frames per level", kind="ints"),
        Option("grid_sizes", None, "pyramid: grid side per level, never growing (default: the model's, else its "
               "feature grid g, g/2, g/4)",
               kind="ints"),
        Option("intervals", DEFAULT_INTERVALS, "pyramid: frame i enters the first level whose interval divides it; "
               "the last is 1", kind="ints"),
        Option("full_cascade", False, "pyramid: evictions fall through every level (off: one level deep, as "
               "published)", kind=bool),
    )

    def __init__(self, capacities: Sequence[int], grid_sizes: Sequence[int], sample_intervals: Sequence[int],
                 full_cascade: bool = False):
        check_pyramid(capacities, grid_sizes, sample_intervals)  # SettingsError (a ValueError) naming the problem
        self.capacities = tuple(int(c) for c in capacities)
        self.grid_sizes = tuple(int(g) for g in grid_sizes)
        self.sample_intervals = tuple(int(s) for s in sample_intervals)
        self.full_cascade = full_cascade
        self.levels: list[list[MemoryFrame]] = [[] for _ in self.capacities]

    @classmethod
    def check(cls, settings, grid_size: int | None = None) -> None:
        check_pyramid(settings.capacities, settings.grid_sizes, settings.intervals, grid_size)

    @classmethod
    def from_settings(cls, settings, grid_size: int) -> PyramidMemoryBank:
        return cls(settings.capacities, check_pyramid(settings.capacities, settings.grid_sizes, settings.intervals,
                                                      grid_size), settings.intervals, settings.full_cascade)

    @classmethod
    def training_grids(cls, settings, grid_size: int, num_frames: int) -> list[int]:
        """Frame i of a clip gets the grid of the level it enters (`level_of`), as in the bank."""
        sizes = check_pyramid(settings.capacities, settings.grid_sizes, settings.intervals, grid_size)
        return [sizes[level_of(i, settings.intervals)] for i in range(num_frames)]

    @property
    def max_tokens(self) -> int:
        """The most tokens the bank ever holds: sum of capacity x grid^2 (832 with the defaults)."""
        return sum(c * g * g for c, g in zip(self.capacities, self.grid_sizes))

    @property
    def num_tokens(self) -> int:
        return sum(f.num_tokens for level in self.levels for f in level)

    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None:
        """Add frame `index` given its full-resolution grid [C, g, g] (g = grid_sizes[0])."""
        from torch.nn.functional import adaptive_avg_pool2d

        _check_grid(features, self.grid_sizes[0])
        level = level_of(index, self.sample_intervals)
        grid = adaptive_avg_pool2d(features, self.grid_sizes[level])
        self._insert(level, MemoryFrame(index, level, grid, timestamp), cascade=True)

    def _insert(self, level: int, frame: MemoryFrame, cascade: bool) -> None:
        held = self.levels[level]
        if self.capacities[level] == 0:
            return
        if len(held) >= self.capacities[level]:
            evicted = held.pop(most_redundant(held))
            if cascade and level + 1 < len(self.levels):
                size = self.grid_sizes[level + 1]
                from torch.nn.functional import interpolate

                grid = interpolate(evicted.grid[None], size=(size, size), mode="bilinear",
                                     align_corners=False)[0]  # [C, size, size]
                self._insert(level + 1, MemoryFrame(evicted.index, level + 1, grid, evicted.timestamp),
                             cascade=self.full_cascade)
        held.append(frame)

    def frames(self) -> list[MemoryFrame]:
        """Every held frame, in time order."""
        return sorted((f for level in self.levels for f in level), key=lambda f: f.index)

    def reset(self) -> None:
        self.levels = [[] for _ in self.capacities]

    def by_level(self) -> list[list[MemoryFrame]]:
        return [sorted(level, key=lambda f: f.index) for level in self.levels]


