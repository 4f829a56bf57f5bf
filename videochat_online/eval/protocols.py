"""The protocols as classes: how a model sees a video before each question, under a preset (`presets.py`).

Each protocol owns its frame selection, its memory, its prompt, the vision work it plans and its cost
for balancing processes:

- `Stream`:    each video watched once; each frame through the vision tower once; each question
               answered at its time from the memory (`--memory`: the model's, else the Pyramid Memory Bank).
- `Recompute`: per question, the memory rebuilt from frame 0 (what the published code did): the same
               answers as `Stream`, at several times the vision work.
- `Window`:    the frames just before each question (the preset says which: the last seconds through
               a fresh pyramid per question, or the last frames of one pass at full resolution).
- `Uniform`:   per question, `uniform_frames` frames spread over its clip [start, end].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from ..chat import ChatEngine
from ..data.video import FrameFolderSource, VideoSource, native_index, open_video, prefetch, sample_times
from ..streaming import StreamingSession, TimedQuestion, answer_along
from .benchmarks import BENCHMARKS, Benchmark
from .ovbench import Question, VideoTask
from .presets import (
    ProtocolConfig,
    published_stream_step,
    published_window_frames,
    stream_frames,
    uniform_times,
)


class Protocol:
    """A protocol under one preset. `one_pass`: the video is watched once for all its questions (else a fresh
    memory per question, shown `question_frames`)."""

    name: ClassVar[str]
    one_pass: ClassVar[bool] = False

    def __init__(self, config: ProtocolConfig):
        self.config, self.preset = config, config.settings
        self.memory_mode = config.memory.mode  # the chosen memory (--memory; the model's, else the pyramid)

    def watched(self, source: VideoSource, end: float, start: float = 0.0) -> Iterator:
        """The frames of a pass over [start, end] at the protocol's rate, by the preset's rule."""
        return stream_frames(source, self.preset, self.config.fps, start=start, end=end)

    def question_frames(self, source: VideoSource, q: Question) -> Iterator:
        return self.watched(source, q.end)

    def watched_count(self, task: VideoTask, end: float, native: float) -> int:
        """Frames a pass from 0 to `end` encodes, from the question times alone."""
        if self.preset.frame_step:
            step = published_stream_step(native, task.folder_fps is not None, self.config.fps)
            return len(range(0, native_index(end, native) + 1, step))
        return sum(1 for _ in sample_times(min(self.config.fps, native), 0.0, end, None))

    def planned_encodes(self, task: VideoTask, native_fps: float | None = None, num_frames: int | None = None) -> int:
        """Frames sent through the vision tower for a task, from its question times alone."""
        native = native_fps or self.config.fps
        if self.one_pass:
            return self.watched_count(task, task.watch_seconds, native)
        return sum(self.question_count(task, q, native, num_frames) for q in task.questions)

    def question_count(self, task: VideoTask, q: Question, native: float, num_frames: int | None) -> int:
        return self.watched_count(task, q.end, native)

    def cost(self, task: VideoTask) -> float:
        """Work of a video, for balancing processes: frames planned at the protocol's rate."""
        return float(self.planned_encodes(task))


class Stream(Protocol):
    name, one_pass = "stream", True


class Recompute(Protocol):
    name = "recompute"


class Window(Protocol):
    name = "window"

    def __init__(self, config: ProtocolConfig):
        super().__init__(config)
        if not self.preset.window_by_seconds:  # the last `window` frames of one pass, at full resolution
            self.one_pass, self.memory_mode = True, "window"

    def question_frames(self, source: VideoSource, q: Question) -> Iterator:
        c = self.config
        return source.read_native(published_window_frames(
            q.end, source.native_fps, source.num_frames, isinstance(source, FrameFolderSource), c.fps,
            c.window_seconds, c.window_max_frames))

    def question_count(self, task: VideoTask, q: Question, native: float, num_frames: int | None) -> int:
        c = self.config
        return len(published_window_frames(q.end, native, num_frames, task.folder_fps is not None, c.fps,
                                           c.window_seconds, c.window_max_frames))


class Uniform(Protocol):
    name = "uniform"

    def __init__(self, config: ProtocolConfig):
        super().__init__(config)
        self.memory_mode = "uniform"

    def _times(self, q: Question, native: float) -> list[float]:
        return uniform_times(q.start, q.end, self.config.memory.uniform_frames, native,
                             include_end=self.preset.uniform_include_end)

    def question_frames(self, source: VideoSource, q: Question) -> Iterator:
        return source.frames_at(self._times(q, source.native_fps))

    def question_count(self, task: VideoTask, q: Question, native: float, num_frames: int | None) -> int:
        return len(self._times(q, native))

    def cost(self, task: VideoTask) -> float:
        return float(len(task.questions))


PROTOCOL_CLASSES = {p.name: p for p in (Stream, Recompute, Window, Uniform)}


def protocol_of(config: ProtocolConfig) -> Protocol:
    return PROTOCOL_CLASSES[config.name](config)


class ProtocolRunner:
    """Answers a video's questions of a benchmark under one protocol; counts the vision work it does."""

    def __init__(self, engine: ChatEngine, config: ProtocolConfig, benchmark: Benchmark = BENCHMARKS["ovbench"]):
        self.engine, self.config, self.benchmark = engine, config, benchmark
        self.protocol = protocol_of(config)
        self.frames_encoded = 0

    def question_text(self, q: Question) -> str:
        return self.benchmark.question_text(q, self.protocol.preset, self.protocol.name)

    def _session(self) -> StreamingSession:
        memory = self.config.memory.replace(mode=self.protocol.memory_mode).build(self.engine.config.grid_size)
        return StreamingSession(self.engine, memory, system_message=self.config.system_message)

    def answer_video(self, task: VideoTask, questions: Sequence[Question]) -> Iterator[dict]:
        """Prediction records for `questions` (a subset of the task's), in time order.

        Raises InputError when the video cannot be read; records already yielded stand.
        """
        c, p = self.config, self.protocol
        source = open_video(task.path, folder_fps=task.folder_fps)
        questions = sorted(questions, key=lambda q: (q.end, q.qid))
        if p.one_pass:
            session = self._session()
            timed = [TimedQuestion(q.end, self.question_text(q), key=q) for q in questions]
            end = max(q.end for q in questions) if questions else 0.0
            try:
                for done in answer_along(session, prefetch(p.watched(source, end)), timed,
                                         batch_size=c.batch_size, max_new_tokens=c.max_new_tokens):
                    yield self.benchmark.record(done.question.key, done.reply, done.memory, c.name)
            finally:
                self.frames_encoded += session.frames_encoded
            return
        for q in questions:  # a fresh memory per question
            session = self._session()
            try:
                session.push_all(prefetch(p.question_frames(source, q)), c.batch_size)
                reply = session.ask(self.question_text(q), max_new_tokens=c.max_new_tokens)
            finally:
                self.frames_encoded += session.frames_encoded
            yield self.benchmark.record(q, reply, session.held_frames(), c.name)
