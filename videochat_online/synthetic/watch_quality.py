"""A watch benchmark built from the synthetic world: held-out scenes, the standing question "Is the <shape> still in
view?", whose answer changes at known moments (no -> yes when the shape appears, yes -> no when it leaves; a
change before the watch can have settled its first answer, `confirm` polls in, is where it starts, not an alert). A model's replies to the polls are taken once per memory policy (`poll_replies`, as
`stream --watch` polls: every second of stream, the KV prefix reused); the alerts a `Watch` would raise from them
are then counted for any `confirm` (`score`): recall of the true changes, false alerts per hour of video, and the
alert delay (confirmed at, minus the true change) of the alerts that were right."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..streaming import StreamingSession, TimedQuestion, Watch, answer_along
from .world import Scene, write_scene_video

MATCH_SECONDS = 3.0  # an alert is right when it gives the new answer within this long after the change began
POLL_EVERY = 1.0
POLL_TOKENS = 8


def question(scene: Scene) -> str:
    return f"Is the {scene.shape} still in view?"


def changes(scene: Scene, settled_by: float) -> list[tuple[float, bool]]:
    """The true changes of the standing question's answer after `settled_by` (the poll by which a watch can have
    settled its first answer: earlier changes are where it starts, not alerts): (time, new answer)."""
    found = [(float(scene.appear), True)] if scene.leave is None or scene.appear < scene.leave else []
    if scene.leave is not None:
        found.append((float(scene.leave), False))
    return [(t, said) for t, said in found if t > settled_by]


@dataclass
class Polled:
    scene: Scene
    replies: list[tuple[float, str]]  # (stream time, reply) of each poll


def poll_replies(engine, scene: Scene, video: Path, memory, fps: float) -> Polled:
    """The model's reply to each poll of the scene's standing question (one per second of stream); the scene's
    video is written to `video` unless it is there."""
    from ..data.video import open_video

    if not video.exists():
        write_scene_video(scene, video, 2)
    source = open_video(video)
    watch = Watch(question(scene), max(POLL_EVERY, 1.0 / fps))
    polls = [TimedQuestion(t, watch.question, key=watch, remember=False) for t in watch.times(scene.duration)]
    session = StreamingSession(engine, engine.new_memory(memory))
    answers = answer_along(session, source.sample(fps, end=scene.duration), polls, max_new_tokens=POLL_TOKENS)
    return Polled(scene, [(done.question.time, done.reply.text) for done in answers])


def score(polled: list[Polled], confirm: int) -> dict:
    """Alert recall, false alerts per hour of video and alert delay (median, p95) over the scenes."""
    true_changes = right = false = 0
    delays: list[float] = []
    seconds = sum(p.scene.duration for p in polled)
    for p in polled:
        watch = Watch(question(p.scene), POLL_EVERY, confirm)
        events = [e for t, reply in p.replies if (e := watch.observe(t, reply)) is not None]
        first = p.replies[0][0] if p.replies else POLL_EVERY
        wanted = changes(p.scene, first + (confirm - 1) * POLL_EVERY)
        true_changes += len(wanted)
        unmatched = list(wanted)
        for event in events:
            hit = next((c for c in unmatched if c[1] == event.answer and
                        c[0] - POLL_EVERY <= event.time <= c[0] + MATCH_SECONDS), None)
            if hit is None:
                false += 1
                continue
            unmatched.remove(hit)
            right += 1
            delays.append(event.confirmed_at - hit[0])
    ordered = sorted(delays)
    return {"confirm": confirm, "scenes": len(polled), "changes": true_changes, "recall": right / max(true_changes, 1),
            "false_alerts_per_hour": false / (seconds / 3600) if seconds else 0.0, "false_alerts": false,
            "delay_median_s": statistics.median(ordered) if ordered else None,
            "delay_p95_s": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] if ordered else None}
