"""Frame sampling for training videos (segment middles, the published rule, random points, or the times a
stream shows; docs/training.md). How the sampled frames' tokens are arranged is the memory policy's
(`MemoryPolicy.training_grids`).
"""

from __future__ import annotations

import random
from ..data.video import sample_times as stream_times

MAX_FRAMES = 64  # frames sampled from a training clip at most, unless a dataset says otherwise


def sample_times(start: float, end: float, *, fps: float | None = None, num_frames: int | None = None,
                 min_frames: int = 1, max_frames: int = MAX_FRAMES, mode: str = "middle",
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
