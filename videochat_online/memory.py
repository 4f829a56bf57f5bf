"""Visual memory for a video stream: what the model can see when a question comes.

`PyramidMemoryBank` keeps a constant token budget over an unbounded stream (DESIGN.md section 2):

1. Frame `i` enters the first level `k` whose `sample_intervals[k]` divides `i` (defaults 8, 4, 1:
   every 8th frame enters level 0, other multiples of 4 level 1, the rest level 2; the last interval
   is always 1). `settings.MemorySettings` holds these settings for the commands.
2. Entering level `k`, its full grid is adaptive-average-pooled to `grid_sizes[k]`.
3. Each level keeps its frames in the order they entered it. A new frame arriving at a full level
   evicts the earlier frame of the first most similar neighbouring pair (cosine similarity of the
   frames' mean features; a level of one frame evicts that frame). A frame evicted by a direct
   insertion is resized (bilinear) to the next level's grid and inserted there by the same rule;
   an eviction caused by that cascaded insertion is dropped (the cascade is one level deep, unless
   `full_cascade`). A level of capacity 0 stores nothing: a frame arriving there is dropped.
4. `frames()` is every held frame, sorted by frame index.

`SlidingWindowMemory` (the last W frames, full resolution) and `UniformMemory` (N frames spread
uniformly over everything seen) are the two baselines of the OVBench protocols.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .settings import DEFAULT_CAPACITIES, DEFAULT_INTERVALS, check_pyramid, level_of


@dataclass
class MemoryFrame:
    """One frame held in memory: its feature grid [C, h, w] at the resolution of its level."""

    index: int
    level: int
    grid: torch.Tensor
    timestamp: float | None = None
    mean: torch.Tensor = field(init=False, repr=False)  # [C] float32, the eviction rule's feature

    def __post_init__(self):
        self.mean = self.grid.float().mean(dim=(1, 2))

    @property
    def tokens(self) -> torch.Tensor:
        """[h*w, C], row-major."""
        c, h, w = self.grid.shape
        return self.grid.reshape(c, h * w).transpose(0, 1)

    @property
    def num_tokens(self) -> int:
        return self.grid.shape[1] * self.grid.shape[2]


def most_redundant(frames: Sequence[MemoryFrame]) -> int:
    """Position of the frame to evict: the earlier frame of the first most similar neighbouring pair."""
    if len(frames) == 1:
        return 0
    means = torch.stack([f.mean for f in frames])  # [n, C]
    similarity = F.cosine_similarity(means[:-1], means[1:], dim=-1)  # [n-1]: (0,1), (1,2), ...
    return int(torch.argmax(similarity))  # argmax returns the first of equal maxima


def _check_grid(features: torch.Tensor, size: int) -> None:
    if features.dim() != 3 or features.shape[1] != size or features.shape[2] != size:
        raise ValueError(f"memory expects a feature grid [C, {size}, {size}], got {list(features.shape)}")


class PyramidMemoryBank:
    """Multi-level frame memory with a constant token budget (see the module docstring)."""

    def __init__(self, capacities: Sequence[int] = DEFAULT_CAPACITIES, grid_sizes: Sequence[int] = (16, 8, 4),
                 sample_intervals: Sequence[int] = DEFAULT_INTERVALS, full_cascade: bool = False):
        check_pyramid(capacities, grid_sizes, sample_intervals)  # SettingsError (a ValueError) naming the problem
        self.capacities = tuple(int(c) for c in capacities)
        self.grid_sizes = tuple(int(g) for g in grid_sizes)
        self.sample_intervals = tuple(int(s) for s in sample_intervals)
        self.full_cascade = full_cascade
        self.levels: list[list[MemoryFrame]] = [[] for _ in self.capacities]

    @property
    def max_tokens(self) -> int:
        """The most tokens the bank ever holds: sum of capacity x grid^2 (832 with the defaults)."""
        return sum(c * g * g for c, g in zip(self.capacities, self.grid_sizes))

    @property
    def num_tokens(self) -> int:
        return sum(f.num_tokens for level in self.levels for f in level)

    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None:
        """Add frame `index` given its full-resolution grid [C, g, g] (g = grid_sizes[0])."""
        _check_grid(features, self.grid_sizes[0])
        level = level_of(index, self.sample_intervals)
        grid = F.adaptive_avg_pool2d(features, self.grid_sizes[level])
        self._insert(level, MemoryFrame(index, level, grid, timestamp), cascade=True)

    def _insert(self, level: int, frame: MemoryFrame, cascade: bool) -> None:
        held = self.levels[level]
        if self.capacities[level] == 0:
            return
        if len(held) >= self.capacities[level]:
            evicted = held.pop(most_redundant(held))
            if cascade and level + 1 < len(self.levels):
                size = self.grid_sizes[level + 1]
                grid = F.interpolate(evicted.grid[None], size=(size, size), mode="bilinear",
                                     align_corners=False)[0]  # [C, size, size]
                self._insert(level + 1, MemoryFrame(evicted.index, level + 1, grid, evicted.timestamp),
                             cascade=self.full_cascade)
        held.append(frame)

    def frames(self) -> list[MemoryFrame]:
        """Every held frame, in time order."""
        return sorted((f for level in self.levels for f in level), key=lambda f: f.index)

    def reset(self) -> None:
        self.levels = [[] for _ in self.capacities]


class SlidingWindowMemory:
    """The last `window` frames at full resolution."""

    def __init__(self, window: int = 32):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._frames: deque[MemoryFrame] = deque(maxlen=window)

    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None:
        self._frames.append(MemoryFrame(index, 0, features, timestamp))

    def frames(self) -> list[MemoryFrame]:
        return list(self._frames)

    def reset(self) -> None:
        self._frames.clear()


def uniform_positions(count: int, n: int) -> list[int]:
    """`n` positions spread over `count` items: the middle of each of n equal segments (all when n >= count)."""
    if count <= n:
        return list(range(count))
    segment = count / n
    return [int(segment / 2 + segment * i) for i in range(n)]


class UniformMemory:
    """`num_frames` frames spread uniformly over everything seen.

    Unlike the other two it keeps every frame's grid (on `storage_device`, the CPU by default), so
    its memory grows with the stream: it is the offline baseline, not a streaming memory.
    """

    def __init__(self, num_frames: int = 16, storage_device: str | torch.device = "cpu"):
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self.storage_device = torch.device(storage_device)
        self._seen: list[MemoryFrame] = []

    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None:
        self._seen.append(MemoryFrame(index, 0, features.to(self.storage_device), timestamp))

    def frames(self) -> list[MemoryFrame]:
        return [self._seen[i] for i in uniform_positions(len(self._seen), self.num_frames)]

    def reset(self) -> None:
        self._seen = []
