"""The protocols (docs/evaluation.md, "Protocols"): how a model sees a video before each ask, under a preset. Each
is a class registered by name (`@PROTOCOLS.register`) that says which frames are encoded and which memory answers an
ask (`one_pass`: one memory along one pass over the video, `pass_frames` and `view`; else a fresh memory per ask
filled with `ask_frames`); `driver.Driver` plays a benchmark's scripts under it. A protocol of one's own is one such
class, in any module: `--protocol package.module:Class`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from ..data.video import Timeline, VideoFrame, VideoSource
from .driver import Ask, Driver, HeldWindow, OneMemory, union
from .presets import PROTOCOLS, ProtocolConfig, published_window_frames, stream_frames, uniform_times


class Protocol:
    """A protocol under one preset (`config`)."""

    name: ClassVar[str]
    sliding: ClassVar[bool] = False  # shows a window before each ask: a preset's window rate and prompt apply
    window: ClassVar[str | None] = None  # how it reads --window-seconds: "preset" (default: the preset's), "given"
    # (None unless given), or None (not at all)
    one_pass: bool = False  # one memory along one pass (else a fresh memory per ask)
    paced: ClassVar[bool] = False  # the pass is played on the wall clock (`realtime.Paced`): --speed, --buffer

    def __init__(self, config: ProtocolConfig):
        self.config, self.preset = config, config.settings
        self.memory = config.memory  # the chosen memory (--memory; the model's, else the pyramid)

    def frames(self, source: VideoSource, start: float, end: float | None) -> Iterator[VideoFrame]:
        """The stream's frames over [start, end] at the protocol's rate, by the preset's rule."""
        return stream_frames(source, self.preset, self.config.fps, start=start, end=end)

    def pass_frames(self, source: VideoSource, spans: list[tuple[float, float]]) -> Iterator[VideoFrame]:
        """One pass: the frames watched, from the start to the last ask."""
        return self.frames(source, 0.0, max((b for _, b in spans), default=0.0))

    def view(self, driver: Driver):
        """One pass: what answers an ask from the frames so far (`add(frame)`, `answer(ask)`)."""
        return OneMemory(driver)

    def ask_frames(self, source: VideoSource, ask: Ask) -> Iterator[VideoFrame]:
        """A fresh memory per ask: the frames it is shown."""
        raise NotImplementedError(f"the {self.name} protocol answers along one pass")

    def planned_encodes(self, task, native_fps: float | None = None, num_frames: int | None = None) -> int:
        """Frames sent through the vision tower for a task, from its question times alone: the same selection
        run over a `Timeline` (a video of that rate and length that decodes nothing)."""
        timeline = Timeline(native_fps or self.config.fps, num_frames, is_folder=task.folder_fps is not None)
        if self.one_pass:
            return sum(1 for _ in self.pass_frames(timeline, [(q.end, q.end) for q in task.questions]))
        return sum(1 for q in task.questions for _ in self.ask_frames(timeline, Ask(q.end, "", since=q.start)))

    def cost(self, task) -> float:
        """Work of a video, for balancing processes: frames planned at the protocol's rate."""
        return float(self.planned_encodes(task))


@PROTOCOLS.register
class Stream(Protocol):
    """the video played once; one memory answers every question at its time"""

    name, one_pass = "stream", True


@PROTOCOLS.register
class Realtime(Stream):
    """the stream played at the video's pace (--speed times faster) through a live queue: frames dropped when the
    model falls behind, each question answered from what memory holds when its answer starts"""

    name, paced = "realtime", True


@PROTOCOLS.register
class Window(Protocol):
    """only the last --window-seconds before each question (project preset: the last --window frames of one pass)"""

    name, sliding, window = "window", True, "preset"

    def __init__(self, config: ProtocolConfig):
        super().__init__(config)
        if not self.preset.window_by_seconds:  # the last `window` frames of one pass, at full resolution
            self.one_pass, self.memory = True, config.memory.replace(mode="window")
        elif not self.preset.frame_step:  # the stream read over the asks' windows, each frame encoded once
            self.one_pass = True

    def pass_frames(self, source: VideoSource, spans: list[tuple[float, float]]) -> Iterator[VideoFrame]:
        if not self.preset.window_by_seconds:
            return super().pass_frames(source, spans)
        seconds = self.config.window_seconds
        return (f for a, b in union([(a - seconds, b) for a, b in spans]) for f in self.frames(source, a, b))

    def view(self, driver: Driver):
        return HeldWindow(driver, self.config.window_seconds) if self.preset.window_by_seconds else OneMemory(driver)

    def ask_frames(self, source: VideoSource, ask: Ask) -> Iterator[VideoFrame]:
        c = self.config  # the published reader: native frames stepped back from the ask, thinned
        return source.read_native(published_window_frames(ask.time, source.native_fps, source.num_frames,
                                                          source.is_folder, c.fps, c.window_seconds,
                                                          c.window_max_frames))


@PROTOCOLS.register
class Uniform(Protocol):
    """a fresh memory per question: --uniform-frames frames spread over the question's clip"""

    name = "uniform"

    def __init__(self, config: ProtocolConfig):
        super().__init__(config)
        self.memory = config.memory.replace(mode="uniform")

    def ask_frames(self, source: VideoSource, ask: Ask) -> Iterator[VideoFrame]:
        return source.frames_at(uniform_times(ask.since or 0.0, ask.time, self.memory.uniform_frames,
                                              source.native_fps, include_end=self.preset.uniform_include_end))

    def cost(self, task) -> float:
        return float(len(task.questions))


@PROTOCOLS.register
class Recompute(Protocol):
    """a fresh memory per question over [0, its time], every frame encoded anew"""

    name = "recompute"

    def ask_frames(self, source: VideoSource, ask: Ask) -> Iterator[VideoFrame]:
        return self.frames(source, 0.0, ask.time)


@PROTOCOLS.register
class Offline(Protocol):
    """a fresh memory per ask over its own clip, from 0 (or --window-seconds before it, or a poll's question time)"""

    name, window = "offline", "given"

    def ask_frames(self, source: VideoSource, ask: Ask) -> Iterator[VideoFrame]:
        seconds = self.config.window_seconds
        start = min(ask.time, max(ask.since or 0.0, ask.time - seconds if seconds else 0.0))
        return self.frames(source, start, ask.time)


def protocol_of(config: ProtocolConfig) -> Protocol:
    """The protocol `config` names (a registered name or a `package.module:Class` path), under its settings."""
    return PROTOCOLS.get(config.name)(config)
