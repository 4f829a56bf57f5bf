"""Streaming sessions: watch a video once, answer questions at any moment from what memory holds; nothing here
knows about a UI or a benchmark.

    session = StreamingSession(engine, engine.new_memory(MemorySettings()))  # videochat_online.memory
    session.push(frames)                  # each frame goes through the vision tower once, as one batch
    reply = session.ask("What is the man holding?")

`answer_along` plays a frame iterator with questions at given times, by `pump.play`, the loop the evaluation's
`Driver` runs too; `answer_live` does the same over a live source (data/live.py), with standing questions and
questions typed while it plays.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from .chat import ChatEngine, Reply
from .data.video import VideoFrame
from .errors import InputError
from .memory import MemoryFrame
from .model.modeling import PrefixCache
from .pump import Pending, play
from .settings import readable
from .stream_config import FRAME_BATCH


class StreamingSession:
    def __init__(self, engine: ChatEngine, memory, system_message: str | None = None, reuse_kv: bool = True,
                 static_kv: bool | None = None):
        """`reuse_kv`: keep the last prompt's KV cache and compute only what changed since; `static_kv`: hold it in
        a preallocated static cache (decoding compiled on a GPU; default: the engine's `kv_cache`)."""
        self.engine = engine
        self.memory = memory
        static = engine.kv_cache == "static" if static_kv is None else static_kv
        self.prefix_cache = PrefixCache(static=static) if reuse_kv else None
        self.system_message = engine.system_message if system_message is None else system_message
        self.history: list[tuple[str, str]] = []
        self.frames_encoded = 0  # frames through the vision tower, over the session's life
        self.last_frame: tuple[int, float] | None = None  # (index, timestamp) of the newest frame
        self.unpaired: list[VideoFrame] = []  # frames waiting for the rest of their temporal patch
        self._provisional: MemoryFrame | None = None  # the waiting frames as a patch, for the questions meanwhile

    def push(self, frames: Sequence[VideoFrame]) -> None:
        """Encode newly arrived frames as one batch and add them to memory, in order. A backbone that encodes
        frames in temporal patches (`engine.frames_per_patch`, 2 for Qwen-VL) encodes each patch once, when its
        last frame arrives; until then the frames wait here (`unpaired`)."""
        push_together([(self, frames)])

    def push_all(self, frames: Iterable[VideoFrame], batch_size: int = FRAME_BATCH) -> None:
        """Encode every frame of an iterator, in batches of `batch_size`."""
        batch: list[VideoFrame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                self.push(batch)
                batch = []
        self.push(batch)

    def add_encoded(self, frames: Sequence[VideoFrame], grids: torch.Tensor) -> None:
        """Add frames already through the vision tower (grids [P, C, g, g], one per temporal patch of
        `engine.frames_per_patch` frames) to memory, in order; for several memories fed from one encoding (the demo
        compares memories this way). A patch is held under its first frame's index, at the time the backbone gives
        it (`engine.patch_time`)."""
        self._check_order(frames)
        self._hold(frames, grids)
        self.last_frame = (frames[-1].index, frames[-1].timestamp)

    def _hold(self, frames: Sequence[VideoFrame], grids: torch.Tensor) -> None:
        group = self.engine.frames_per_patch
        if len(frames) != len(grids) * group:
            raise ValueError(f"{len(frames)} frames but {len(grids)} feature grids of {group} frames each")
        for k, grid in enumerate(grids):
            first, last = frames[k * group], frames[k * group + group - 1]
            self.memory.add(grid, first.index, self.engine.patch_time(first.timestamp, last.timestamp))

    def wait(self, frames: Sequence[VideoFrame]) -> None:
        """Frames encoded elsewhere once their patch is whole (`add_encoded`), shown to questions until then."""
        self.unpaired, self._provisional = list(frames), None

    def shown(self) -> list[MemoryFrame]:
        """What a question sees now: memory's frames, and the frames still waiting for their patch's last one,
        encoded as the model's video processor would end a video there (the last frame repeated); that provisional
        patch is kept until the next push, never stored."""
        held = self.memory.frames()
        if not self.unpaired:
            return held
        if self._provisional is None:
            pad = self.unpaired + [self.unpaired[-1]] * (self.engine.frames_per_patch - len(self.unpaired))
            grid = self.engine.encode_frames([f.image for f in pad])[0]  # [C, g, g]
            first, last = self.unpaired[0], self.unpaired[-1]
            self._provisional = MemoryFrame(first.index, 0, grid, self.engine.patch_time(first.timestamp,
                                                                                          last.timestamp))
        return [*held, self._provisional]

    def _check_order(self, frames: Sequence[VideoFrame]) -> None:
        last = self.last_frame[0] if self.last_frame is not None else None
        for frame in frames:
            if last is not None and frame.index <= last:
                raise ValueError(f"frame {frame.index} arrived after frame {last}: "
                                 "push frames in stream order (reset() starts a new stream)")
            last = frame.index

    def held_frames(self) -> list[MemoryFrame]:
        return self.shown()

    def prompt_for(self, question: str):
        """The prompt for a question now, and what fills its visual slots (the backbone's: tokens [N, C] for the
        InternVL family)."""
        return self.engine.video_prompt(self.system_message, self.history, self.shown(), question)

    def ask(self, question: str, remember: bool = False, choices: Sequence[str] | None = None,
            **generate_kwargs) -> Reply:
        """Answer from what memory holds now; `remember` keeps the exchange as history for later turns. With
        `choices`, the reply is the most likely of them (`ChatEngine.choose`) rather than a generated one. A
        question whose prompt would not fit the model's context is an InputError in one line."""
        question = readable(question)
        prompt, tokens = self.prompt_for(question)
        if choices is not None:
            reply = self.engine.choose(prompt, tokens, choices, prefix_cache=self.prefix_cache)
        else:
            reply = self.engine.generate(prompt, tokens, prefix_cache=self.prefix_cache, **generate_kwargs)
        if remember:
            self.history.append((question, reply.text))
        return reply

    def ask_stream(self, question: str, remember: bool = False, **generate_kwargs) -> Iterator[str]:
        """`ask`, the reply yielded as it grows (the text so far after each token)."""
        question = readable(question)
        prompt, tokens = self.prompt_for(question)
        text = ""
        for text in self.engine.generate_stream(prompt, tokens, prefix_cache=self.prefix_cache, **generate_kwargs):
            yield text
        if remember:
            self.history.append((question, text))

    def watch(self, question: str, every: float = 1.0, confirm: int = 3) -> Watch:
        """A standing yes/no question about this stream (`Watch`), polled by `watch.poll(time)` from this session."""
        return Watch(question, every, confirm, session=self)

    def reset(self) -> None:
        """Forget the stream and the conversation (the encode counters keep counting)."""
        self.memory.reset()
        self.unpaired, self._provisional = [], None
        self.history.clear()
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        self.last_frame = None


def push_together(pushes: Sequence[tuple[StreamingSession, Sequence[VideoFrame]]]) -> None:
    """Newly arrived frames of several sessions on one engine through the vision tower as one batch, each session's
    whole temporal patches into its memory in order (as `StreamingSession.push`, which is this for one session)."""
    plans, images = [], []
    for session, frames in pushes:
        if frames:
            session._check_order(frames)
            waiting = [*session.unpaired, *frames]
            whole = len(waiting) - len(waiting) % session.engine.frames_per_patch
            plans.append((session, frames, waiting, whole))
            images += [f.image for f in waiting[:whole]]
    if not plans:
        return
    engine = plans[0][0].engine
    grids = engine.encode_frames(images) if images else None  # [P, C, g, g]: one per patch, the sessions in turn
    at = 0
    for session, frames, waiting, whole in plans:
        patches = whole // engine.frames_per_patch
        if patches:
            session._hold(waiting[:whole], grids[at:at + patches])
            at += patches
        session.unpaired, session._provisional = waiting[whole:], None
        session.frames_encoded += len(frames)
        session.last_frame = (frames[-1].index, frames[-1].timestamp)


@dataclass
class TimedQuestion:
    time: float  # seconds; the question may see frames with timestamp <= time
    text: str
    key: object = None  # the caller's handle on the question, returned with its answer
    remember: bool = True  # with answer_along(remember=True): kept as history (a watch's polls are not)
    choices: Sequence[str] | None = None  # answered by the most likely of these replies (None: generated)
    asked_at: float | None = None  # typed: when (time.monotonic()); its latency counts from then


@dataclass
class TimedAnswer:
    question: TimedQuestion
    reply: Reply
    memory: list[MemoryFrame]  # what was held when it was answered
    seen: float | None = None  # the stream time it answers at: the newest frame in memory (None: no frame yet)
    latency: float | None = None  # live sources: seconds from the newest frame's arrival to the finished reply


class _Feed:
    """Frames on their way into a session: gathered into one batch for the vision tower (pushed at `batch_size`,
    None: when `flush` is called), the newest remembered, each shown to `on_frame`; `answer` asks with every frame
    gathered so far in memory."""

    def __init__(self, session: StreamingSession, batch_size: int | None, on_frame, remember: bool, generate_kwargs):
        self.session, self.batch_size, self.on_frame = session, batch_size, on_frame
        self.remember, self.generate_kwargs = remember, generate_kwargs
        self.batch: list[VideoFrame] = []
        self.newest: VideoFrame | None = None

    def add(self, frame: VideoFrame) -> None:
        self.batch.append(frame)
        self.newest = frame
        if self.on_frame is not None:
            self.on_frame(frame)
        if self.batch_size is not None and len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        self.session.push(self.batch)
        self.batch.clear()

    def answer(self, question: TimedQuestion) -> TimedAnswer:
        self.flush()
        reply = self.session.ask(question.text, remember=self.remember and question.remember,
                                 choices=question.choices, **self.generate_kwargs)
        newest = self.newest
        since = question.asked_at if question.asked_at is not None else None if newest is None else newest.arrived
        latency = None if since is None else time.monotonic() - since
        return TimedAnswer(question, reply, self.session.held_frames(), None if newest is None else newest.timestamp,
                           latency)


def answer_along(session: StreamingSession, frames: Iterable[VideoFrame], questions: Sequence[TimedQuestion],
                 batch_size: int = FRAME_BATCH, remember: bool = False, on_frame: Callable[[VideoFrame], None] | None = None,
                 **generate_kwargs) -> Iterator[TimedAnswer]:
    """Play `frames` through the session and answer each question at its time, in time order: frames between two
    questions are encoded in batches of up to `batch_size`; decoding stops after the last question, and questions
    later than the last frame see everything."""
    feed = _Feed(session, batch_size, on_frame, remember, generate_kwargs)
    yield from play(frames, Pending(questions), feed.add, lambda question, _: [feed.answer(question)])


def answer_live(session: StreamingSession, source, questions: Sequence[TimedQuestion] = (),
                watches: Sequence[Watch] = (), typed: queue.Queue | None = None, batch_size: int = FRAME_BATCH,
                remember: bool = False, on_frame: Callable[[VideoFrame], None] | None = None,
                on_end: Callable[[str], None] | None = None,
                on_refused: Callable[[TimedQuestion, str], None] | None = None,
                **generate_kwargs) -> Iterator[TimedAnswer]:
    """Play a live source (`data.live.LiveSource`) through the session as its frames arrive, the waiting ones
    encoded together (up to `batch_size`). Timed questions are answered as in `answer_along`; each watch is polled
    at its times as a question keyed by the `Watch` (a poll the model fell behind is asked once, at the latest
    time passed); items from `typed`, (text, time.monotonic() when typed), are asked at the newest frame (None: the
    input closed), and one the model refuses (an InputError: too long for its context) goes to `on_refused`
    instead of ending the stream. Ends when the source ends (questions still pending and typed lines until the
    input closes are answered from what was seen) or when nothing is left to answer: no pending question, no
    watch, no input; either way `on_end` gets the source's one-line summary."""
    feed, lines = _Feed(session, None, on_frame, remember, generate_kwargs), _Typed(typed)
    pending = Pending([*questions, *(w.question_at(w.every) for w in watches)])

    def answer(question: TimedQuestion, before: float | None) -> Iterator[TimedAnswer]:
        watch = question.key if isinstance(question.key, Watch) else None
        if watch is not None:  # a poll: the next one waits its turn; none after the end
            at = watch.last_poll(before)
            if at is None:
                return
            late = at > question.time + 1e-9  # the model fell behind: asked once, at the latest poll time passed
            pending.push(watch.question_at(at if late else at + watch.every))
            if late:
                return
        yield feed.answer(question)

    def typed_now(block: bool) -> Iterator[TimedAnswer]:
        for text, at in lines.take(block):
            question = TimedQuestion(0.0 if feed.newest is None else feed.newest.timestamp, text, asked_at=at)
            try:
                yield feed.answer(question)
            except InputError as err:
                if on_refused is None:
                    raise
                on_refused(question, str(err))

    def idle() -> Iterator[TimedAnswer]:  # the frames that arrived are in: encode them, answer what was typed
        feed.flush()
        yield from typed_now(block=False)

    def arrivals() -> Iterator[VideoFrame | None]:
        while not source.ended and (pending or lines.open):  # each batch taken is played whole
            yield from source.take(batch_size)
            yield None
        if on_end is not None:  # the summary comes before the questions left over are answered
            on_end(source.summary())

    yield from play(arrivals(), pending, feed.add, answer, idle, more=lambda: True)
    yield from typed_now(block=True)


class _Typed:
    """Questions typed while a stream plays: (text, time.monotonic() when typed) items, None when the input closes."""

    def __init__(self, typed: queue.Queue | None):
        self.queue, self.open = typed, typed is not None

    def take(self, block: bool) -> Iterator[tuple[str, float]]:
        while self.open:
            try:
                line = self.queue.get(block=block)
            except queue.Empty:
                return
            if line is None:
                self.open = False
            elif line[0].strip():
                yield line[0].strip(), line[1]


def yes_no(text: str) -> bool | None:
    """A reply's answer to a yes/no question: its first word, yes or no (None: neither)."""
    words = text.strip().lower().split(maxsplit=1)
    first = words[0].strip(".,!:;()\"'") if words else ""
    return True if first in ("yes", "y") else False if first in ("no", "n") else None


@dataclass
class WatchEvent:
    time: float  # the first poll that gave the new answer: when it changed
    confirmed_at: float  # the poll that confirmed it (the alert's time)
    answer: bool
    reply: str


class Watch:
    """A standing yes/no question asked every `every` seconds of stream time (the KV prefix reused between polls).
    Its answer is settled by the first `confirm` polls in a row that agree; after that, each change that holds for
    `confirm` polls in a row is an event (an alert), stamped with the poll where it began. A reply that is neither
    yes nor no counts for neither."""

    def __init__(self, question: str, every: float = 1.0, confirm: int = 3, session: StreamingSession | None = None):
        if not every > 0 or confirm < 1:
            raise ValueError(f"a watch needs every > 0 and confirm >= 1, got {every}, {confirm}")
        self.question, self.every, self.confirm, self.session = question, every, confirm, session
        self.answer: bool | None = None  # settled so far
        self.polled: float | None = None  # the stream time of the last poll
        self.run: list[tuple[float, bool]] = []  # polls in a row that differ from it
        self.events: list[WatchEvent] = []
        self.polls = 0  # replies observed
        self.settled_at: float | None = None  # the poll that settled the first answer

    def times(self, end: float, fps: float | None = None) -> list[float]:
        """The poll times up to `end`: every, 2 every, ...; with a stream of `fps` frames a second, at most one
        poll per new frame (a shorter period polls once per frame period)."""
        every = max(self.every, 1.0 / fps) if fps else self.every
        return [k * every for k in range(1, int(end / every + 1e-9) + 1)]

    def last_poll(self, before: float | None) -> float | None:
        """The last poll time before stream time `before` (None: the stream has ended, nothing more is polled)."""
        return None if before is None else self.every * math.floor((before - 1e-9) / self.every)

    def question_at(self, time: float) -> TimedQuestion:
        """A poll at `time` as a question keyed by this watch."""
        return TimedQuestion(time, self.question, key=self, remember=False)

    def poll(self, time: float, **generate_kwargs) -> WatchEvent | None:
        """Ask the bound session now (stream time `time`) and observe its reply."""
        reply = self.session.ask(self.question, **generate_kwargs)
        self.polled = time
        return self.observe(time, reply.text)

    def observe(self, time: float, reply: str) -> WatchEvent | None:
        self.polls += 1
        said = yes_no(reply)
        if said is None:
            return None
        if said == self.answer:
            self.run = []
            return None
        if self.run and self.run[-1][1] != said:
            self.run = []
        self.run.append((time, said))
        if len(self.run) < self.confirm:
            return None
        settled, self.answer, begun = self.answer is not None, said, self.run[0][0]
        self.run = []
        if not settled:  # the first settled answer is where the watch starts, not a change
            self.settled_at = time
            return None
        self.events.append(WatchEvent(begun, time, said, reply))
        return self.events[-1]
