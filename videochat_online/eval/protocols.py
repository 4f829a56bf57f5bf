"""Running an OVBench protocol on a video: frames through the model, one prediction record per question.

The protocols and presets (which frames, which prompt) are defined in `presets.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from ..chat import ChatEngine, Reply
from ..conversation import compact_prompt
from ..data.video import FrameFolderSource, VideoSource, open_video, prefetch
from ..memory import MemoryFrame
from ..streaming import StreamingSession, TimedQuestion, answer_along
from .ovbench import ANSWER_SUFFIX, WINDOW_SUFFIX, Question, VideoTask, format_question
from .presets import ProtocolConfig, published_window_frames, stream_frames, uniform_times
from .scoring import extract_option, published_choice


# --------------------------------------------------------------------------------------------------
# Prediction records
# --------------------------------------------------------------------------------------------------
def record(q: Question, reply: Reply | None, held: Sequence[MemoryFrame], protocol: str,
           error: str | None = None) -> dict:
    """One prediction line: the question, what the model saw (frames held, exact prompt), its reply and
    the choice under both scoring rules. `prompt` writes each run of n `<IMG_CONTEXT>` as `<IMG_CONTEXT>*n`
    (`videochat_online.conversation.expand_prompt` restores it)."""
    text = None if reply is None else reply.text
    prediction = None if text is None else extract_option(text, q.candidates)
    published = None if text is None else published_choice(text)
    return {"id": q.qid, "subset": q.subset, "video": q.video, "time": q.end, "answer_type": q.answer_type,
            "sub_answer_type": q.sub_answer_type, "answer": q.answer_letter, "prediction": prediction,
            "correct": prediction == q.answer_letter, "published_choice": published,
            "published_correct": published == q.answer_letter, "reply": text, "protocol": protocol,
            "frames": [[f.index, f.timestamp, f.num_tokens] for f in held],
            "prompt": None if reply is None else compact_prompt(reply.prompt),
            "status": "failed" if error else "ok", "error": error}


# --------------------------------------------------------------------------------------------------
# Running a protocol
# --------------------------------------------------------------------------------------------------
class ProtocolRunner:
    """Answers a video's questions under one protocol; counts the vision work it does."""

    def __init__(self, engine: ChatEngine, config: ProtocolConfig):
        self.engine = engine
        self.config = config
        self.frames_encoded = 0

    def _session(self, mode: str) -> StreamingSession:
        memory = replace(self.config.memory, mode=mode).build(self.engine.config.grid_size)
        return StreamingSession(self.engine, memory, system_message=self.config.system_message)

    def question_text(self, q: Question) -> str:
        c = self.config
        if not c.published:
            return format_question(q, time=q.end)
        return format_question(q, suffix=WINDOW_SUFFIX if c.name == "window" else ANSWER_SUFFIX)

    def question_frames(self, source: VideoSource, q: Question) -> Iterator:
        """The frames a per-question protocol (window, uniform) shows for `q`."""
        c = self.config
        if c.name == "window":
            return source.read_native(published_window_frames(
                q.end, source.native_fps, source.num_frames, isinstance(source, FrameFolderSource), c.fps,
                c.window_seconds, c.window_max_frames))
        return source.frames_at(uniform_times(q.start, q.end, c.memory.uniform_frames, source.native_fps,
                                              include_end=c.published))

    def answer_video(self, task: VideoTask, questions: Sequence[Question]) -> Iterator[dict]:
        """Prediction records for `questions` (a subset of the task's), in time order.

        Raises InputError when the video cannot be read; records already yielded stand.
        """
        c = self.config
        source = open_video(task.path, folder_fps=task.folder_fps)
        questions = sorted(questions, key=lambda q: (q.end, q.qid))
        if c.name == "stream" or (c.name == "window" and not c.published):  # one pass over the video
            session = self._session("pyramid" if c.name == "stream" else "window")
            timed = [TimedQuestion(q.end, self.question_text(q), key=q) for q in questions]
            end = max(q.end for q in questions) if questions else 0.0
            try:
                for done in answer_along(session, prefetch(stream_frames(source, c, end=end)), timed,
                                         batch_size=c.batch_size, max_new_tokens=c.max_new_tokens):
                    yield record(done.question.key, done.reply, done.memory, c.name)
            finally:
                self.frames_encoded += session.frames_encoded
            return
        for q in questions:  # a fresh memory per question
            session = self._session("uniform" if c.name == "uniform" else "pyramid")
            frames = stream_frames(source, c, end=q.end) if c.name == "recompute" else self.question_frames(source, q)
            try:
                self._push_all(session, prefetch(frames))
                reply = session.ask(self.question_text(q), max_new_tokens=c.max_new_tokens)
            finally:
                self.frames_encoded += session.frames_encoded
            yield record(q, reply, session.held_frames(), c.name)

    def _push_all(self, session: StreamingSession, frames) -> None:
        batch = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.config.batch_size:
                session.push(batch)
                batch = []
        session.push(batch)


