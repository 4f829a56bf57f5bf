"""The loop every stream shares (the CLI's `answer_along` and `answer_live`, the evaluation's `Driver`): frames in,
each ask answered when the first frame after its time arrives, so that no ask sees a later frame.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data.video import VideoFrame


class Pending:
    """Asks waiting for their time, earliest first (ties in the order given): `next_time`, `pop`, `push`."""

    def __init__(self, asks: Iterable = (), time=lambda ask: ask.time):
        self.heap: list = []
        self.count, self.time = 0, time
        for ask in asks:
            self.push(ask)

    def __bool__(self) -> bool:
        return bool(self.heap)

    @property
    def next_time(self) -> float:
        return self.heap[0][0]

    def push(self, ask) -> None:
        heapq.heappush(self.heap, (self.time(ask), self.count, ask))
        self.count += 1

    def pop(self):
        return heapq.heappop(self.heap)[2]


def play(frames: Iterable[VideoFrame | None], pending: Pending, add: Callable[[VideoFrame], None],
         answer: Callable[[object, float | None], Iterable], idle: Callable[[], Iterable] | None = None,
         more: Callable[[], bool] = lambda: False) -> Iterator:
    """Frames in, asks at their times: before a frame is added (`add`), every pending ask timed before it is
    answered (`answer(ask, frame_time)`, whose items are yielded; it may push later asks). A None among the frames
    is a pause in their arrival (a live source has nothing more now): `idle()`'s items are yielded there. Once no
    ask is pending and `more()` expects none, no further frame is read; the asks left when the frames end are
    answered last (`answer(ask, None)`)."""
    for frame in frames:
        if frame is None:
            yield from idle()
            continue
        while pending and pending.next_time < frame.timestamp:
            yield from answer(pending.pop(), frame.timestamp)
        if not pending and not more():
            return
        add(frame)
    while pending:
        yield from answer(pending.pop(), None)
