"""A live session of the server: one `StreamingSession` (the streaming core, its memory bounded by its policy) fed
by a `FrameQueue` (frames pushed by the client, a chunked MPEG-TS stream it pushes, or a URL read by a
`LiveSource`), the questions and watch polls waiting for their stream times, and its events. Only the
`Scheduler` thread touches the model; a request only adds to a session's queues (under `lock`)."""

from __future__ import annotations

import itertools
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from ..data.live import ChunkStream, FrameQueue, LiveSource
from ..data.video import VideoFrame
from ..pump import Pending
from ..streaming import StreamingSession, Watch
from .events import EventLog, Outbox

_EPS = 1e-6
WATCH_TOKENS = 8  # a watch's poll needs a yes or a no


@dataclass
class Question:
    """A question to a session, or a watch's poll (`watch` set)."""

    text: str
    time: float | None  # stream seconds it is answered at (None: the newest frame in memory when its turn comes)
    max_tokens: int
    outbox: Outbox | None = None  # the request waiting for it: ("token", text so far) items, then ("answer", ...)
    stream: bool = False  # the request wants its tokens as they come
    watch: Watch | None = None
    id: str = field(default_factory=lambda: f"q-{uuid.uuid4().hex[:12]}")
    asked_at: float = field(default_factory=time.monotonic)
    ready_at: float | None = None  # when it could first be answered: asked, and a frame at or after its time came


@dataclass
class Reply:
    """A question being answered: its tokens come one scheduler turn at a time."""

    question: Question
    tokens: object  # the iterator of the text so far (`StreamingSession.ask_stream`)
    seen: float | None  # the stream time it answers at: the newest frame in memory when it began
    started_at: float
    turn: int  # the scheduler's turn it began in
    text: str = ""
    count: int = 0  # tokens so far
    first_token_at: float | None = None


class LiveSession:
    """One stream being watched (module docstring). `source` names it in its state: "push" or the URL read."""

    def __init__(self, streaming: StreamingSession, frames: FrameQueue, source: str, fps: float, memory: dict,
                 most_questions: int, clock=time.monotonic):
        self.id = f"s-{uuid.uuid4().hex[:12]}"
        self.streaming, self.frames, self.source, self.fps, self.memory_settings = (streaming, frames, source,
                                                                                    fps, memory)
        self.most_questions, self.clock = most_questions, clock
        self.chunks: ChunkStream | None = None  # an MPEG-TS stream the client pushes, once its first chunk came
        self.events = EventLog()
        self.lock = threading.Lock()
        self.now: deque[Question] = deque()  # questions for the newest frame, in arrival order
        self.timed = Pending(time=lambda q: q.time)  # questions and polls at a stream time, earliest first
        self.watches: dict[str, Watch] = {}
        self.held: list[VideoFrame] = []  # taken from the queue, waiting behind a question at an earlier time
        self.newest_arrival: float | None = None  # when the newest frame in memory arrived (time.monotonic())
        self.reply: Reply | None = None
        self.closing: str | None = None  # why it is being closed (set by a request, done by the scheduler)
        self.last_active = clock()
        self.source_reported = False
        self.dropped_reported, self.dropped_at = 0, -math.inf  # the frames dropped last reported, and when
        self.answered = 0
        self.state: dict = {}  # what GET /v1/sessions/{id} shows, refreshed by the scheduler
        self.refresh()

    # what a request does (under `lock`)
    def touch(self) -> None:
        self.last_active = self.clock()

    @property
    def waiting_questions(self) -> int:
        return len(self.now) + sum(1 for *_, q in self.timed.heap if q.watch is None) + \
            (self.reply is not None and self.reply.question.watch is None)

    def add_watch(self, text: str, every: float, confirm: int) -> str:
        ident = f"w-{uuid.uuid4().hex[:8]}"
        watch = Watch(text, max(every, 1.0 / self.fps), confirm)
        with self.lock:
            self.watches[ident] = watch
            self.timed.push(self._poll(watch, watch.every))
        return ident

    def _poll(self, watch: Watch, at: float) -> Question:
        return Question(watch.question, at, WATCH_TOKENS, watch=watch)

    def open_chunks(self, most_bytes: int) -> ChunkStream:
        """The MPEG-TS stream pushed chunk by chunk: its decoder starts with the first chunk."""
        if self.chunks is None:
            self.chunks = ChunkStream(most_bytes)
            decoder = LiveSource(f"session {self.id}", self.fps, self.frames.buffer, stall_seconds=None,
                                 stream=self.chunks, format="mpegts", wait_open=False)
            self.frames.close()  # the pushed images' queue is replaced by the decoder's
            self.frames = decoder
        return self.chunks

    # what the scheduler does
    def barrier(self) -> float:
        """No frame after this stream time goes into memory before the question waiting for it has begun."""
        with self.lock:
            return self.timed.next_time if self.timed else math.inf

    def take_frames(self, most: int) -> list[VideoFrame]:
        """Frames for memory now, at most `most`, those past the barrier held back."""
        if len(self.held) < most:
            self.held += self.frames.take(most - len(self.held), timeout=0)
        limit = self.barrier()
        ready = list(itertools.takewhile(lambda f: f.timestamp <= limit + _EPS, self.held[:most]))
        self.held = self.held[len(ready):]
        return ready

    def next_question(self) -> Question | None:
        """The question whose turn it is now, taken from the queues (None: none is due). A timed one is due once
        every frame up to its time is in memory (a later frame waits behind it, or the stream ended)."""
        with self.lock:
            return self.next_question_locked()

    def next_question_locked(self) -> Question | None:  # `lock` held
        if self.now:
            question = self.now.popleft()
            question.ready_at = question.asked_at
            return question
        if not self.timed:
            return None
        at = self.timed.next_time
        newest = self.streaming.last_frame[1] if self.streaming.last_frame is not None else None
        later = bool(self.held) and self.held[0].timestamp > at + _EPS
        reached = later or (newest is not None and newest >= at - _EPS)
        if not (reached or self.frames.ended):
            return None
        question = self.timed.pop()
        came = self.held[0].arrived if later else self.newest_arrival if reached else None
        question.ready_at = question.asked_at if came is None else max(question.asked_at, came)
        if question.watch is None:
            return question
        if not reached:  # the stream ended before this poll's time: no more polls
            return self.next_question_locked()
        # the next poll; one the model fell behind (a gap in the frames: some were dropped) is asked once, at the
        # latest poll time passed (as `answer_live` does)
        watch = question.watch
        latest = watch.last_poll(self.held[0].timestamp) if later else at
        if latest > at + _EPS:
            self.timed.push(self._poll(watch, latest))
            return self.next_question_locked()
        self.timed.push(self._poll(watch, at + watch.every))
        return question

    def refresh(self) -> None:
        """The state a GET shows: the source's counts, memory by level, questions waiting."""
        memory = self.streaming.memory
        levels = memory.by_level()
        source = self.frames
        with self.lock:  # requests add questions and watches meanwhile
            waiting, watches = self.waiting_questions, list(self.watches.items())
        self.state = {
            "id": self.id, "source": self.source, "fps": self.fps, "memory": self.memory_settings,
            "state": "closing" if self.closing else source.end or "live",
            "frames": {"taken": source.taken, "dropped": source.dropped, "waiting": source.waiting + len(self.held),
                       "encoded": self.streaming.frames_encoded},
            "stream_time": None if self.streaming.last_frame is None else self.streaming.last_frame[1],
            "memory_held": {"tokens": sum(f.num_tokens for level in levels for f in level),
                            "max_tokens": memory.max_tokens,
                            "levels": [{"level": k, "frames": len(level), "tokens": sum(f.num_tokens for f in level)}
                                       for k, level in enumerate(levels)]},
            "questions": {"waiting": waiting, "answered": self.answered},
            "watches": [{"id": ident, "question": w.question, "every": w.every, "confirm": w.confirm,
                         "answer": None if w.answer is None else "yes" if w.answer else "no"}
                        for ident, w in watches],
        }

    def memory_bytes(self) -> int:
        """Bytes of features held (memory, and the patch waiting for its last frame)."""
        return sum(f.grid.numel() * f.grid.element_size() for f in self.streaming.memory.frames())
