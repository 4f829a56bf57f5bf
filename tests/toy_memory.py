"""A toy memory policy, written as a user adds one: this file and its `@register`, nothing else.

`toy`: every `toy_stride`-th frame (by index), the last four of them, at full resolution.
"""

from videochat_online.memory import MemoryFrame, MemoryPolicy, Option, register
from videochat_online.settings import SettingsError

KEPT = 4


@register
class StrideMemory(MemoryPolicy):
    """every n-th frame, the last four (a test policy)."""

    name = "toy"
    options = (Option("toy_stride", 2, "toy: keep every n-th frame"),)

    def __init__(self, stride: int, grid_size: int):
        self.stride, self.grid_size, self._frames = stride, grid_size, []

    @classmethod
    def check(cls, settings, grid_size=None):
        if settings.toy_stride < 1:
            raise SettingsError(f"--toy-stride {settings.toy_stride}: must be >= 1")

    @classmethod
    def from_settings(cls, settings, grid_size):
        return cls(settings.toy_stride, grid_size)

    def add(self, features, index, timestamp=None):
        if index % self.stride == 0:
            self._frames = (self._frames + [MemoryFrame(index, 0, features, timestamp)])[-KEPT:]

    def frames(self):
        return list(self._frames)

    def reset(self):
        self._frames = []

    @property
    def max_tokens(self):
        return KEPT * self.grid_size**2
