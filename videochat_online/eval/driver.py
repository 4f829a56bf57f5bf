"""Benchmark scripts driven along a video (OVO-Bench, StreamingBench): every query, probe and poll of a video is
answered at its time from what the protocol shows then, never from a later frame.

A script is a generator a benchmark writes for each of its queries (or for a whole video): it yields an `Ask`
(a time and a prompt) and is sent the `Answer`; it yields each prediction line (a dict) when it has one. So a
proactive question polls every second until the model says yes, and a sequential one carries the earlier
turns, with no protocol knowing which. Protocols (docs/evaluation.md):

- `stream`:  the video played once from 0; one memory (`--memory`) answers every ask at its time.
- `window`:  only the frames of the last `window_seconds` before each ask, each frame decoded and encoded
             once: the video is read over the union of the asks' windows, and each ask gets a fresh memory
             filled with the encoded frames of its window.
- `offline`: the published way: for each ask, a fresh memory over [0, t] (or [t - window_seconds, t] with
             `window_seconds`, or from the ask's own `since`), decoded and encoded anew.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data.video import VideoFrame, VideoSource, prefetch
from ..memory import MemoryFrame, MemorySettings

if TYPE_CHECKING:  # the benchmark modules import this one: options stay light to import
    from ..chat import ChatEngine, Reply
    from ..streaming import StreamingSession

SCRIPTED_PROTOCOLS = ("stream", "window", "offline")


@dataclass
class Ask:
    time: float  # stream seconds: only frames up to here may be shown
    prompt: str
    since: float | None = None  # offline: the clip starts here (the published proactive polls start at the question)


@dataclass
class Answer:
    reply: Reply
    held: list[MemoryFrame]  # what the memory showed
    time: float
    ended: bool = False  # asked after the video's last frame: no later ask can see more


Script = Generator  # yields Ask or a prediction line (dict), is sent an Answer after each Ask


@dataclass
class Driver:
    """Runs scripts over one video under a protocol; counts the frames it sends through the vision tower."""

    engine: ChatEngine
    protocol: str  # one of SCRIPTED_PROTOCOLS
    fps: float
    memory: MemorySettings
    window_seconds: float | None = None  # window: required; offline: None means the clip starts at 0
    batch_size: int = 8
    max_new_tokens: int = 32
    system_message: str | None = None
    frames_encoded: int = 0
    late_asks: int = 0  # asks after the video's end, answered at its end

    def run(self, source: VideoSource, scripts: Iterable[Script], spans: list[tuple[float, float]]) -> Iterator[dict]:
        """The prediction lines of `scripts`, in the order they are made. `spans` are the [first, last] ask times
        the scripts may use (what the window protocol reads)."""
        queue = _Queue()
        for script in scripts:
            yield from queue.advance(script, None)
        if self.protocol == "offline":
            while queue:
                ask, script = queue.pop()
                yield from queue.advance(script, self._late(source, ask, self._offline(source, ask)))
            return
        if self.protocol == "window":
            if not self.window_seconds:
                raise ValueError("the window protocol needs window_seconds")
            view = _Window(self, self.window_seconds)
            frames = self._frames(source, union([(a - self.window_seconds, b) for a, b in spans]))
        else:
            view = _Stream(self)
            frames = self._frames(source, [(0.0, max((b for _, b in spans), default=0.0))])
        for frame in prefetch(frames):
            while queue and queue.next_time < frame.timestamp:
                ask, script = queue.pop()
                yield from queue.advance(script, view.answer(ask))
            if not queue:
                return
            view.add(frame)
        while queue:
            ask, script = queue.pop()
            yield from queue.advance(script, self._late(source, ask, view.answer(ask)))

    def _late(self, source: VideoSource, ask: Ask, answer: Answer) -> Answer:
        """An answer marked `ended` (and counted) when its ask came after the video's end."""
        if source.duration is not None and ask.time >= source.duration:
            self.late_asks += 1
            answer.ended = True
        return answer

    def _frames(self, source: VideoSource, segments: list[tuple[float, float]]) -> Iterator[VideoFrame]:
        """The stream's frames (at `fps`, capped at the video's own rate: times k / rate) over `segments`,
        each indexed by its place k in the whole stream."""
        rate = min(self.fps, source.native_fps)
        for start, end in segments:
            first = math.ceil(max(0.0, start) * rate - 1e-6)
            if first / rate > end + 1e-9:
                continue  # no frame of the stream falls in this segment
            for f in source.sample(rate, start=first / rate, end=end):
                yield VideoFrame(first + f.index, f.timestamp, f.image)

    def _session(self) -> StreamingSession:
        from ..streaming import StreamingSession

        return StreamingSession(self.engine, self.memory.build(self.engine.config.grid_size),
                                system_message=self.system_message)

    def _ask(self, session: StreamingSession, ask: Ask) -> Answer:
        reply = session.ask(ask.prompt, max_new_tokens=self.max_new_tokens)
        return Answer(reply, session.held_frames(), ask.time)

    def _offline(self, source: VideoSource, ask: Ask) -> Answer:
        start = min(ask.time, max(ask.since or 0.0, ask.time - self.window_seconds if self.window_seconds else 0.0))
        session = self._session()
        session.push_all(prefetch(self._frames(source, [(start, ask.time)])), self.batch_size)
        self.frames_encoded += session.frames_encoded
        return self._ask(session, ask)


class _Queue:
    """The scripts' pending asks, earliest first (ties: in the order asked)."""

    def __init__(self):
        self.heap: list = []
        self.count = 0

    def __bool__(self) -> bool:
        return bool(self.heap)

    @property
    def next_time(self) -> float:
        return self.heap[0][0]

    def pop(self) -> tuple[Ask, Script]:
        _, _, ask, script = heapq.heappop(self.heap)
        return ask, script

    def advance(self, script: Script, answer: Answer | None) -> Iterator[dict]:
        """Send `answer` (None: start the script), yield the lines it makes, queue its next ask."""
        try:
            item = script.send(answer) if answer is not None else next(script)
            while isinstance(item, dict):
                yield item
                item = next(script)
        except StopIteration:
            return
        if answer is not None and item.time < answer.time:
            raise ValueError(f"a script asked at {item.time}s after its answer at {answer.time}s: asks go forward")
        heapq.heappush(self.heap, (item.time, self.count, item, script))
        self.count += 1


class _Stream:
    """One memory for the whole stream."""

    def __init__(self, driver: Driver):
        self.driver, self.session, self.batch = driver, driver._session(), []

    def add(self, frame: VideoFrame) -> None:
        self.batch.append(frame)
        if len(self.batch) >= self.driver.batch_size:
            self._flush()

    def _flush(self) -> None:
        self.session.push(self.batch)
        self.driver.frames_encoded += len(self.batch)
        self.batch = []

    def answer(self, ask: Ask) -> Answer:
        self._flush()
        return self.driver._ask(self.session, ask)


class _Window:
    """Encoded frames of the last `seconds`; each ask gets a fresh memory filled with its window's frames."""

    def __init__(self, driver: Driver, seconds: float):
        self.driver, self.seconds = driver, seconds
        self.held: deque[tuple[VideoFrame, object]] = deque()  # (frame, its grid [C, g, g])
        self.batch: list[VideoFrame] = []

    def add(self, frame: VideoFrame) -> None:
        self.batch.append(frame)
        if len(self.batch) >= self.driver.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            grids = self.driver.engine.encode_frames([f.image for f in self.batch])  # [B, C, g, g]
            self.driver.frames_encoded += len(self.batch)
            self.held.extend(zip(self.batch, grids))
            self.batch = []

    def answer(self, ask: Ask) -> Answer:
        self._flush()
        while self.held and self.held[0][0].timestamp < ask.time - self.seconds - 1e-6:
            self.held.popleft()  # later asks are later: their windows start later too
        session = self.driver._session()
        if self.held:
            frames, grids = zip(*self.held)
            session.add_encoded(list(frames), list(grids))
        return self.driver._ask(session, ask)


def prediction_line(qid: str, subset: str, video: str, time: float, said: Answer | None, protocol: str,
                    error: str | None = None, **fields) -> dict:
    """A scripted benchmark's prediction line: the query, what the model saw (frames held, exact prompt, written
    compactly as in OVBench's lines), its reply, and the benchmark's own fields (answer, verdicts)."""
    from ..conversation import compact_prompt

    return {"id": qid, "subset": subset, "video": video, "time": time, **fields,
            "reply": None if said is None else said.reply.text, "protocol": protocol,
            "frames": [] if said is None else [[f.index, f.timestamp, f.num_tokens] for f in said.held],
            "prompt": None if said is None else compact_prompt(said.reply.prompt),
            "status": "failed" if error else "ok", "error": error}


def union(segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching [start, end] segments merged, in time order."""
    merged: list[list[float]] = []
    for start, end in sorted((max(0.0, a), b) for a, b in segments):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]

