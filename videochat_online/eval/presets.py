"""Presets as data (`PRESETS`: how a benchmark's questions are put to the model) and the frame-selection rules
they use, pure functions of a video's frame rate and length and a question's time. `published` reproduces
the published evaluation and `project` is this project's own; docs/evaluation.md tabulates both.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..data.video import VideoSource, native_index
from ..memory import MemorySettings
from ..settings import SettingsError, check_positive
from .ovbench import ANSWER_SUFFIX, SYSTEM_MESSAGE, WINDOW_SUFFIX, Question, format_question


@dataclass(frozen=True)
class Preset:
    """One way of putting questions to the model: a row of `PRESETS`."""

    name: str
    stream_fps: float | None  # stream, recompute, uniform: the rate (None: the model's trained rate, else 2)
    window_fps: float | None  # window: the rate (None: as stream_fps)
    frame_step: bool  # a native frame step for the rate (the published reader) or sampling by time
    max_new_tokens: int
    ask_at_end: bool  # `Question at {end}s`, or at the file's `middle_frame_timestamp` (the published prompt)
    window_suffix: str  # after the options under the window protocol (ANSWER_SUFFIX under the others)
    window_by_seconds: bool  # window: the last `window_seconds` per question through a fresh pyramid (published),
    # or the last `window` frames of one pass (project)
    uniform_include_end: bool  # uniform: end points included (the published reader) or segment middles

    def fps(self, protocol: str, model_fps: float | None = None) -> float:
        rate = self.window_fps if protocol == "window" and self.window_fps else self.stream_fps
        return rate or model_fps or 2.0

    def question(self, q: Question, protocol: str) -> str:
        """The prompt of question `q` under `protocol`."""
        return format_question(q, time=q.end if self.ask_at_end else None,
                               suffix=self.window_suffix if protocol == "window" else ANSWER_SUFFIX)


PRESETS = {
    "published": Preset("published", stream_fps=8.0, window_fps=2.0, frame_step=True, max_new_tokens=128,
                        ask_at_end=False, window_suffix=WINDOW_SUFFIX, window_by_seconds=True,
                        uniform_include_end=True),
    "project": Preset("project", stream_fps=None, window_fps=None, frame_step=False, max_new_tokens=32,
                      ask_at_end=True, window_suffix=ANSWER_SUFFIX, window_by_seconds=False,
                      uniform_include_end=False),
}
ANSWER_BY = ("generate", "likelihood")  # how a multiple-choice question is answered
PROTOCOLS = ("stream", "window", "uniform", "recompute", "offline")  # offline: the scripted benchmarks'
PUBLISHED_WINDOW_SECONDS = 32.0
PUBLISHED_WINDOW_MAX_FRAMES = 64


@dataclass
class ProtocolConfig:
    """A protocol under a preset, with everything the preset leaves open."""

    name: str = "stream"
    preset: str = "published"
    fps: float | None = None  # None: the preset's (project: 2; `EvalRequest` passes the model's trained rate)
    # the pyramid's levels, the project window's frames (`window`), the uniform protocol's frames; the
    # protocol picks the mode (stream, recompute and the published window: pyramid)
    memory: MemorySettings = field(default_factory=MemorySettings)
    window_seconds: float | None = PUBLISHED_WINDOW_SECONDS  # window: seconds before the question
    window_max_frames: int = PUBLISHED_WINDOW_MAX_FRAMES  # published window: thinned beyond this
    batch_size: int = 8
    max_new_tokens: int | None = None  # default: the preset's (published 128, project 32)
    answer_by: str = "generate"  # or "likelihood": the most likely option reply (`ChatEngine.choose`)
    system_message: str = SYSTEM_MESSAGE

    def __post_init__(self):
        if self.name not in PROTOCOLS:
            raise SettingsError(f"--protocol {self.name}: use one of {', '.join(PROTOCOLS)}")
        if self.preset not in PRESETS:
            raise SettingsError(f"--preset {self.preset}: use one of {', '.join(PRESETS)}")
        if self.answer_by not in ANSWER_BY:
            raise SettingsError(f"--answer-by {self.answer_by}: use one of {', '.join(ANSWER_BY)}")
        if self.fps is None:
            self.fps = self.settings.fps(self.name)
        if self.max_new_tokens is None:
            self.max_new_tokens = self.settings.max_new_tokens
        check_positive(self.fps, "--fps")
        if self.preset == "published" and self.fps < 1:
            raise SettingsError(f"--fps {self.fps:g}: the published preset steps through a frame folder by "
                                "int(native fps) // int(fps) frames, which needs --fps >= 1; use --preset project")
        check_positive(self.max_new_tokens, "--max-new-tokens", integer=True)
        if self.window_seconds is not None:  # None: offline clips start at 0
            check_positive(self.window_seconds, "--window-seconds")
        check_positive(self.window_max_frames, "--window-max-frames", integer=True)
        check_positive(self.batch_size, "--batch-size", integer=True)

    @property
    def settings(self) -> Preset:
        return PRESETS[self.preset]


# Frame selection (pure functions of the video's frame rate, length and the question's time)
def published_stream_step(native_fps: float, is_folder: bool, fps: float = 8.0) -> int:
    """Native frames between two sampled ones: round(native/fps) for video files, int(native)//fps for folders."""
    if is_folder:
        return max(1, int(native_fps) // int(fps))
    return max(1, round(native_fps / fps))


def published_window_frames(end: float, native_fps: float, num_frames: int | None, is_folder: bool,
                            fps: float = 2.0, seconds: float = PUBLISHED_WINDOW_SECONDS,
                            max_frames: int = PUBLISHED_WINDOW_MAX_FRAMES) -> list[int]:
    """Native frame numbers of the published sliding window for a question asked at `end`: from the frame on screen
    at `end` back by `max(1, round(native_fps / fps))` to the window's first frame (folders: `seconds * native_fps`
    frames earlier; files: the first ending at or after `end - seconds`), in time order, thinned by linspace."""
    end_frame = native_index(end, native_fps)
    if num_frames is not None:
        end_frame = min(end_frame, num_frames - 1)
    if is_folder:
        start_frame = max(0, end_frame - int(seconds * native_fps))
    else:  # frame i lasts until (i + 1) / native_fps
        start_frame = max(0, math.ceil((end - seconds) * native_fps - 1 - 1e-6))
    step = max(1, round(native_fps / fps))
    frames = list(range(end_frame, start_frame - 1, -step))[::-1]
    if len(frames) > max_frames:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames).astype(np.int32)]
    return frames


def uniform_times(start: float, end: float, n: int, native_fps: float, include_end: bool = False) -> list[float]:
    """`n` times over [start, end], no more than the clip's native frames: end points included
    (`include_end`, the published reader) or the middles of n equal segments (the project's)."""
    n = max(1, min(n, int((end - start) * native_fps) + 1))
    if include_end:
        return [start + (end - start) * i / (n - 1) for i in range(n)] if n > 1 else [end]
    return [start + (end - start) * (i + 0.5) / n for i in range(n)]


def stream_frames(source: VideoSource, preset: Preset, fps: float, start: float = 0.0,
                  end: float | None = None) -> Iterator:
    """The frames a stream (or a recomputation) watches over [start, end] (end None: to the video's end),
    by the preset's rule: a native frame step (published) or a rate capped at the video's own (project)."""
    if preset.frame_step:
        return source.sample_every(published_stream_step(source.native_fps, source.is_folder, fps), start, end)
    return source.sample(min(fps, source.native_fps), start=start, end=end)
