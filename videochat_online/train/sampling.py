"""Frame sampling for training videos, and the pyramid token arrangement of video frames.

Sampling (`sample_times`): at `fps` (capped by `max_frames`, spread uniformly when the video is
longer) or `num_frames` uniformly; within each of the N equal segments of the clip the frame is its
middle point ("middle", the published rule) or a random point ("random", for augmentation). Mode
"stream" instead takes the frames a stream read at `fps` shows, `start + k / fps` (as
`videochat-online eval` and `StreamingSession` see a video), so that an online dialogue's turn at
time T is shown the frame at T, not one up to a second older.

Pyramid arrangement (`pyramid_grid_sizes`): frame `i` of a sampled video gets the grid of the first
level whose sample interval divides `i`, as frames entering the memory bank do (intervals 8, 4, 1:
every 8th frame 16x16 = 256 tokens, other multiples of 4 8x8 = 64, the rest 4x4 = 16).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data.video import sample_times as stream_times
from ..memory import DEFAULT_INTERVALS, level_of


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
