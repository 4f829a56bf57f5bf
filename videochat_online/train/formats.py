"""Training annotations: four formats read into one `Conversation`.

A conversation is a list of turns; a user turn may carry visuals that belong in its text:
- `<image>` placeholders, filled with still images (InternVL dynamic tiling);
- video frames, written as `Frame{n} at {t:.1f}s: <img>...</img>` lines (DESIGN.md section 3),
  either all in the first turn (offline video) or, for online data, the frames up to each turn's time.

Formats (JSON list or JSONL, one sample per entry):
- LLaVA:        {"image": path | [paths], "video": path, "conversations": [{"from": "human"|"gpt", "value"}]}
                with `<image>` / `<video>` placeholders in the human turns;
- VideoChat2-IT: {"video" | "image": path, "QA": [{"i": instruction, "q": question, "a": answer}]};
- online:       {"video": path, "clip": [start, end]?, "conversations": [...]} whose human turns carry
                `timestamps` (seconds): each turn shows the frames since the previous turn;
- tracking:     {"all_image_files": [paths], "image_bboxes": [{"timestamp", "bbox"}], "query_template"
                with a `<bbox>` slot}: the first turn asks about the box at the first timestamp, each
                later turn shows the new frames and is answered with the box at its timestamp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

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


def parse(entry: dict, data_root: str | Path = "", fmt: str | None = None) -> Conversation:
    """One annotation entry -> Conversation, with media paths joined to `data_root`."""
    root = Path(data_root)
    fmt = fmt or detect_format(entry)
    if fmt == "llava":
        images = entry.get("image") or []
        images = [images] if isinstance(images, str) else list(images)
        turns = [Turn(h["value"], g["value"]) for h, g in _pairs(entry["conversations"], "llava sample")]
        video = entry.get("video")
        return Conversation(turns, [str(root / p) for p in images], str(root / video) if video else None)
    if fmt == "videochat2":
        media = "<video>\n" if "video" in entry else "<image>\n" if "image" in entry else ""
        turns = []
        for k, qa in enumerate(entry["QA"]):
            question = "\n".join(x for x in (qa.get("i", ""), qa.get("q", "")) if x).strip()
            turns.append(Turn((media if k == 0 else "") + question, qa["a"]))
        return Conversation(turns, [str(root / entry["image"])] if "image" in entry else [],
                            str(root / entry["video"]) if "video" in entry else None)
    if fmt == "online":
        turns = []
        for human, gpt in _pairs(entry["conversations"], "online sample"):
            if "timestamps" not in human:
                raise ValueError("online sample: every human turn needs its 'timestamps'")
            time = human["timestamps"]
            time = float(time[-1] if isinstance(time, list) else time)
            turns.append(Turn(human["value"].replace("<video>", "").strip(), gpt["value"], time))
        clip = tuple(float(x) for x in entry["clip"]) if entry.get("clip") else None
        return Conversation(turns, video=str(root / entry["video"]), clip=clip, online=True)
    if fmt == "tracking":
        files, boxes = entry["all_image_files"], entry["image_bboxes"]
        if len(files) != len(boxes) or len(files) < 2:
            raise ValueError(f"tracking sample: {len(files)} image files but {len(boxes)} boxes (need >= 2 of each)")
        frames = [(str(root / f), float(b["timestamp"])) for f, b in zip(files, boxes)]
        box = lambda b: "[" + ", ".join(f"{float(x):.2f}" for x in b["bbox"]) + "]"  # noqa: E731
        query = entry["query_template"].replace("<bbox>", box(boxes[0]))
        turns = [Turn(query if k == 1 else "", box(boxes[k]), frames[k][1]) for k in range(1, len(boxes))]
        return Conversation(turns, frame_files=frames, online=True)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
