"""Questions about a scene at moments of its stream, in OVBench's format: five families mirroring OVBench's
task types (past colour, place now, moving for, destination, still there; docs/synthetic.md). Candidates are
each family's whole answer set in a fixed order; a question is asked at a whole second `end` and nothing
after `end` decides its answer.
"""

from __future__ import annotations

import random

from .world import COLOURS, PLACES, Scene

COLOUR_NAMES = tuple(COLOURS)
DURATIONS = ("1-2s", "3-4s", "5-6s", "7-8s")
YES_NO = ("Yes", "No")
FAMILIES = {  # name: (answer_type, sub_answer_type)
    "past_colour": ("PastMemory", "PastMemory-colour"),
    "place_now": ("SpatialPerception", "SpatialPerception-place"),
    "moving_for": ("TemporalPerception", "TemporalPerception-moving"),
    "destination": ("FuturePrediction", "FuturePrediction-destination"),
    "still_there": ("Hallucination", "Hallucination-present"),
}
MIN_PAST_DELAY, MAX_PAST_DELAY = 4, 16  # seconds between the colour change and a past-colour question


def _entry(family: str, video: str, t: int, question: str, candidates: tuple[str, ...], answer: str) -> dict:
    answer_type, sub_answer_type = FAMILIES[family]
    return {"video": video, "start": 0.0, "end": float(t), "middle_frame_timestamp": float(t), "question": question,
            "candidates": list(candidates), "answer": answer, "answer_type": answer_type,
            "sub_answer_type": sub_answer_type}


def resting_times(scene: Scene) -> list[int]:
    """Whole seconds at which the object is in view and has rested at its place for a second or more."""
    stay_until = scene.leave if scene.leave is not None else scene.duration + 1
    return [t for t in range(scene.duration + 1)
            if scene.appear + 1 <= t < scene.move_start or scene.move_end + 1 <= t < stay_until]


def ask(family: str, scene: Scene, video: str, t: int) -> dict:
    """The family's question about `scene` at second `t` (which must be one of `times(family, scene)`)."""
    s = scene.shape
    if family == "past_colour":
        return _entry(family, video, t, f"What colour was the {s} before it changed colour?", COLOUR_NAMES,
                      scene.first_colour)
    if family == "place_now":
        return _entry(family, video, t, f"Where is the {s} now?", PLACES, scene.place(t))
    if family == "moving_for":
        return _entry(family, video, t, f"How long has the {s} been moving?", DURATIONS,
                      DURATIONS[(t - scene.move_start - 1) // 2])
    if family == "destination":
        return _entry(family, video, t, f"Where will the {s} stop?", PLACES, scene.end_place)
    if family == "still_there":
        return _entry(family, video, t, f"Is the {s} still in view?", YES_NO, "Yes" if scene.visible(t) else "No")
    raise ValueError(f"unknown question family {family!r}; known: {', '.join(FAMILIES)}")


def times(family: str, scene: Scene) -> list[int]:
    """The whole seconds at which the family's question has one right answer."""
    if family == "past_colour":
        return [t for t in range(scene.recolour + MIN_PAST_DELAY, scene.recolour + MAX_PAST_DELAY + 1)
                if t <= scene.duration]
    if family == "place_now":
        return resting_times(scene)
    if family == "moving_for":
        return list(range(scene.move_start + 1, min(scene.move_end, scene.move_start + 2 * len(DURATIONS) + 1)))
    if family == "destination":
        return list(range(scene.move_start + 1, scene.move_end))
    if family == "still_there":
        first = scene.leave + 1 if scene.leave is not None else scene.move_end + 1
        return list(range(first, scene.duration + 1))
    raise ValueError(f"unknown question family {family!r}; known: {', '.join(FAMILIES)}")


def questions_for(scene: Scene, video: str, rng: random.Random, per_family: int = 1) -> list[dict]:
    """`per_family` questions of each family at distinct valid moments, in time order: each draws its answer
    uniformly from those the family's moments have, then a moment with it, so no answer is favoured."""
    out = []
    for family in FAMILIES:
        by_answer: dict[str, list[int]] = {}
        for t in times(family, scene):
            by_answer.setdefault(ask(family, scene, video, t)["answer"], []).append(t)
        for _ in range(per_family):
            if not by_answer:
                break
            answer = rng.choice(sorted(by_answer))
            t = by_answer[answer].pop(rng.randrange(len(by_answer[answer])))
            if not by_answer[answer]:
                del by_answer[answer]
            out.append(ask(family, scene, video, t))
    return sorted(out, key=lambda q: q["end"])


def reply(entry: dict) -> str:
    """The reply a trained model should give: the answer's option letter and text, e.g. "(B) green"."""
    return f"({'ABCDE'[entry['candidates'].index(entry['answer'])]}) {entry['answer']}"


# Offline questions (stage 1): about a whole clip, or one frame, with no moment in them.
def clip_questions(scene: Scene) -> list[tuple[str, tuple[str, ...], str]]:
    s = scene.shape
    return [(f"What colour was the {s} at first?", COLOUR_NAMES, scene.first_colour),
            (f"What colour did the {s} turn?", COLOUR_NAMES, scene.second_colour),
            (f"Where was the {s} at first?", PLACES, scene.start_place),
            (f"Where did the {s} stop?", PLACES, scene.end_place),
            (f"Did the {s} leave?", YES_NO, "Yes" if scene.leave is not None else "No")]


def frame_questions(scene: Scene, t: int) -> list[tuple[str, tuple[str, ...], str]]:
    """Questions about the frame at a resting moment `t`."""
    s = scene.shape
    return [(f"What colour is the {s}?", COLOUR_NAMES, scene.colour(t)), (f"Where is the {s}?", PLACES, scene.place(t))]


def moving_frame_questions(scene: Scene, t: int) -> list[tuple[str, tuple[str, ...], str]]:
    """Questions about the frame at a moment `t` of the move, which a still answers in this world: where the
    object is says where it will stop, and the track behind it how long it has moved."""
    entries = [ask(family, scene, "", t) for family in ("destination", "moving_for")]
    return [(e["question"], tuple(e["candidates"]), e["answer"]) for e in entries]
