"""A video or a camera played as a live stream, for interactive front ends (the gradio demo); nothing here
knows about gradio. Frames enter memory as the playhead passes them, and questions are answered at the
playhead (docs/streaming.md):

    live = LiveStream(engine, MemorySettings(), fps=2)
    live.open(open_video("cooking.mp4"))      # or live.open_live(open_live(url, fps=2)): a network stream
                                               # or live.open_camera() and live.push_camera(image) per frame
    live.tick()                                # call often: encodes the frames the playhead has passed
    for text in live.ask("What is he holding?"):
        ...                                    # the reply so far

Three parts: a `Playhead` (stream time on a clock that pauses), a `Fanout` (every frame encoded once into
every memory policy, so that switching `live.mode` shows at once what another memory would hold and answer,
with the thumbnails its view draws) and the `LiveStream` that plays a source through them. Each call changes
the stream as one step under the stream's lock (a timer's ticks, a question and a button come from several
threads); the model's lock is shared by every stream, and `tick(wait=False)` leaves frames pending rather
than wait for an answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .chat import ChatEngine
from .data.video import VideoFrame, VideoSource
from .memory import POLICIES, MemorySettings
from .settings import check_question
from .stream_config import DEFAULT_FPS
from .streaming import StreamingSession, Watch, WatchEvent

THUMBNAIL = 96  # pixels, the longer side


@dataclass
class HeldFrame:
    """One frame a memory holds, for display."""

    index: int
    time: float
    level: int
    tokens: int
    thumbnail: Image.Image


@dataclass
class MemoryView:
    mode: str
    levels: list[list[HeldFrame]]  # by level (one level for window and uniform), each in time order
    tokens: int  # held now
    cap: int  # the most this memory shows the model


@dataclass
class Answer:
    time: float  # stream time when asked
    question: str
    text: str = ""


class Playhead:
    """Stream seconds on a clock: 0 at `start()`, held while paused."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.started_at = 0.0  # clock time of stream time 0 (moved forward by pauses)
        self.paused_at: float | None = None

    def start(self) -> None:
        self.started_at, self.paused_at = self.clock(), None

    def pause(self) -> None:
        if self.paused_at is None:
            self.paused_at = self.clock()

    def resume(self) -> None:
        if self.paused_at is not None:
            self.started_at += self.clock() - self.paused_at
            self.paused_at = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def now(self) -> float:
        return (self.paused_at if self.paused_at is not None else self.clock()) - self.started_at


class Fanout:
    """Every frame through the vision tower once and into a session per memory policy (one conversation, whichever
    memory answers), with a thumbnail of each frame some memory holds, for `view`."""

    def __init__(self, engine: ChatEngine, settings: MemorySettings, lock: threading.Lock):
        self.engine, self.lock = engine, lock
        self.sessions = {mode: StreamingSession(engine, engine.new_memory(settings.replace(mode=mode)))
                         for mode in POLICIES}
        history: list[tuple[str, str]] = []
        for session in self.sessions.values():
            session.history = history
        self.thumbnails: dict[int, Image.Image] = {}
        self.frames_encoded = 0
        self.latest: np.ndarray | None = None  # the newest frame encoded
        self.waiting: list[VideoFrame] = []  # frames waiting for the rest of their temporal patch

    def reset(self) -> None:
        for session in self.sessions.values():
            session.reset()
        self.thumbnails.clear()
        self.frames_encoded, self.latest, self.waiting = 0, None, []

    def add(self, frames: list[VideoFrame], wait: bool = True) -> bool:
        """Encode frames and put them into every memory; False (nothing done) when the model is busy and
        `wait` is off."""
        if not self.lock.acquire(blocking=wait):
            return False
        try:  # the memories change only under the model's lock, so an answer or a poll never sees them change
            waiting = [*self.waiting, *frames]  # whole temporal patches are encoded, the rest waits
            whole = len(waiting) - len(waiting) % self.engine.frames_per_patch
            grids = self.engine.encode_frames([f.image for f in waiting[:whole]]) if whole else None  # [P, C, g, g]
            for session in self.sessions.values():  # once for every memory
                if whole:
                    session.add_encoded(waiting[:whole], grids)
                session.wait(waiting[whole:])
            self.waiting = waiting[whole:]
        finally:
            self.lock.release()
        self.frames_encoded += len(frames)
        for f in frames:
            thumbnail = Image.fromarray(f.image)
            thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
            self.thumbnails[f.index] = thumbnail
        self.latest = frames[-1].image
        kept = {m.index for s in self.sessions.values() for m in s.memory.kept()}  # uniform: every frame seen
        for index in [i for i in self.thumbnails if i not in kept]:
            del self.thumbnails[index]
        return True

    def view(self, mode: str) -> MemoryView:
        """What one memory holds now, grouped by level."""
        memory = self.sessions[mode].memory
        grouped = [[HeldFrame(f.index, f.timestamp or 0.0, f.level, f.num_tokens, self.thumbnails[f.index])
                    for f in level] for level in memory.by_level()]
        return MemoryView(mode, grouped, sum(f.tokens for level in grouped for f in level), memory.max_tokens)


class LiveStream:
    def __init__(self, engine: ChatEngine, settings: MemorySettings, fps: float = DEFAULT_FPS,
                 clock: Callable[[], float] = time.monotonic, lock: threading.Lock | None = None,
                 max_new_tokens: int = 128):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps, self.max_new_tokens = fps, max_new_tokens
        self.lock = lock or threading.Lock()  # one model, possibly several streams: one forward at a time
        self._state = threading.RLock()  # this stream: one change at a time
        # this stream's answer or poll in progress (a reset lets it finish first); taken before `_state`, never
        # after, and a plain lock: an answer's generator may be resumed on another thread
        self._answering = threading.Lock()
        self.clock = Playhead(clock)
        self.memories = Fanout(engine, settings, self.lock)
        self.sessions = self.memories.sessions
        self.mode = settings.mode
        self.answers: list[Answer] = []
        self.watching: Watch | None = None  # a standing yes/no question, polled as the stream plays
        self.alerts: list[WatchEvent] = []
        self._close()

    @property
    def frames_encoded(self) -> int:
        return self.memories.frames_encoded

    @property
    def latest(self) -> np.ndarray | None:
        return self.memories.latest

    # the stream
    def _close(self) -> None:
        self._frames: Iterator[VideoFrame] | None = None
        self.source = None  # a live source (data.live.LiveSource) being played
        self._live_until: float | None = None
        self._next: VideoFrame | None = None
        self._pending: list[VideoFrame] = []  # passed by the playhead, not yet encoded (the model was busy)
        self.camera = False
        self.playing = False
        self.finished = False
        self.playhead = 0.0  # stream seconds
        self.clock.paused_at = None

    def reset(self) -> None:
        """Stop the stream and forget it: memories, conversation and answers. An answer in progress is
        let finish first, so that it does not join the conversation after it was forgotten (another stream's
        work on the shared model is not waited for)."""
        with self._answering, self._state:
            if self.source is not None:
                self.source.close()
            self.memories.reset()
            self.answers.clear()
            self.watching, self.alerts = None, []
            self._close()

    def open(self, source: VideoSource, duration: float | None = None) -> None:
        """Start playing a video from its beginning (what was watched before is forgotten)."""
        self.reset()
        with self._state:
            self._frames = iter(source.sample(self.fps, end=duration))
            self._next = next(self._frames, None)
            self.playing = True
            self.clock.start()

    def open_live(self, source, duration: float | None = None) -> None:
        """Play a live source (`data.live.LiveSource`, already reading): each tick takes the frames that arrived;
        while paused or busy they wait in the source, which drops the oldest beyond its buffer and counts them.
        `duration`: stream seconds after which it is closed (the uniform memory grows with the stream)."""
        self.reset()
        with self._state:
            self.source, self._live_until = source, duration
            self.playing = True

    def open_camera(self) -> None:
        """Start a live camera stream: frames come from `push_camera`, stamped with the time since now."""
        self.reset()
        with self._state:
            self.camera = self.playing = True
            self.clock.start()

    def pause(self) -> None:
        """Hold the playhead where it is now (not where the last tick left it)."""
        with self._state:
            if self.playing and not self.clock.paused:
                self.clock.pause()
                self.tick(wait=False, poll=False)

    def resume(self) -> None:
        with self._state:
            self.clock.resume()

    @property
    def paused(self) -> bool:
        return self.clock.paused

    def tick(self, wait: bool = True, poll: bool = True) -> float:
        """Advance the playhead to now and encode, as one batch, every frame it has passed; returns it.
        With `wait=False` a busy model (an answer in progress) is not waited for: the passed frames stay
        pending and the playhead still moves. `poll`: a watch due is polled here too (off: by `poll`, so that a
        tick never generates)."""
        with self._state:
            playhead = self._advance(wait)
        if poll:
            self.poll(wait)
        return playhead

    def _advance(self, wait: bool) -> float:
        if not self.playing or self.camera:
            return self.playhead
        if self.source is not None:
            return self._advance_live(wait)
        # the file's frames the playhead has passed
        now = self.clock.now()
        while self._next is not None and self._next.timestamp <= now:
            self._pending.append(self._next)
            self._next = next(self._frames, None)
        if self._pending and self.memories.add(self._pending, wait):
            self._pending = []
        if self._next is None and not self._pending:
            self.finished, self.playing = True, False
            last = self.sessions[self.mode].last_frame
            self.playhead = last[1] if last is not None else self.playhead
        else:
            self.playhead = now
        return self.playhead

    def _advance_live(self, wait: bool) -> float:
        if not self.paused and not self._pending:
            self._pending = self.source.take(self.source.buffer, timeout=0)
        if self._pending and self.memories.add(self._pending, wait):
            self._pending = []
        last = self.sessions[self.mode].last_frame
        self.playhead = last[1] if last is not None else 0.0
        if self._live_until is not None and self.playhead >= self._live_until:
            self.source.close()
            self.source.take(self.source.buffer, timeout=0)  # what waits beyond the limit is not watched
        if self.source.ended and not self._pending:
            self.finished, self.playing = True, False
        return self.playhead

    def push_camera(self, image: np.ndarray) -> bool:
        """A camera frame arriving now; taken when it is at least 1/fps after the last one taken."""
        with self._state:
            if not (self.camera and self.playing) or self.paused:
                return False
            now = self.clock.now()
            last = self.sessions[self.mode].last_frame
            if last is not None and now - last[1] < 1.0 / self.fps:
                return False
            self.memories.add([VideoFrame(0 if last is None else last[0] + 1, now, image)])
            self.playhead = now
        self.poll()
        return True

    def watch(self, question: str | None, every: float = 1.0, confirm: int = 3) -> None:
        """Start watching for a change in a standing yes/no question (None or empty: stop): it is asked every
        `every` seconds of stream time from the current memory, and each confirmed change joins `alerts`."""
        with self._state:
            question = check_question(question, "the watch", most=None) if (question or "").strip() else None
            self.watching = self.sessions[self.mode].watch(question, every, confirm) if question else None
            self.alerts = []

    def poll(self, wait: bool = True) -> None:
        """Poll the watch when a poll time has passed and every frame up to it is in memory (a busy model with
        `wait` off: a later call polls). The stream's state is not held while the model answers, so its ticks go
        on; a reset waits for the poll, as for an answer."""
        with self._state:
            w = self.watching
            last = self.sessions[self.mode].last_frame
            due = w.polled + w.every if w is not None and w.polled is not None else getattr(w, "every", 0.0)
            if w is None or last is None or self._pending or last[1] < due - 1e-6:
                return
        if not self._answering.acquire(blocking=wait):
            return
        try:
            if not self.lock.acquire(blocking=wait):
                return
            try:
                event = w.poll(last[1], max_new_tokens=8)
            finally:
                self.lock.release()
        finally:
            self._answering.release()
        with self._state:
            if event is not None and self.watching is w:
                self.alerts.append(event)

    # questions and memory
    def ask(self, question: str) -> Iterator[str]:
        """Answer at the playhead from the current memory, the reply growing token by token; the exchange
        joins the conversation (`answers[-1]` holds its stream time and the reply)."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        with self._answering:
            with self._state:
                answer = Answer(self.tick(poll=False), question)
                self.answers.append(answer)
            with self.lock:
                for text in self.sessions[self.mode].ask_stream(question, remember=True,
                                                                max_new_tokens=self.max_new_tokens):
                    answer.text = text
                    yield text

    def memory_view(self, mode: str | None = None) -> MemoryView:
        """What a memory (the current one by default) holds now, grouped by level."""
        with self._state:
            return self.memories.view(mode or self.mode)
