"""Visual memory for a video stream: one `MemoryPolicy` class per module, registered by name (`pyramid`,
`window`, `uniform`), and `MemorySettings`, whose `build(grid_size)` makes a memory (docs/design.md, "Memory").
"""

from .base import POLICIES, MemoryFrame, MemoryPolicy, Option, all_options, register
from .config import MemorySettings
from .pyramid import PyramidMemoryBank
from .uniform import UniformMemory
from .window import SlidingWindowMemory

__all__ = ["POLICIES", "MemoryFrame", "MemoryPolicy", "MemorySettings", "Option", "PyramidMemoryBank",
           "SlidingWindowMemory", "UniformMemory", "all_options", "register"]
