"""Frames played at the wall clock's pace, as a live source sends them: the real-time protocol (`eval --protocol
realtime`) and benchmarks/max_fps.py (docs/evaluation.md, "Real time").

A pacer thread offers each frame to a live queue (`data.live.FrameQueue`: at most `buffer` wait, one more drops the
oldest) when its stream time comes on the wall clock, `speed` times faster than real time; the model takes what
waits, encodes it as one batch and goes back for more, so frames that arrive while it encodes or answers wait, and
drop once too many wait. An ask at stream time T is due when the clock reaches T; it is answered once the frames
sent by then are in memory (never a later one), from what memory holds when its answer starts. A model that keeps
up therefore answers exactly as under the stream protocol; one that falls behind answers later, from less.

    paced = Paced(fps=1.0, speed=4.0, buffer=16)
    for item in paced.play(frames, pending, add, flush, answer):   # as pump.play: answer(ask, before) -> items
        ...
    timer = paced.timer(ask.time)      # inside `answer`: pass it as the reply's streamer, then timer.stamp(...)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from .data.live import FrameQueue
from .data.video import VideoFrame
from .pump import Pending
from .settings import WAITING_FRAMES
from .stream_config import FRAME_BATCH

WAIT_STEP = 0.05  # seconds the model waits for a frame before it looks again at the asks due


class Pacer:
    """A thread that offers `frames` to `queue` when their stream times come on the clock, `speed` times faster than
    real time (a frame that is decoded late is offered when it is ready). `holding`: the stream time of the frame it
    waits to offer (None: none); `error`: what stopped the frames early."""

    def __init__(self, frames: Iterable[VideoFrame], queue: FrameQueue, speed: float, clock=time.monotonic):
        self.frames, self.queue, self.speed, self.clock = frames, queue, speed, clock
        self.started: float | None = None
        self.ended: float | None = None  # clock time the last frame was offered
        self.offered = 0
        self.holding: float | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._begun = threading.Event()
        self._thread = threading.Thread(target=self._offer, daemon=True, name="pacer")

    def start(self) -> None:
        """Start offering; returns once the clock has started, when the first frame is ready (a stream begins with
        its first frame) or the frames ended without one."""
        self._thread.start()
        self._begun.wait()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def now(self) -> float:
        """Stream seconds on the clock."""
        return (self.clock() - self.started) * self.speed

    def wall(self, t: float) -> float:
        """The clock time of stream time `t`."""
        return self.started + t / self.speed

    def sent_by(self, t: float) -> bool:
        """Every frame up to stream time `t` has been offered, and the clock has reached `t`."""
        holding = self.holding
        return self.now() >= t - 1e-9 and (holding is None or holding > t + 1e-9)

    def _offer(self) -> None:
        frames = iter(self.frames)
        try:
            for frame in frames:
                if self.started is None:  # stream time 0 is when the first frame is ready
                    self.started = self.clock() - frame.timestamp / self.speed
                    self._begun.set()
                self.holding = frame.timestamp
                if self._stop.wait(max(0.0, self.wall(frame.timestamp) - self.clock())):
                    return
                self.queue.put(frame)
                self.offered += 1
                self.holding = None
        except BaseException as err:  # the consumer raises it once what was offered is played
            self.error = err
        finally:
            if self.started is None:
                self.started = self.clock()
                self._begun.set()
            self.holding, self.ended = None, self.clock()
            self.queue.close()
            close = getattr(frames, "close", None)
            if close is not None:  # a prefetching reader stops too
                close()


class AnswerTimer:
    """One ask's times under real time: made when its answer starts, given to the reply as a streamer (its first
    token stamped), read by `stamp` when the reply is done."""

    def __init__(self, paced: Paced, ask_time: float):
        pacer, queue = paced.pacer, paced.queue
        self.clock, self.started = paced.clock, pacer.started
        self.asked, self.begun = paced.moment(ask_time), self.clock()
        self.answered_at = (self.begun - self.started) * pacer.speed
        self.offered, self.dropped, self.encoded = pacer.offered, queue.dropped, paced.added
        self.first: float | None = None

    def put(self, value) -> None:  # a transformers streamer: the prompt (no new token yet), then each token
        if self.first is None and getattr(value, "numel", lambda: 1)() > 0:
            self.first = self.clock()

    def end(self) -> None:
        pass

    def stamp(self, newest: float | None) -> dict:
        """The ask's record: stream times it was answered at and its newest frame, wall seconds to the first token
        and to the whole reply (a reply chosen among options: both to the choice), and the frames offered, encoded
        and dropped before it (since the video began)."""
        done = self.clock()
        first = self.first if self.first is not None else done
        return {"answered_at": round(self.answered_at, 3), "newest_frame": newest,
                "ttft": round(first - self.asked, 4), "latency": round(done - self.asked, 4),
                "offered": self.offered, "encoded": self.encoded, "dropped": self.dropped,
                "wall": round(done - self.started, 4)}


class Paced:
    """One pass of frames at the clock's pace (module docstring)."""

    def __init__(self, fps: float, speed: float, buffer: int = WAITING_FRAMES, batch: int = FRAME_BATCH,
                 duration: float | None = None, clock=time.monotonic, name: str = "the stream"):
        if not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a finite number > 0, got {speed}")
        self.fps, self.speed, self.batch, self.duration, self.clock = fps, speed, batch, duration, clock
        self.queue = FrameQueue(name, fps, buffer=buffer, stall_seconds=None, clock=clock)
        self.pacer: Pacer | None = None
        self.added = 0  # frames taken into memory

    def timer(self, ask_time: float) -> AnswerTimer:
        return AnswerTimer(self, ask_time)

    def moment(self, t: float) -> float:
        """The clock time an ask at stream time `t` is put: its time on the clock, or the stream's end for an ask
        after it (the video's `duration`; unknown: when its last frame was sent, once it was)."""
        if self.duration is not None:
            return self.pacer.wall(min(t, self.duration))
        ended = self.pacer.ended
        return self.pacer.wall(t) if ended is None else min(self.pacer.wall(t), ended)

    def play(self, frames: Iterable[VideoFrame], pending: Pending, add: Callable[[VideoFrame], None],
             flush: Callable[[], None], answer: Callable[[object, float | None], Iterable]) -> Iterator:
        """As `pump.play`, on the clock: the frames waiting are added (`add`, up to `batch` at a time) and encoded
        together (`flush`); each ask is answered (`answer(ask, frame_time or None)`, whose items are yielded; it
        encodes what was added first) once it is due and before any later frame is added. Ends when no ask is
        pending; the asks left when the frames end are answered at their moments (`moment`; `answer(ask, None)`).
        What stopped the frames early is raised once those before it are played."""
        self.pacer = pacer = Pacer(frames, self.queue, self.speed, self.clock)
        pacer.start()
        try:
            while pending:
                taken = self.queue.take(self.batch, timeout=self._wait(pending))
                for frame in taken:
                    while pending and pending.next_time < frame.timestamp:  # `answer` encodes what was added
                        yield from answer(pending.pop(), frame.timestamp)
                    add(frame)
                    self.added += 1
                if taken:
                    flush()
                while pending and pacer.sent_by(pending.next_time) and not self.queue.waiting:
                    yield from answer(pending.pop(), None)
                if self.queue.ended:
                    break
            if pacer.error is not None:
                raise pacer.error
            while pending:  # after the last frame sent: each at its moment (the pass reads up to the last ask)
                time.sleep(max(0.0, self.moment(pending.next_time) - self.clock()))
                yield from answer(pending.pop(), None)
        finally:
            pacer.stop()

    def _wait(self, pending: Pending) -> float:
        """Seconds to wait for a frame: until the next ask is due, at most `WAIT_STEP`."""
        due = self.pacer.wall(pending.next_time) - self.clock() if pending else WAIT_STEP
        return min(WAIT_STEP, max(0.0, due))
