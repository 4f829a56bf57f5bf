"""The protocols as classes (`Stream`, `Recompute`, `Window`, `Uniform`; docs/evaluation.md): how a model sees a
video before each question, under a preset. Each owns its frame selection, its memory, the vision work it
plans and its cost for balancing processes; `ProtocolRunner` answers a video's questions under one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from ..chat import ChatEngine
from ..data.video import Timeline, VideoSource, open_video, prefetch
from ..errors import InputError
from ..streaming import StreamingSession, TimedQuestion, answer_along
from .benchmarks import BENCHMARKS, Benchmark
from .driver import Driver
from .ovbench import Question, VideoTask, option_replies
from .presets import ProtocolConfig, published_window_frames, stream_frames, uniform_times


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

    def planned_encodes(self, task: VideoTask, native_fps: float | None = None, num_frames: int | None = None) -> int:
        """Frames sent through the vision tower for a task, from its question times alone: the same selection
        run over a `Timeline` (a video of that rate and length that decodes nothing)."""
        timeline = Timeline(native_fps or self.config.fps, num_frames, is_folder=task.folder_fps is not None)
        if self.one_pass:
            return sum(1 for _ in self.watched(timeline, task.watch_seconds))
        return sum(1 for q in task.questions for _ in self.question_frames(timeline, q))

    def cost(self, task: VideoTask) -> float:
        """Work of a video, for balancing processes: frames planned at the protocol's rate."""
        return float(self.planned_encodes(task))


class Stream(Protocol):
    name, one_pass = "stream", True


class Recompute(Protocol):
    name = "recompute"


class Offline(Recompute):  # the scripted benchmarks' published way (`driver.py`): a fresh memory per ask
    name = "offline"


class Window(Protocol):
    name = "window"

    def __init__(self, config: ProtocolConfig):
        super().__init__(config)
        if not self.preset.window_by_seconds:  # the last `window` frames of one pass, at full resolution
            self.one_pass, self.memory_mode = True, "window"

    def question_frames(self, source: VideoSource, q: Question) -> Iterator:
        c = self.config
        return source.read_native(published_window_frames(q.end, source.native_fps, source.num_frames, source.is_folder,
                                                          c.fps, c.window_seconds, c.window_max_frames))


class Uniform(Protocol):
    name = "uniform"

    def __init__(self, config: ProtocolConfig):
        super().__init__(config)
        self.memory_mode = "uniform"

    def question_frames(self, source: VideoSource, q: Question) -> Iterator:
        return source.frames_at(uniform_times(q.start, q.end, self.config.memory.uniform_frames, source.native_fps,
                                              include_end=self.preset.uniform_include_end))

    def cost(self, task: VideoTask) -> float:
        return float(len(task.questions))


PROTOCOL_CLASSES = {p.name: p for p in (Stream, Recompute, Window, Uniform, Offline)}


def protocol_of(config: ProtocolConfig) -> Protocol:
    return PROTOCOL_CLASSES[config.name](config)


class ProtocolRunner:
    """Answers a video's questions of a benchmark under one protocol; counts the vision work it does."""

    def __init__(self, engine: ChatEngine, config: ProtocolConfig, benchmark: Benchmark = BENCHMARKS["ovbench"]):
        self.engine, self.config, self.benchmark = engine, config, benchmark
        self.protocol = protocol_of(config)
        self.frames_encoded = 0
        self.late_asks = 0  # asks after their video's end (scripted benchmarks), answered at its end

    def question_text(self, q: Question) -> str:
        return self.benchmark.question_text(q, self.protocol.preset, self.protocol.name)

    def choices(self, q: Question) -> list[str] | None:
        """With --answer-by likelihood, the replies a question is answered by: "(A) text", ... (else None)."""
        return option_replies(q.candidates) if self.config.answer_by == "likelihood" else None

    def _session(self) -> StreamingSession:
        memory = self.config.memory.replace(mode=self.protocol.memory_mode).build(self.engine.config.grid_size)
        return StreamingSession(self.engine, memory, system_message=self.config.system_message)

    def answer_video(self, task: VideoTask, questions: Sequence[Question]) -> Iterator[dict]:
        """Prediction records for `questions` (a subset of the task's), in time order; InputError when the video
        cannot be read (records already yielded stand)."""
        c, p = self.config, self.protocol
        if task.error:
            raise InputError(task.error)
        source = open_video(task.path, folder_fps=task.folder_fps)
        if self.benchmark.scripted:
            yield from self._scripted(source, task, {q.qid for q in questions})
            return
        questions = sorted(questions, key=lambda q: (q.end, q.qid))
        if p.one_pass:
            session = self._session()
            timed = [TimedQuestion(q.end, self.question_text(q), key=q, choices=self.choices(q)) for q in questions]
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
                reply = session.ask(self.question_text(q), choices=self.choices(q), max_new_tokens=c.max_new_tokens)
            finally:
                self.frames_encoded += session.frames_encoded
            yield self.benchmark.record(q, reply, session.held_frames(), c.name)

    def _scripted(self, source: VideoSource, task: VideoTask, todo: set[str]) -> Iterator[dict]:
        """A scripted benchmark's video: its scripts driven along the stream (`driver.py`)."""
        c = self.config
        driver = Driver(self.engine, c.name, c.fps, c.memory, c.window_seconds, c.batch_size, c.max_new_tokens,
                        c.system_message)
        scripts = self.benchmark.scripts(task, todo, c.name)
        try:
            yield from (rec for rec in driver.run(source, [s for s, _ in scripts], [span for _, span in scripts])
                        if rec["id"] in todo)
        finally:
            self.frames_encoded += driver.frames_encoded
            self.late_asks += driver.late_asks
