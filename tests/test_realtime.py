"""The clock-paced pass under the real-time protocol (`realtime.Paced`): frames offered at their stream times, the
oldest waiting dropped when the model falls behind, and each ask answered once its frames are in, never later ones."""

import numpy as np
import pytest

from videochat_online.data.video import VideoFrame
from videochat_online.pump import Pending
from videochat_online.realtime import Paced


class Ask:
    def __init__(self, time):
        self.time = time


def frames(n, fps):
    image = np.zeros((4, 4, 3), np.uint8)
    return [VideoFrame(k, k / fps, image) for k in range(n)]


def play(paced, source, asks, slow_at=None, pause=0.0):
    """Play with a model that takes `pause` seconds over frame `slow_at`; returns (frames added, memory at each
    answer)."""
    import time

    added, encoded, answers = [], [], []

    def add(frame):
        added.append(frame)
        if frame.index == slow_at:
            time.sleep(pause)  # the model busy: frames pile up meanwhile

    def flush():
        encoded.extend(added[len(encoded):])

    def answer(ask, before):
        flush()
        answers.append((ask.time, [f.timestamp for f in encoded]))
        return [ask.time]

    said = list(paced.play(iter(source), Pending(asks), add, flush, answer))
    return added, answers, said


def test_a_model_that_keeps_up_sees_every_frame_up_to_each_ask():
    paced = Paced(fps=10.0, speed=5.0, buffer=16, batch=4)
    added, answers, said = play(paced, frames(30, 10.0), [Ask(0.95), Ask(2.0), Ask(2.0), Ask(9.0)])
    assert said == [0.95, 2.0, 2.0, 9.0]  # in time order; the one after the end answered with everything
    assert paced.queue.dropped == 0 and len(added) == paced.pacer.offered == 30
    assert answers[0][1] == [k / 10 for k in range(10)]  # 0.0 ... 0.9: every frame sent by 0.95, no later one
    assert answers[1][1] == answers[2][1] == [k / 10 for k in range(21)]  # the frame at 2.0 itself is in
    assert len(answers[3][1]) == 30


def test_a_model_that_falls_behind_drops_the_oldest_waiting_and_counts_them():
    paced = Paced(fps=10.0, speed=10.0, buffer=3, batch=2)  # a frame every 10 ms; the model stalls 0.4 s at frame 5
    added, answers, said = play(paced, frames(100, 10.0), [Ask(6.0), Ask(9.9)], slow_at=5, pause=0.4)
    dropped = paced.queue.dropped
    assert dropped > 0 and len(added) + dropped == paced.pacer.offered == 100  # each frame added or dropped
    indices = [f.index for f in added]
    assert indices[:6] == list(range(6)) and indices == sorted(indices)
    gap = next(i for i in range(1, len(indices)) if indices[i] != indices[i - 1] + 1)
    assert indices[gap] - indices[gap - 1] - 1 == dropped  # the dropped ones are those that waited longest
    for t, seen in answers:
        assert seen and max(seen) <= t + 1e-9  # never a frame after the ask


def test_a_reader_that_fails_ends_the_pass_with_its_error_after_what_was_sent():
    def failing():
        yield from frames(5, 10.0)
        raise OSError("the file is cut short")

    paced = Paced(fps=10.0, speed=20.0)
    with pytest.raises(OSError, match="cut short"):
        play(paced, failing(), [Ask(0.2), Ask(3.0)])
    assert paced.pacer.offered == 5


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="speed"):
        Paced(fps=1.0, speed=0.0)
