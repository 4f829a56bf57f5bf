"""The protocol engine: a benchmark's scripts played along a video under one protocol (docs/evaluation.md). Every
query, probe and poll of a video is answered at its time from what the protocol shows then, never from a later frame.

A script is a generator a benchmark writes for each of its questions (or for a whole video): it yields an `Ask`
(a time and a prompt) and is sent the `Answer`; it yields each prediction line (a dict) when it has one. So an
OVBench question is a script of one ask, a proactive question polls every second until the model says yes, and a
sequential one carries the earlier turns, with no protocol knowing which. The protocol (`protocols.py`) says which
frames are encoded and which memory answers each ask: one memory along one pass over the video, or a fresh one per ask.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data.video import VideoFrame, VideoSource, open_video, prefetch
from ..settings import DECODERS
from ..errors import InputError
from ..memory import MemoryFrame
from ..pump import Pending, play

if TYPE_CHECKING:  # the benchmark modules import this one: it stays light to import
    from ..chat import ChatEngine, Reply
    from ..streaming import StreamingSession


@dataclass
class Ask:
    time: float  # stream seconds: only frames up to here may be shown
    prompt: str
    since: float | None = None  # where the question's own clip starts (OVBench: its `start`; a proactive poll: the
    # question's time), for the protocols that show a clip per ask
    choices: Sequence[str] | None = None  # answered by the most likely of these replies (None: generated)


@dataclass
class Answer:
    reply: Reply
    held: list[MemoryFrame]  # what the memory showed
    time: float
    ended: bool = False  # asked after the video's last frame: no later ask can see more
    pace: dict | None = None  # the real-time protocol: when it was answered, how fast, what was dropped
    # (`realtime.AnswerTimer.stamp`)


Script = Generator  # yields Ask or a prediction line (dict), is sent an Answer after each Ask


@dataclass
class Driver:
    """Runs a benchmark's scripts over a video under a protocol; counts the frames it sends through the vision tower."""

    engine: ChatEngine
    protocol: object  # a `protocols.Protocol`
    frames_encoded: int = 0
    late_asks: int = 0  # asks after the video's end, answered at its end
    decoder: str = DECODERS[0]  # which reader decodes the videos (`data.video.open_video`)
    frames_dropped: int = 0  # the real-time protocol: frames dropped because the model fell behind

    def answer_video(self, benchmark, task, questions: Sequence) -> Iterator[dict]:
        """The prediction lines of `questions` (some of a `benchmarks.VideoTask`'s) by the benchmark's scripts;
        InputError when the video cannot be read (lines already yielded stand)."""
        if task.error:
            raise InputError(task.error)
        source = open_video(task.path, folder_fps=task.folder_fps, decoder=self.decoder)
        todo = {q.qid for q in questions}
        scripts = benchmark.scripts(task, todo, self.protocol)
        lines = self.run(source, [script for script, _ in scripts], [span for _, span in scripts])
        yield from (line for line in lines if line["id"] in todo)

    def run(self, source: VideoSource, scripts: Iterable[Script], spans: list[tuple[float, float]]) -> Iterator[dict]:
        """The prediction lines of `scripts`, in the order they are made. `spans` are the [first, last] ask times
        the scripts may use (what a pass over the video reads)."""
        pending = Pending(time=lambda item: item[0].time)  # (ask, its script)
        for script in scripts:
            yield from advance(pending, script, None)
        if not self.protocol.one_pass:
            while pending:
                ask, script = pending.pop()
                yield from advance(pending, script, self._late(source, ask, self._fresh(source, ask)))
            return
        view = self.protocol.view(self)
        frames = prefetch(self.protocol.pass_frames(source, spans), what=str(source.path))
        if self.protocol.paced:
            yield from self._paced(source, frames, pending, view)
            return

        def answer(item: tuple, before: float | None) -> Iterator[dict]:
            ask, script = item
            said = view.answer(ask)
            yield from advance(pending, script, self._late(source, ask, said) if before is None else said)

        yield from play(frames, pending, view.add, answer)

    def _paced(self, source: VideoSource, frames: Iterator[VideoFrame], pending: Pending, view) -> Iterator[dict]:
        """One pass on the wall clock (`realtime.Paced`): each answer stamped with its times and the frames dropped
        before it."""
        from ..realtime import Paced

        config = self.protocol.config
        paced = Paced(config.fps, config.speed, config.buffer, config.batch_size, source.duration,
                      name=str(source.path))

        def answer(item: tuple, before: float | None) -> Iterator[dict]:
            ask, script = item
            timer = paced.timer(ask.time)
            said = view.answer(ask, streamer=timer)
            said.pace = timer.stamp(max((f.timestamp for f in said.held), default=None))
            yield from advance(pending, script, self._late(source, ask, said) if before is None else said)

        yield from paced.play(frames, pending, view.add, view.flush, answer)
        self.frames_dropped += paced.queue.dropped

    def _late(self, source: VideoSource, ask: Ask, answer: Answer) -> Answer:
        """An answer marked `ended` (and counted) when its ask came after the video's end."""
        if source.duration is not None and ask.time >= source.duration:
            self.late_asks += 1
            answer.ended = True
        return answer

    def session(self) -> StreamingSession:
        """A fresh session on the protocol's memory."""
        from ..streaming import StreamingSession

        return StreamingSession(self.engine, self.engine.new_memory(self.protocol.memory),
                                system_message=self.protocol.config.system_message)

    def ask(self, session: StreamingSession, ask: Ask, streamer=None) -> Answer:
        """`streamer`: given each token of a generated reply (transformers' streamer interface)."""
        extra = {} if streamer is None or ask.choices is not None else {"streamer": streamer}
        reply = session.ask(ask.prompt, choices=ask.choices, max_new_tokens=self.protocol.config.max_new_tokens,
                            **extra)
        return Answer(reply, session.held_frames(), ask.time)

    def _fresh(self, source: VideoSource, ask: Ask) -> Answer:
        """An ask answered from a fresh memory of the frames the protocol shows it."""
        session = self.session()
        try:
            frames = prefetch(self.protocol.ask_frames(source, ask), what=str(source.path))
            session.push_all(frames, self.protocol.config.batch_size)
        finally:
            self.frames_encoded += session.frames_encoded
        return self.ask(session, ask)


def advance(pending: Pending, script: Script, answer: Answer | None) -> Iterator[dict]:
    """Send `answer` to a script (None: start it), yield the lines it makes, and queue its next ask."""
    try:
        item = script.send(answer) if answer is not None else next(script)
        while isinstance(item, dict):
            yield item
            item = next(script)
    except StopIteration:
        return
    if answer is not None and item.time < answer.time:
        raise ValueError(f"a script asked at {item.time}s after its answer at {answer.time}s: asks go forward")
    pending.push((item, script))


class OneMemory:
    """One memory for the whole pass: each ask answered from what it holds then."""

    def __init__(self, driver: Driver):
        self.driver, self.session, self.batch = driver, driver.session(), []

    def add(self, frame: VideoFrame) -> None:
        self.batch.append(frame)
        if len(self.batch) >= self.driver.protocol.config.batch_size:
            self.flush()

    def flush(self) -> None:
        """Encode the frames gathered into memory."""
        self.session.push(self.batch)
        self.driver.frames_encoded += len(self.batch)
        self.batch = []

    def answer(self, ask: Ask, streamer=None) -> Answer:
        self.flush()
        return self.driver.ask(self.session, ask, streamer)


class HeldWindow:
    """Encoded frames of the last `seconds`; each ask gets a fresh memory filled with its window's frames."""

    def __init__(self, driver: Driver, seconds: float):
        self.driver, self.seconds = driver, seconds
        self.held: deque[tuple[VideoFrame, object]] = deque()  # (frame, its grid [C, g, g])
        self.batch: list[VideoFrame] = []

    def add(self, frame: VideoFrame) -> None:
        self.batch.append(frame)
        if len(self.batch) >= self.driver.protocol.config.batch_size:
            self.flush()

    def flush(self) -> None:
        """Encode the frames gathered (they join the window)."""
        if self.batch:
            grids = self.driver.engine.encode_frames([f.image for f in self.batch])  # [B, C, g, g]
            self.driver.frames_encoded += len(self.batch)
            self.held.extend(zip(self.batch, grids))
            self.batch = []

    def answer(self, ask: Ask, streamer=None) -> Answer:
        self.flush()
        while self.held and self.held[0][0].timestamp < ask.time - self.seconds - 1e-6:
            self.held.popleft()  # later asks are later: their windows start later too
        session = self.driver.session()
        if self.held:
            frames, grids = zip(*self.held)
            session.add_encoded(list(frames), list(grids))
        return self.driver.ask(session, ask, streamer)


def union(segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching [start, end] segments merged, in time order."""
    merged: list[list[float]] = []
    for start, end in sorted((max(0.0, a), b) for a, b in segments):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]
