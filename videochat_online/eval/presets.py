"""OVBench protocols: how a model sees a video before each question (DESIGN.md section 5).

- stream:    each video watched once; each frame through the vision tower once; each question
             answered from the Pyramid Memory Bank at its time.
- window:    the frames just before each question.
- uniform:   per question, `uniform_frames` frames spread over its clip [start, end].
- recompute: per question, the pyramid memory rebuilt from frame 0 (what the published code did);
             the same answers as `stream`, at several times the vision work.

Two presets fix the frame selection and the prompt:

`published` (the default) reproduces the published evaluation (MCG-NJU/VideoChat-Online,
`eval/evaluate_online_stream_single.py`, `eval/evaluate_online_sliding_window.py`, `shell/eval/`):
- stream/recompute: a native frame step for a rate of 8 fps: `max(1, round(native_fps / 8))` for video
  files (every 4th frame of a 30 fps file, 7.5 fps), `max(1, int(fps) // 8)` for frame folders (every
  3rd of a 30 fps TAO folder, every frame of a 1 fps AVA folder); frames numbered by their place in
  the sampled stream and stamped with their own time; replies up to 128 tokens; the question says
  `Question at {middle_frame_timestamp}s` (on AVA the absolute time) and ends with "\\nAnswer:".
- window: per question, the native frames of the last 32 seconds, stepping backwards from the frame
  at the question's time by `max(1, round(native_fps / 2))` (2 fps; that frame is always in), thinned
  to 64 with `linspace` when there are more, numbered Frame1..FrameN within the window, sent through a
  fresh Pyramid Memory Bank (the published model's chat does so); the question ends with
  "\\nOnly give the best option.".
- uniform: `uniform_frames` times spread over [start, end] end points included, so the frame at the
  question's moment is shown.
One published behaviour is not copied: there, the last question of each video saw every frame of the
clip, later than its own time. Here no protocol ever shows a frame after the question's `end`.

`project` is this project's own choice: sampling at `fps` (2) by time, replies up to 32 tokens,
`Question at {end}s`, a window of the last `window` sampled frames at full resolution, uniform
frames at segment middles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..data.video import FrameFolderSource, VideoSource, native_index, sample_times
from ..settings import MemorySettings, SettingsError, check_positive
from .ovbench import SYSTEM_MESSAGE, VideoTask

PROTOCOLS = ("stream", "window", "uniform", "recompute")
PRESETS = ("published", "project")
# The published settings (see the module docstring).
PUBLISHED_STREAM_FPS = 8.0
PUBLISHED_WINDOW_FPS = 2.0
PUBLISHED_WINDOW_SECONDS = 32.0
PUBLISHED_WINDOW_MAX_FRAMES = 64
PUBLISHED_MAX_NEW_TOKENS = 128
PROJECT_FPS = 2.0
PROJECT_MAX_NEW_TOKENS = 32


@dataclass
class ProtocolConfig:
    name: str = "stream"
    preset: str = "published"
    fps: float | None = None  # default: the preset's (published: 8 for stream, 2 for window; project: 2)
    # the pyramid's levels, the project window's frames (`window`), the uniform protocol's frames; the
    # protocol picks the mode (stream, recompute and the published window: pyramid)
    memory: MemorySettings = field(default_factory=MemorySettings)
    window_seconds: float = PUBLISHED_WINDOW_SECONDS  # published window: seconds before the question
    window_max_frames: int = PUBLISHED_WINDOW_MAX_FRAMES  # published window: thinned beyond this
    batch_size: int = 8
    max_new_tokens: int | None = None  # default: the preset's (published 128, project 32)
    system_message: str = SYSTEM_MESSAGE

    def __post_init__(self):
        if self.name not in PROTOCOLS:
            raise SettingsError(f"--protocol {self.name}: use one of {', '.join(PROTOCOLS)}")
        if self.preset not in PRESETS:
            raise SettingsError(f"--preset {self.preset}: use one of {', '.join(PRESETS)}")
        published = self.preset == "published"
        if self.fps is None:
            self.fps = (PUBLISHED_WINDOW_FPS if self.name == "window" else PUBLISHED_STREAM_FPS) if published \
                else PROJECT_FPS
        if self.max_new_tokens is None:
            self.max_new_tokens = PUBLISHED_MAX_NEW_TOKENS if published else PROJECT_MAX_NEW_TOKENS
        check_positive(self.fps, "--fps")
        check_positive(self.max_new_tokens, "--max-new-tokens", integer=True)
        check_positive(self.window_seconds, "--window-seconds")
        check_positive(self.window_max_frames, "--window-max-frames", integer=True)
        check_positive(self.batch_size, "--batch-size", integer=True)

    @property
    def published(self) -> bool:
        return self.preset == "published"


# --------------------------------------------------------------------------------------------------
# Frame selection (pure functions of the video's frame rate, length and the question's time)
# --------------------------------------------------------------------------------------------------
def published_stream_step(native_fps: float, is_folder: bool, fps: float = PUBLISHED_STREAM_FPS) -> int:
    """Native frames between two sampled ones: round(native/fps) for video files, int(native)//fps for folders."""
    if is_folder:
        return max(1, int(native_fps) // int(fps))
    return max(1, round(native_fps / fps))


def published_window_frames(end: float, native_fps: float, num_frames: int | None, is_folder: bool,
                            fps: float = PUBLISHED_WINDOW_FPS, seconds: float = PUBLISHED_WINDOW_SECONDS,
                            max_frames: int = PUBLISHED_WINDOW_MAX_FRAMES) -> list[int]:
    """Native frame numbers of the published sliding window for a question asked at `end`.

    From the frame on screen at `end` backwards by `max(1, round(native_fps / fps))` to the window's
    first frame (folders: `seconds * native_fps` frames earlier; video files: the first frame ending at
    or after `end - seconds`), in time order, thinned to `max_frames` with `linspace` when longer.
    """
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


def stream_frames(source: VideoSource, config: ProtocolConfig, start: float = 0.0,
                  end: float | None = None) -> Iterator:
    """The frames a stream (or a recomputation) watches over [start, end] (end None: to the video's end),
    by the preset's rule: a native frame step (published) or a rate capped at the video's own (project)."""
    if config.published:
        step = published_stream_step(source.native_fps, isinstance(source, FrameFolderSource), config.fps)
        return source.sample_every(step, start, end)
    return source.sample(min(config.fps, source.native_fps), start=start, end=end)


def planned_encodes(task: VideoTask, config: ProtocolConfig, native_fps: float | None = None,
                    num_frames: int | None = None) -> int:
    """Frames the protocol sends through the vision tower for a task, from its question times alone."""
    c = config
    native = native_fps or c.fps
    is_folder = task.folder_fps is not None

    def watched(end: float) -> int:
        if c.published:
            return len(range(0, native_index(end, native) + 1, published_stream_step(native, is_folder, c.fps)))
        return sum(1 for _ in sample_times(min(c.fps, native), 0.0, end, None))

    if c.name == "stream" or (c.name == "window" and not c.published):
        return watched(task.watch_seconds)
    if c.name == "recompute":
        return sum(watched(q.end) for q in task.questions)
    if c.name == "window":
        return sum(len(published_window_frames(q.end, native, num_frames, is_folder, c.fps, c.window_seconds,
                                               c.window_max_frames)) for q in task.questions)
    return sum(len(uniform_times(q.start, q.end, c.memory.uniform_frames, native, include_end=c.published))
               for q in task.questions)
