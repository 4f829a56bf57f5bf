"""`--memory window`: the last `window` frames at full resolution (the sliding-window baseline)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .base import MemoryFrame, MemoryPolicy, Option, register

if TYPE_CHECKING:
    import torch


@register
class SlidingWindowMemory(MemoryPolicy):
    """the last frames at full resolution"""

    name = "window"
    options = (Option("window", 32, "window: frames held", minimum=1),)
    frames_option = "window"

    def __init__(self, window: int, grid_size: int):
        self.window, self.grid_size = window, grid_size
        self._frames: deque[MemoryFrame] = deque(maxlen=window)

    @classmethod
    def from_settings(cls, settings, grid_size: int) -> SlidingWindowMemory:
        return cls(settings.window, grid_size)

    @classmethod
    def training_grids(cls, settings, grid_size: int, num_frames: int) -> list[int]:
        return [grid_size] * num_frames  # every frame it shows is at full resolution

    @property
    def max_tokens(self) -> int:
        return self.window * self.grid_size**2

    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None:
        self._frames.append(MemoryFrame(index, 0, features, timestamp))

    def frames(self) -> list[MemoryFrame]:
        return list(self._frames)

    def reset(self) -> None:
        self._frames.clear()
