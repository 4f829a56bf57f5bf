"""`--memory recent`: the last `recent_frames` frames at full resolution, the training-free recency baseline
(arXiv 2604.02317 feeds Qwen3-VL its last 4 frames and reports it above most memory systems on OVO-Bench and
StreamingBench). A window of its own size, kept apart from `window` so that both can be compared side by side."""

from __future__ import annotations

from ..settings import SettingsError
from .base import Option, register
from .window import SlidingWindowMemory


@register
class RecentFramesMemory(SlidingWindowMemory):
    """the last few frames at full resolution (the recency baseline)"""

    name = "recent"
    options = (Option("recent_frames", 4, "recent: frames held", minimum=1),)
    frames_option = None  # the baseline's own size: the demo does not match it to the pyramid's budget

    @classmethod
    def per_entry(cls, settings, frames_per_entry: int):
        """Its size is in frames: on a backbone of temporal patches it holds recent_frames / frames_per_entry."""
        if settings.recent_frames % frames_per_entry:
            raise SettingsError(f"--recent-frames {settings.recent_frames}: this backbone encodes frames in temporal "
                                f"patches of {frames_per_entry}, so memory holds whole patches; give a multiple of "
                                f"{frames_per_entry}")
        return settings.replace(recent_frames=settings.recent_frames // frames_per_entry)

    @classmethod
    def from_settings(cls, settings, grid_size: int) -> RecentFramesMemory:
        return cls(settings.recent_frames, grid_size)
