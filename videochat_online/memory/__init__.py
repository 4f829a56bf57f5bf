"""Visual memory for a video stream: one `MemoryPolicy` class per module, registered by name (`pyramid`,
`window`, `uniform`, `recent`), and `MemorySettings`, whose `build(grid_size)` makes a memory (docs/design.md, "Memory").
"""

from .base import POLICIES, MemoryFrame, MemoryPolicy, Option, all_options, register
from .config import MemorySettings
from .pyramid import PyramidMemoryBank
from .recent import RecentFramesMemory
from .uniform import UniformMemory
from .window import SlidingWindowMemory

__all__ = ["POLICIES", "MemoryFrame", "MemoryPolicy", "MemorySettings", "Option", "PyramidMemoryBank",
           "RecentFramesMemory", "SlidingWindowMemory", "UniformMemory", "all_options", "register"]
