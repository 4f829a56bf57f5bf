"""OVBench protocols: how a model sees a video before each question (DESIGN.md section 5).

- stream:    each video watched once at `fps`; each frame through the vision tower once; each
             question answered from the Pyramid Memory Bank at its time.
- window:    the same single pass, memory = the last `window` frames at full resolution.
- uniform:   per question, `uniform_frames` frames spread over its clip [start, end].
- recompute: per question, the pyramid memory rebuilt from frame 0 (what the published code did);
             the same answers as `stream`, at several times the vision work.

A frame-folder video is never sampled faster than its own frame rate (AVA folders hold 1 frame a
second: sampling them at 2 fps would only repeat frames).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..chat import ChatEngine
from ..data.video import open_video, sample_times
from ..memory import UniformMemory
from ..streaming import StreamingSession, TimedQuestion, answer_along, build_memory
from .ovbench import SYSTEM_MESSAGE, Question, VideoTask, extract_option, format_question

PROTOCOLS = ("stream", "window", "uniform", "recompute")


@dataclass
class ProtocolConfig:
    name: str = "stream"
    fps: float = 2.0
    capacities: tuple[int, ...] = (2, 2, 12)
    grid_sizes: tuple[int, ...] | None = None  # default: the model's (g, g/2, g/4)
    sample_intervals: tuple[int, ...] = (8, 4, 1)
    window: int = 32
    uniform_frames: int = 16
    batch_size: int = 8
    max_new_tokens: int = 32
    system_message: str = SYSTEM_MESSAGE

    def __post_init__(self):
        if self.name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.name!r}; use one of {', '.join(PROTOCOLS)}")


def record(q: Question, reply: str | None, protocol: str, error: str | None = None) -> dict:
    """One prediction line: the question, the model's reply, the chosen letter and whether it is right."""
    prediction = None if reply is None else extract_option(reply, q.candidates)
    return {"id": q.qid, "subset": q.subset, "video": q.video, "time": q.end, "answer_type": q.answer_type,
            "sub_answer_type": q.sub_answer_type, "answer": q.answer_letter, "prediction": prediction,
            "correct": prediction == q.answer_letter, "reply": reply, "protocol": protocol,
            "status": "failed" if error else "ok", "error": error}


def uniform_times(start: float, end: float, n: int, native_fps: float) -> list[float]:
    """Middles of `n` equal segments of [start, end], no more than the clip's native frames."""
    n = max(1, min(n, int((end - start) * native_fps) + 1))
    return [start + (end - start) * (i + 0.5) / n for i in range(n)]


class ProtocolRunner:
    """Answers a video's questions under one protocol; counts the vision work it does."""

    def __init__(self, engine: ChatEngine, config: ProtocolConfig):
        self.engine = engine
        self.config = config
        self.frames_encoded = 0

    def _session(self, mode: str) -> StreamingSession:
        c, g = self.config, self.engine.config.grid_size
        memory = (UniformMemory(c.uniform_frames) if mode == "uniform" else
                  build_memory(mode, g, capacities=c.capacities, grid_sizes=c.grid_sizes,
                               sample_intervals=c.sample_intervals, window=c.window))
        return StreamingSession(self.engine, memory, system_message=c.system_message)

    def answer_video(self, task: VideoTask, questions: Sequence[Question]) -> Iterator[dict]:
        """Prediction records for `questions` (a subset of the task's), in time order.

        Raises InputError when the video cannot be read; records already yielded stand.
        """
        c = self.config
        source = open_video(task.path, folder_fps=task.folder_fps)
        fps = min(c.fps, source.native_fps)
        questions = sorted(questions, key=lambda q: (q.end, q.qid))
        if c.name in ("stream", "window"):
            session = self._session("pyramid" if c.name == "stream" else "window")
            timed = [TimedQuestion(q.end, format_question(q), key=q) for q in questions]
            try:
                for done in answer_along(session, source.sample(fps), timed, batch_size=c.batch_size,
                                         max_new_tokens=c.max_new_tokens):
                    yield record(done.question.key, done.reply.text, c.name)
            finally:
                self.frames_encoded += session.frames_encoded
            return
        for q in questions:
            session = self._session("pyramid" if c.name == "recompute" else "uniform")
            frames = (source.sample(fps, start=0.0, end=q.end) if c.name == "recompute"
                      else source.frames_at(uniform_times(q.start, q.end, c.uniform_frames, source.native_fps)))
            try:
                self._push_all(session, frames)
                reply = session.ask(format_question(q), max_new_tokens=c.max_new_tokens)
            finally:
                self.frames_encoded += session.frames_encoded
            yield record(q, reply.text, c.name)

    def _push_all(self, session: StreamingSession, frames) -> None:
        batch = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.config.batch_size:
                session.push(batch)
                batch = []
        session.push(batch)


def planned_encodes(task: VideoTask, config: ProtocolConfig, native_fps: float | None = None) -> int:
    """Frames the protocol sends through the vision tower for a task, from its question times alone."""
    fps = config.fps if native_fps is None else min(config.fps, native_fps)
    if config.name in ("stream", "window"):
        return sum(1 for _ in sample_times(fps, 0.0, task.watch_seconds, None))
    if config.name == "recompute":
        return sum(sum(1 for _ in sample_times(fps, 0.0, q.end, None)) for q in task.questions)
    return sum(len(uniform_times(q.start, q.end, config.uniform_frames, native_fps or config.fps))
               for q in task.questions)
