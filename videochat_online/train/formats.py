"""Training annotations: four formats (LLaVA, VideoChat2-IT, online dialogues, tracking) read into one
`Conversation`, as docs/training.md tabulates them.

A user turn may carry still images (`<image>`, InternVL tiling) or video frames, written as
`Frame{n} at {t:.1f}s: <img>...</img>` lines: all in the first turn (offline video) or, for online data, the
frames up to each turn's time. A malformed entry raises `AnnotationError` (the sample is skipped and
counted); anything else is a bug and is raised.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.paths import inside
from ..errors import InputError

FORMATS = ("llava", "videochat2", "online", "tracking")


@dataclass
class Turn:
    user: str  # may hold <image> / <video> placeholders
    assistant: str
    time: float | None = None  # online: the moment the question is asked (frames up to it are shown)


@dataclass
class Conversation:
    turns: list[Turn]
    images: list[str] = field(default_factory=list)  # paths, for <image> placeholders in order
    video: str | None = None  # a video file or frame folder
    clip: tuple[float, float] | None = None
    frame_files: list[tuple[str, float]] = field(default_factory=list)  # tracking: (image, timestamp)
    online: bool = False  # frames are interleaved with the turns by time
    folder_fps: float | None = None  # the sample's own frame rate, for a frame-folder video


class AnnotationError(InputError):
    """An annotation entry that does not describe a usable sample."""


def read_annotation(path: str | Path) -> list[dict]:
    """Entries of a JSON list or JSONL annotation file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such annotation file")
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        entries = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(entries, list):
        raise InputError(f"{path}: expected a JSON list of samples")
    return entries


def detect_format(entry: dict) -> str:
    if "all_image_files" in entry:
        return "tracking"
    if "QA" in entry:
        return "videochat2"
    turns = entry.get("conversations") or []
    if any("timestamps" in t for t in turns):
        return "online"
    if turns:
        return "llava"
    raise ValueError("unknown sample format: expected conversations, QA or all_image_files")


def _pairs(turns: list[dict], where: str) -> list[tuple[dict, dict]]:
    if len(turns) < 2 or len(turns) % 2:
        raise ValueError(f"{where}: conversations must alternate human and gpt turns, got {len(turns)} turns")
    pairs = list(zip(turns[0::2], turns[1::2]))
    for human, gpt in pairs:
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise ValueError(f"{where}: expected human then gpt turns, got {human.get('from')}, {gpt.get('from')}")
    return pairs


def parse(entry: dict, data_root: str | Path = "", fmt: str | None = None, rng: random.Random | None = None,
          max_frames: int | None = None) -> Conversation:
    """One annotation entry -> Conversation, media paths joined to `data_root` (`rng` picks a tracking sample's
    box, `max_frames` caps its frames); a malformed entry raises AnnotationError."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"expected a JSON object, got {type(entry).__name__}")
    try:
        return _parse(entry, Path(data_root), fmt or detect_format(entry), rng or random.Random(0), max_frames)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"missing {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise AnnotationError(f"malformed sample ({what})") from None


def _media(root: Path, relative) -> str:
    """A media path of a sample, inside its dataset's root (`data.paths.inside`), else a ValueError saying why."""
    if not isinstance(relative, str):
        raise ValueError(f"a media path must be a string, got {type(relative).__name__}")
    path, refused = inside(root, relative)
    if refused:
        raise ValueError(refused)
    return str(path)


def _folder_fps(entry: dict) -> float | None:
    return float(entry["fps"]) if entry.get("fps") else None


def _parse(entry: dict, root: Path, fmt: str, rng: random.Random, max_frames: int | None) -> Conversation:
    if fmt == "llava":
        images = entry.get("image") or []
        images = [images] if isinstance(images, str) else list(images)
        turns = [Turn(h["value"], g["value"]) for h, g in _pairs(entry["conversations"], "llava sample")]
        video = entry.get("video")
        return Conversation(turns, [_media(root, p) for p in images], _media(root, video) if video else None,
                            folder_fps=_folder_fps(entry))
    if fmt == "videochat2":
        media = "<video>\n" if "video" in entry else "<image>\n" if "image" in entry else ""
        turns = []
        for k, qa in enumerate(entry["QA"]):
            question = "\n".join(x for x in (qa.get("i", ""), qa.get("q", "")) if x).strip()
            turns.append(Turn((media if k == 0 else "") + question, qa["a"]))
        return Conversation(turns, [_media(root, entry["image"])] if "image" in entry else [],
                            _media(root, entry["video"]) if "video" in entry else None, folder_fps=_folder_fps(entry))
    if fmt == "online":
        turns = []
        for human, gpt in _pairs(entry["conversations"], "online sample"):
            if "timestamps" not in human:
                raise ValueError("online sample: every human turn needs its 'timestamps'")
            time = human["timestamps"]
            time = float(time[-1] if isinstance(time, list) else time)
            turns.append(Turn(human["value"].replace("<video>", "").strip(), gpt["value"], time))
        clip = tuple(float(x) for x in entry["clip"]) if entry.get("clip") else None
        return Conversation(turns, video=_media(root, entry["video"]), clip=clip, online=True,
                            folder_fps=_folder_fps(entry))
    if fmt == "tracking":
        files, boxes = list(entry["all_image_files"]), list(entry["image_bboxes"])
        if len(files) != len(boxes) or len(files) < 2:
            raise ValueError(f"tracking sample: {len(files)} image files but {len(boxes)} boxes (need >= 2 of each)")
        if max_frames and len(files) > max_frames:  # evenly spaced, as the published pipeline
            keep = np.linspace(0, len(files) - 1, max_frames, dtype=int)
            files, boxes = [files[i] for i in keep], [boxes[i] for i in keep]
        folder = Path(_media(root, entry.get("video", "")))  # image files are relative to the sample's own folder
        times = [round(float(b["timestamp"]), 1) for b in boxes]
        line = lambda j: f"At {times[j]}s, {boxes[j]['bbox']}"  # noqa: E731  (the bbox as the file writes it)
        k = rng.randint(0, len(boxes) - 1)  # the box the question gives
        template = entry["query_template"]
        query = template["value"] if isinstance(template, dict) else template
        query = query.replace("<bbox>", str(boxes[k]["bbox"])).replace("<video>", "").strip()
        turns = [Turn(query, "\n".join(line(j) for j in range(k + 1)), times[k])]
        turns += [Turn("", line(j), times[j]) for j in range(k + 1, len(boxes))]
        return Conversation(turns, frame_files=[(_media(folder, f), t) for f, t in zip(files, times)], online=True)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
