"""Scenes of the synthetic world: one object on a dark field, its life a timeline of events on whole seconds
(appear, recolour, slide clockwise to the next quadrant leaving a grey track, leave; docs/synthetic.md).
`render(scene, t)` draws the frame on screen at time t.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("square", "circle", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 235), "yellow": (235, 210, 40)}
PLACES = ("top left", "top right", "bottom left", "bottom right")
CLOCKWISE = {"top left": "top right", "top right": "bottom right", "bottom right": "bottom left",
             "bottom left": "top left"}  # where a move from each place ends
BACKGROUND = (28, 28, 32)
TRACK = (128, 128, 128)  # the track a moving object leaves behind it
MOVE_SECONDS = 10  # every move: half the frame's side in 10 s
FRAME_SIZE = 224
OBJECT_SIZE = 0.45  # of the frame side: the object fills most of its quarter of the frame


@dataclass(frozen=True)
class Scene:
    shape: str
    first_colour: str
    second_colour: str
    start_place: str
    end_place: str
    appear: int  # seconds
    recolour: int
    move_start: int
    move_end: int
    leave: int | None  # None: stays until the end
    duration: int

    def visible(self, t: float) -> bool:
        return self.appear <= t and (self.leave is None or t < self.leave)

    def colour(self, t: float) -> str:
        return self.first_colour if t < self.recolour else self.second_colour

    def moving(self, t: float) -> bool:
        return self.move_start <= t < self.move_end

    def place(self, t: float) -> str | None:
        """The place the object is at (None while it is between two places)."""
        if t < self.move_start:
            return self.start_place
        return self.end_place if t >= self.move_end else None

    def centre(self, t: float) -> tuple[float, float]:
        """Centre of the object in frame fractions (x, y)."""
        a, b = _centre(self.start_place), _centre(self.end_place)
        f = min(1.0, max(0.0, (t - self.move_start) / (self.move_end - self.move_start)))
        return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])

    def track(self, t: float) -> tuple[float, float, float, float] | None:
        """The box (x0, y0, x1, y1, frame fractions) of the grey track behind the object while it moves:
        the ground its box has swept since the move began, less the box itself (None when not moving)."""
        if not (self.visible(t) and self.moving(t)):
            return None
        r = OBJECT_SIZE / 2
        (ax, ay), (x, y) = self.centre(self.move_start), self.centre(t)
        x0, y0, x1, y1 = min(ax, x) - r, min(ay, y) - r, max(ax, x) + r, max(ay, y) + r
        if x > ax:  # moving right: the track ends at the object's left side (and so on)
            x1 = x - r
        elif x < ax:
            x0 = x + r
        if y > ay:
            y1 = y - r
        elif y < ay:
            y0 = y + r
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def to_dict(self) -> dict:
        return asdict(self)


def _centre(place: str) -> tuple[float, float]:
    row, column = place.split()
    return (0.25 if column == "left" else 0.75), (0.25 if row == "top" else 0.75)


def random_scene(rng: random.Random, duration: int = 32) -> Scene:
    """A scene with every event: appear (0-2 s), recolour (4-10 s), a clockwise move of `MOVE_SECONDS` starting
    2-6 s later, and, half the time, leaving at least 3 s after the move and 3 s before the end."""
    colours = rng.sample(sorted(COLOURS), 2)
    start = rng.choice(PLACES)
    appear = rng.randint(0, 2)
    recolour = rng.randint(4, 10)
    move_start = recolour + rng.randint(2, 6)
    move_end = move_start + MOVE_SECONDS
    if move_end + 6 > duration:
        raise ValueError(f"a scene of {duration} s is too short for its events (these need {move_end + 6} s); "
                         "use at least 32 s")
    leave = rng.randint(move_end + 3, duration - 3) if rng.random() < 0.5 else None
    return Scene(rng.choice(SHAPES), colours[0], colours[1], start, CLOCKWISE[start], appear,
                 recolour, move_start, move_end, leave, duration)


def render(scene: Scene, t: float, size: int = FRAME_SIZE) -> np.ndarray:
    """The frame on screen at time t: [size, size, 3] uint8."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    if scene.visible(t):
        draw = ImageDraw.Draw(image)
        track = scene.track(t)
        if track is not None:
            draw.rectangle(tuple(v * size for v in track), fill=TRACK)
        x, y = scene.centre(t)
        r = OBJECT_SIZE * size / 2
        box = (x * size - r, y * size - r, x * size + r, y * size + r)
        fill = COLOURS[scene.colour(t)]
        if scene.shape == "square":
            draw.rectangle(box, fill=fill)
        elif scene.shape == "circle":
            draw.ellipse(box, fill=fill)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) / 2, box[1])], fill=fill)
    return np.asarray(image)


def write_scene_video(scene: Scene, path, fps: int = 2, size: int = FRAME_SIZE) -> None:
    """The scene as an H.264 mp4 at `fps` (frame k shows time k / fps), from 0 to `duration` inclusive."""
    from ..data.video import write_mp4

    write_mp4((render(scene, k / fps, size) for k in range(scene.duration * fps + 1)), path, fps, {"crf": "18"})
