"""Frame sampling for training videos (segment middles, the published rule, random points, or the times a
stream shows; docs/training.md), and the pyramid token arrangement: frame `i` gets the grid of the first
level whose interval divides `i`, as frames entering the memory bank do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data.video import sample_times as stream_times
from ..memory.pyramid import DEFAULT_INTERVALS, level_of


def sample_times(start: float, end: float, *, fps: float | None = None, num_frames: int | None = None,
                 min_frames: int = 1, max_frames: int = 64, mode: str = "middle",
                 rng: random.Random | None = None) -> list[float]:
    """Timestamps of the frames to show from the clip [start, end]."""
    if (fps is None) == (num_frames is None):
        raise ValueError("give exactly one of fps and num_frames")
    if mode not in ("middle", "random", "stream"):
        raise ValueError(f"mode must be middle, random or stream, got {mode!r}")
    duration = max(0.0, end - start)
    if mode == "stream":
        if fps is None:
            raise ValueError("stream sampling reads the video at a frame rate: give fps")
        times = list(stream_times(fps, start, end, None))  # the streaming reader's rule: start + k / fps
        if len(times) <= max_frames:
            return times
        return [times[round(i * (len(times) - 1) / max(1, max_frames - 1))] for i in range(max_frames)]
    n = num_frames if num_frames is not None else int(duration * fps) + 1
    n = max(min_frames, min(max_frames, n))
    segment = duration / n
    rng = rng or random.Random(0)
    offsets = [0.5] * n if mode == "middle" else [rng.random() for _ in range(n)]
    return [start + segment * (i + offsets[i]) for i in range(n)]


def pyramid_grid_sizes(num_frames: int, grid_sizes: Sequence[int] = (16, 8, 4),
                       sample_intervals: Sequence[int] = DEFAULT_INTERVALS) -> list[int]:
    """Grid side of each of `num_frames` frames under the pyramid arrangement (the memory bank's level rule)."""
    return [grid_sizes[level_of(i, sample_intervals)] for i in range(num_frames)]
