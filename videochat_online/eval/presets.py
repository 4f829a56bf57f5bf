"""Presets as data (`PRESETS`: how a benchmark's questions are put to the model) and the frame-selection rules
they use, pure functions of a video's frame rate and length and a question's time. `published` reproduces
the published OVBench evaluation, `project` is this project's own and `streaming` the scripted benchmarks' (OVO-Bench,
StreamingBench); docs/evaluation.md tabulates them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..data.video import VideoFrame, VideoSource, native_index
from ..memory import MemorySettings
from ..registry import Registry
from ..settings import WAITING_FRAMES, SettingsError, check_positive
from ..stream_config import DEFAULT_FPS, FRAME_BATCH

PROTOCOLS = Registry("protocol", "--protocol", "videochat_online.protocols",
                     builtin=("videochat_online.eval.protocols",))
DEFAULT_PROTOCOL = "stream"


@dataclass(frozen=True)
class Preset:
    """One way of putting questions to the model: a row of `PRESETS`."""

    name: str
    stream_fps: float | None  # the rate (None: the model's trained rate, else the default)
    window_fps: float | None  # a sliding window's rate (None: as stream_fps)
    frame_step: bool  # a native frame step for the rate (the published reader) or sampling by time
    max_new_tokens: int
    ask_at_end: bool  # OVBench: `Question at {end}s`, or at the file's `middle_frame_timestamp` (the published prompt)
    window_prompt: bool  # OVBench: the published sliding-window suffix after the options, under a sliding window
    window_by_seconds: bool  # window: the last `window_seconds` before each ask in a fresh memory, or the last
    # `window` frames of one pass (project)
    uniform_include_end: bool  # uniform: end points included (the published reader) or segment middles
    window_seconds: float | None  # a window of seconds: its length, unless --window-seconds says otherwise

    def fps(self, sliding: bool, model_fps: float | None = None) -> float:
        """The rate of a protocol (`sliding`: one that shows a window before each ask) for a model's trained rate."""
        return (self.window_fps if sliding and self.window_fps else self.stream_fps) or model_fps or DEFAULT_FPS


PRESETS = {
    "published": Preset("published", stream_fps=8.0, window_fps=2.0, frame_step=True, max_new_tokens=128,
                        ask_at_end=False, window_prompt=True, window_by_seconds=True, uniform_include_end=True,
                        window_seconds=32.0),
    "project": Preset("project", stream_fps=None, window_fps=None, frame_step=False, max_new_tokens=32,
                      ask_at_end=True, window_prompt=False, window_by_seconds=False, uniform_include_end=False,
                      window_seconds=None),
    "streaming": Preset("streaming", stream_fps=None, window_fps=None, frame_step=False, max_new_tokens=32,
                        ask_at_end=True, window_prompt=False, window_by_seconds=True, uniform_include_end=False,
                        window_seconds=60.0),  # StreamingBench's leaderboard setting: the last 60 s
}
DEFAULT_PRESET = "published"  # OVBench's: the published evaluation
ANSWER_BY = ("generate", "likelihood")  # how a multiple-choice question is answered
PUBLISHED_WINDOW_MAX_FRAMES = 64


@dataclass
class ProtocolConfig:
    """A protocol under a preset, with everything the preset leaves open."""

    name: str = DEFAULT_PROTOCOL
    preset: str = DEFAULT_PRESET
    fps: float | None = None  # None: the preset's (else the default; `EvalRequest` passes the model's trained rate)
    # the pyramid's levels, the project window's frames (`window`), the uniform protocol's frames; the
    # protocol picks the mode (stream, recompute and the published window: the one chosen)
    memory: MemorySettings = field(default_factory=MemorySettings)
    window_seconds: float | None = None  # a window's seconds before the ask (None: the preset's, for the protocols
    # that take a window; offline: its clips start at 0)
    window_max_frames: int = PUBLISHED_WINDOW_MAX_FRAMES  # published window: thinned beyond this
    batch_size: int = FRAME_BATCH
    max_new_tokens: int | None = None  # default: the preset's (published 128, project 32)
    answer_by: str = ANSWER_BY[0]  # or "likelihood": the most likely option reply (`ChatEngine.choose`)
    system_message: str | None = None  # None: the model's own
    speed: float | None = None  # a paced protocol: times faster than the video's own pace (None: 1)
    buffer: int | None = None  # a paced protocol: frames that may wait for the model (None: the live default)

    def __post_init__(self):
        protocol = PROTOCOLS.get(self.name)  # a SettingsError naming the known ones
        if self.preset not in PRESETS:
            raise SettingsError(f"--preset {self.preset}: use one of {', '.join(PRESETS)}")
        if self.answer_by not in ANSWER_BY:
            raise SettingsError(f"--answer-by {self.answer_by}: use one of {', '.join(ANSWER_BY)}")
        if self.fps is None:
            self.fps = self.settings.fps(protocol.sliding)
        if self.window_seconds is None and protocol.window == "preset":
            self.window_seconds = self.settings.window_seconds
        if self.max_new_tokens is None:
            self.max_new_tokens = self.settings.max_new_tokens
        check_positive(self.fps, "--fps")
        if self.settings.frame_step and self.fps < 1:
            raise SettingsError(f"--fps {self.fps:g}: the {self.preset} preset steps through a frame folder by "
                                "int(native fps) // int(fps) frames, which needs --fps >= 1; use --preset project")
        check_positive(self.max_new_tokens, "--max-new-tokens", integer=True)
        if self.window_seconds is not None:  # None: offline clips start at 0
            check_positive(self.window_seconds, "--window-seconds")
        check_positive(self.window_max_frames, "--window-max-frames", integer=True)
        check_positive(self.batch_size, "--batch-size", integer=True)
        if not protocol.paced:
            for value, flag in ((self.speed, "--speed"), (self.buffer, "--buffer")):
                if value is not None:
                    raise SettingsError(f"{flag}: only a protocol played on the clock takes it (--protocol realtime)")
            return
        self.speed = 1.0 if self.speed is None else self.speed
        self.buffer = WAITING_FRAMES if self.buffer is None else self.buffer
        check_positive(self.speed, "--speed")
        check_positive(self.buffer, "--buffer", integer=True)

    @property
    def settings(self) -> Preset:
        return PRESETS[self.preset]


# Frame selection (pure functions of the video's frame rate, length and the question's time)
def published_stream_step(native_fps: float, is_folder: bool, fps: float) -> int:
    """Native frames between two sampled ones: round(native/fps) for video files, int(native)//fps for folders."""
    if is_folder:
        return max(1, int(native_fps) // int(fps))
    return max(1, round(native_fps / fps))


def published_window_frames(end: float, native_fps: float, num_frames: int | None, is_folder: bool,
                            fps: float, seconds: float, max_frames: int) -> list[int]:
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
                  end: float | None = None) -> Iterator[VideoFrame]:
    """The frames a stream watches over [start, end] (end None: to the video's end), by the preset's rule: a native
    frame step (published), or a rate capped at the video's own, the frames at times k / rate and indexed by their
    place k in the whole stream (so a clip from `start` holds the same frames as the stream there)."""
    if preset.frame_step:
        return source.sample_every(published_stream_step(source.native_fps, source.is_folder, fps), start, end)
    return _on_grid(source, min(fps, source.native_fps), start, end)


def _on_grid(source: VideoSource, rate: float, start: float, end: float | None) -> Iterator[VideoFrame]:
    first = math.ceil(max(0.0, start) * rate - 1e-6)
    if end is not None and first / rate > end + 1e-9:
        return  # no frame of the stream falls in [start, end]
    for f in source.sample(rate, start=first / rate, end=end):
        yield VideoFrame(first + f.index, f.timestamp, f.image)
