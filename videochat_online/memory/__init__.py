"""Visual memory for a video stream: what the model can see when a question comes.

Each policy is one module and one `MemoryPolicy` class, registered by name (`base.register`):
`pyramid` (the Pyramid Memory Bank, constant tokens), `window` (the last frames) and `uniform`
(frames spread over everything seen). `MemorySettings` (`config.py`) holds the chosen mode and every
policy's options; `settings.build(grid_size)` makes a memory.
"""

from .base import POLICIES, MemoryFrame, MemoryPolicy, Option, all_options, register
from .config import MemorySettings
from .pyramid import (
    DEFAULT_CAPACITIES,
    DEFAULT_INTERVALS,
    PyramidMemoryBank,
    check_intervals,
    check_pyramid,
    level_of,
    most_redundant,
    resolve_grid_sizes,
)
from .uniform import UniformMemory, uniform_positions
from .window import SlidingWindowMemory

__all__ = ["POLICIES", "DEFAULT_CAPACITIES", "DEFAULT_INTERVALS", "MemoryFrame", "MemoryPolicy", "MemorySettings",
           "Option", "PyramidMemoryBank", "SlidingWindowMemory", "UniformMemory", "all_options", "check_intervals",
           "check_pyramid", "level_of", "most_redundant", "register", "resolve_grid_sizes", "uniform_positions"]
