"""`--memory uniform`: `uniform_frames` frames spread uniformly over everything seen (the offline baseline).

Unlike the others it keeps every frame's grid (on `storage_device`, the CPU by default), so its memory
grows with the stream: it is not a streaming memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import MemoryFrame, MemoryPolicy, Option, register

if TYPE_CHECKING:
    import torch


def uniform_positions(count: int, n: int) -> list[int]:
    """`n` positions spread over `count` items: the middle of each of n equal segments (all when n >= count)."""
    if count <= n:
        return list(range(count))
    segment = count / n
    return [int(segment / 2 + segment * i) for i in range(n)]


@register
class UniformMemory(MemoryPolicy):
    """frames spread over everything seen (keeps every frame: the offline baseline, not constant memory)"""

    name = "uniform"
    options = (Option("uniform_frames", 16, "uniform: frames shown", minimum=1),)
    frames_option = "uniform_frames"

    def __init__(self, num_frames: int, grid_size: int, storage_device: str | torch.device = "cpu"):
        self.num_frames, self.grid_size = num_frames, grid_size
        self.storage_device = storage_device
        self._seen: list[MemoryFrame] = []

    @classmethod
    def from_settings(cls, settings, grid_size: int) -> UniformMemory:
        return cls(settings.uniform_frames, grid_size)

    @classmethod
    def training_grids(cls, settings, grid_size: int, num_frames: int) -> list[int]:
        return [grid_size] * num_frames  # every frame it shows is at full resolution

    @property
    def max_tokens(self) -> int:
        return self.num_frames * self.grid_size**2

    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None:
        self._seen.append(MemoryFrame(index, 0, features.to(self.storage_device), timestamp))

    def frames(self) -> list[MemoryFrame]:
        return [self._seen[i] for i in uniform_positions(len(self._seen), self.num_frames)]

    def kept(self) -> list[MemoryFrame]:
        return list(self._seen)

    def reset(self) -> None:
        self._seen = []
