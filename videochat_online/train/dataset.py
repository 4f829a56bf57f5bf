"""SFT data: meta files -> mixed samples -> (input_ids, labels, pixel_values, grid_sizes).

A meta file names datasets and how each is read (docs/training.md):

    {"coin_step_localization": {"annotation": "online/coin.jsonl", "data_root": "videos/coin",
                                "repeat_time": 0.5, "data_augment": false, "max_frames": 64}}

A sample that fails for an input problem is skipped for the next one, and the failure travels with the
sample that replaced it (`failed_samples` in the batch) so that each is counted once (`failures.py`).
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..conversation import FrameSlot, get_template, images_message, video_message
from ..data.image import dynamic_tiles, frames_to_pixel_values, load_image
from ..data.video import open_video
from ..errors import InputError
from ..model.configuration import VideoChatOnlineConfig
from ..memory import MemorySettings
from ..stream_config import TRAINING_FPS
from .failures import FailedSamplesError
from .formats import Conversation, parse, read_annotation
from .sampling import MAX_FRAMES, sample_times
from .tokenize import IGNORE, count_image_tokens, tokenize_conversation

log = logging.getLogger("videochat_online.train")


@dataclass
class DatasetSpec:
    name: str
    annotation: Path
    data_root: Path
    repeat_time: float = 1.0
    data_augment: bool = False
    fps: float | None = None
    num_frames: int | None = None
    min_frames: int | None = None
    max_frames: int | None = None
    folder_fps: float | None = None
    sampling: str = "segments"  # "segments": middles (or random points) of equal segments; "stream": every 1/fps
    entries: list[dict] = field(default_factory=list, repr=False)  # the annotation's samples (read by load_meta)


META_FIELDS = {  # a dataset's keys in a meta file, and what each must be
    "annotation": "a file name", "data_root": "a folder name", "repeat_time": "a number > 0",
    "data_augment": "true or false", "fps": "a number > 0", "folder_fps": "a number > 0",
    "num_frames": "an integer >= 1", "min_frames": "an integer >= 1", "max_frames": "an integer >= 1",
    "length": "an integer >= 1", "sampling": "segments or stream",
}


def _valid(key: str, value) -> bool:
    kind = META_FIELDS[key]
    if kind in ("a file name", "a folder name"):
        return isinstance(value, str)
    if kind == "true or false":
        return isinstance(value, bool)
    if kind == "segments or stream":
        return value in ("segments", "stream")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return False
    return kind == "a number > 0" or float(value).is_integer()


def load_meta(path: str | Path, data_dir: str | Path | None = None, read: bool = True) -> list[DatasetSpec]:
    """The datasets a meta file names, every field checked and (`read`) every annotation file read (a non-empty
    list of samples), before any model loads: a problem is one line naming the file, the dataset and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such meta file")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not meta:
        raise InputError(f"{path}: a meta file is a JSON object of datasets (name -> settings), with at least one")
    base = Path(data_dir) if data_dir else path.parent
    specs = []
    for name, entry in meta.items():
        if not isinstance(entry, dict) or "annotation" not in entry:
            raise InputError(f"{path}: dataset {name!r} needs an 'annotation'")
        unknown = set(entry) - set(META_FIELDS)
        if unknown:
            raise InputError(f"{path}: dataset {name!r} has unknown keys {sorted(unknown)}")
        for key, value in entry.items():
            if not _valid(key, value):
                raise InputError(f"{path}: dataset {name!r}: {key} is {value!r}; it must be {META_FIELDS[key]}")
        if entry.get("sampling") == "stream" and entry.get("num_frames"):
            raise InputError(f"{path}: dataset {name!r} samples as a stream, at an fps, so it cannot set num_frames")
        spec = DatasetSpec(name, base / entry["annotation"], base / entry.get("data_root", ""),
                           float(entry.get("repeat_time", 1.0)), entry.get("data_augment", False), entry.get("fps"),
                           entry.get("num_frames"), entry.get("min_frames"), entry.get("max_frames"),
                           entry.get("folder_fps"), entry.get("sampling", "segments"))
        if spec.repeat_time > MOST_REPEAT:
            raise InputError(f"{path}: dataset {name!r}: repeat_time is {spec.repeat_time:g}; it must be at most "
                             f"{MOST_REPEAT:g}")
        spec.entries = read_annotation(spec.annotation) if read else []
        if read and not spec.entries or not all(isinstance(e, dict) for e in spec.entries):
            raise InputError(f"{spec.annotation}: dataset {name!r} of {path}: " + (
                "no samples" if not spec.entries else "each sample must be a JSON object"))
        if read and repeated(spec.repeat_time, len(spec.entries)) == 0:
            raise InputError(f"{path}: dataset {name!r}: repeat_time {spec.repeat_time:g} of its "
                             f"{len(spec.entries)} samples keeps none")
        specs.append(spec)
    return specs


MOST_REPEAT = 1000.0  # a dataset's repeat_time at most (past it a typo builds millions of items)


def repeated(repeat_time: float, n: int) -> int:
    """How many items a dataset of `n` samples gives: each sample int(repeat_time) times, and round(fraction x n)
    of them once more."""
    whole = int(repeat_time)
    return whole * n + round((repeat_time - whole) * n)


@dataclass
class DataConfig:
    """How samples are built (the data arguments of the training entry point)."""

    max_seq_length: int = 32768
    fps: float = TRAINING_FPS  # video frames per second, unless a dataset sets num_frames
    min_frames: int = 1
    max_frames: int = MAX_FRAMES
    memory: MemorySettings = field(default_factory=MemorySettings)  # its policy arranges video frames' tokens
    max_dynamic_patch: int | None = None  # default: the model config's
    system_message: str | None = None  # default: the model config's
    max_failed_samples: int = 100
    seed: int = 0


class SampleBuilder:
    """One Conversation -> tensors for the model."""

    def __init__(self, tokenizer, config: VideoChatOnlineConfig, data: DataConfig):
        self.tokenizer, self.config, self.data = tokenizer, config, data
        self.template = get_template(config.template)
        self.memory = data.memory
        self.grids(1)  # a policy training cannot arrange frames for is refused now, in one line
        self.system = config.system_message if data.system_message is None else data.system_message

    def grids(self, num_frames: int) -> list[int]:
        """The grid side of each of a clip's frames, as the memory shows them."""
        return self.memory.policy.training_grids(self.memory, self.config.grid_size, num_frames)

    def visual_estimate(self, entry: dict) -> int:
        """About how many visual tokens a sample holds, from its annotation alone."""
        if entry.get("image"):
            return self.config.tokens_per_tile * (self.config.max_dynamic_patch // 2 + 1)
        if entry.get("video") or entry.get("all_image_files"):
            n = len(entry.get("all_image_files") or []) or self.data.max_frames
            return sum(s * s for s in self.grids(n))
        return 0

    def _video_times(self, spec: DatasetSpec, start: float, end: float, rng) -> list[float]:
        count = dict(num_frames=spec.num_frames) if spec.num_frames else dict(fps=spec.fps or self.data.fps)
        return sample_times(start, end, min_frames=spec.min_frames or self.data.min_frames,
                            max_frames=spec.max_frames or self.data.max_frames,
                            mode="stream" if spec.sampling == "stream" else "random" if spec.data_augment else "middle",
                            rng=rng, **count)

    def _frames(self, conv: Conversation, spec: DatasetSpec, end: float | None, rng) -> list[tuple[Image.Image, float]]:
        if conv.frame_files:
            return [(load_image(path), t) for path, t in conv.frame_files]
        folder_fps = conv.folder_fps or spec.folder_fps
        if Path(conv.video).is_dir() and not folder_fps:
            raise InputError(f"{conv.video}: a frame folder needs its frame rate: give the sample an 'fps' or the "
                             f"meta file's dataset {spec.name!r} a 'folder_fps'")
        source = open_video(conv.video, folder_fps=folder_fps)
        start = conv.clip[0] if conv.clip else 0.0
        stop = end if end is not None else (conv.clip[1] if conv.clip else source.duration)
        if stop is None:
            raise InputError(f"{conv.video}: the video's length is unknown; give the sample a clip")
        times = self._video_times(spec, start, stop, rng)
        return [(Image.fromarray(f.image), t) for f, t in zip(source.frames_at(times), times)]

    def build(self, conv: Conversation, spec: DatasetSpec, rng: random.Random) -> dict:
        g = self.config.grid_size
        turns = [[t.user, t.assistant] for t in conv.turns]
        visuals: list[list[tuple[Image.Image, int]]] = [[] for _ in turns]  # per turn: (picture, grid side)
        if conv.images:
            budget = max(1, (self.data.max_dynamic_patch or self.config.max_dynamic_patch) // len(conv.images))
            tiles = [dynamic_tiles(load_image(p), self.config.tile_size, self.config.min_dynamic_patch, budget,
                                   self.config.use_thumbnail) for p in conv.images]
            turns[0][0] = images_message([len(t) * g * g for t in tiles], turns[0][0].replace("<video>", "").strip())
            visuals[0] = [(tile, g) for per_image in tiles for tile in per_image]
        elif conv.video or conv.frame_files:
            frames = self._frames(conv, spec, conv.turns[-1].time if conv.online else None, rng)
            sizes = self.grids(len(frames))
            # online frames carry their time; offline video is written `Frame{n}: <image>` (the published stage 1)
            slots = [FrameSlot(i, t if conv.online else None, s * s) for i, ((_, t), s) in enumerate(zip(frames, sizes))]
            if conv.online:  # each turn shows the frames since the previous turn
                k = 0
                for i, (frame, t) in enumerate(frames):
                    while k < len(turns) - 1 and t > conv.turns[k].time:
                        k += 1
                    visuals[k].append((frame, sizes[i]))
                starts = [0]
                for per_turn in visuals:
                    starts.append(starts[-1] + len(per_turn))
                for k, turn in enumerate(turns):
                    turn[0] = video_message(slots[starts[k]:starts[k + 1]], turn[0])
            else:
                turns[0][0] = video_message(slots, turns[0][0].replace("<video>", "").strip())
                visuals[0] = [(frame, s) for (frame, _), s in zip(frames, sizes)]
        sample = tokenize_conversation(self.tokenizer, self.template, self.system, [tuple(t) for t in turns],
                                       self.data.max_seq_length)
        kept = [v for per_turn in visuals[: sample.turns_kept] for v in per_turn]
        expected = sum(s * s for _, s in kept)
        found = count_image_tokens(self.tokenizer, sample.input_ids)
        if found != expected:  # a bug, not a bad sample
            raise RuntimeError(f"the prompt has {found} <IMG_CONTEXT> tokens but its pictures give {expected}")
        out = {"input_ids": torch.tensor(sample.input_ids), "labels": torch.tensor(sample.labels)}
        if kept:
            out["pixel_values"] = frames_to_pixel_values([p for p, _ in kept], self.config.tile_size)
            out["grid_sizes"] = torch.tensor([s for _, s in kept])
        return out


def estimate_length(entry: dict, builder: SampleBuilder) -> int:
    """A cheap length estimate for length-grouped batches (no media is read)."""
    text = json.dumps(entry.get("conversations") or entry.get("QA") or entry.get("image_bboxes") or "")
    return min(builder.data.max_seq_length, len(text) // 3 + builder.visual_estimate(entry))


class SFTDataset(Dataset):
    def __init__(self, specs: list[DatasetSpec], tokenizer, config: VideoChatOnlineConfig, data: DataConfig,
                 builder: SampleBuilder | None = None):
        """`builder`: how a conversation becomes tensors (default: the InternVL family's `SampleBuilder`)."""
        self.specs, self.data = specs, data
        self.builder = builder or SampleBuilder(tokenizer, config, data)
        rng = random.Random(data.seed)
        self.entries: list[list[dict]] = [s.entries or read_annotation(s.annotation) for s in specs]
        self.items: list[tuple[int, int]] = []
        for d, (spec, entries) in enumerate(zip(specs, self.entries)):
            whole, part = int(spec.repeat_time), spec.repeat_time - int(spec.repeat_time)
            chosen = list(range(len(entries))) * whole + sorted(rng.sample(range(len(entries)), round(part * len(entries))))
            self.items += [(d, i) for i in chosen]
        self.lengths = [estimate_length(self.entries[d][i], self.builder) for d, i in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def conversation(self, index: int, rng: random.Random | None = None) -> Conversation:
        """Sample `index` as a conversation (its random choices seeded by the index, as `load` makes them)."""
        d, i = self.items[index]
        spec = self.specs[d]
        return parse(self.entries[d][i], spec.data_root, rng=rng or self._rng(index),
                     max_frames=spec.max_frames or self.data.max_frames)

    def _rng(self, index: int) -> random.Random:
        return random.Random(self.data.seed * 1_000_003 + index)

    def load(self, index: int) -> dict:
        rng = self._rng(index)
        conv = self.conversation(index, rng)
        return self.builder.build(conv, self.specs[self.items[index][0]], rng)

    def __getitem__(self, index: int) -> dict:
        """Sample `index`, or the next one that loads; the input problems met on the way travel with it."""
        failed = []
        for attempt in range(len(self.items)):
            j = (index + attempt) % len(self.items)
            try:
                sample = self.load(j)
            except (InputError, OSError) as err:  # input problems only: a bug is raised
                d, i = self.items[j]
                failed.append((f"{self.specs[d].name}/{i}", f"{type(err).__name__}: {str(err).splitlines()[0]}"))
                log.warning("skipped sample %s: %s", *failed[-1])
                if len(failed) > self.data.max_failed_samples:
                    break
                continue
            sample["failed_samples"] = failed
            return sample
        raise FailedSamplesError(f"{len(failed)} samples in a row fail to load; the first: {failed[0][0]}: "
                                 f"{failed[0][1]}")


def collate(batch: list[dict], pad_token_id: int) -> dict:
    """Pad to the longest sample; pictures of all samples are concatenated in batch order."""
    length = max(len(b["input_ids"]) for b in batch)
    input_ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, b in enumerate(batch):
        n = len(b["input_ids"])
        input_ids[row, :n], labels[row, :n], attention_mask[row, :n] = b["input_ids"], b["labels"], 1
    out = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
           "failed_samples": [f for b in batch for f in b.get("failed_samples", [])]}
    pictures = [b for b in batch if "pixel_values" in b]
    if pictures:
        out["pixel_values"] = torch.cat([b["pixel_values"] for b in pictures])
        out["grid_sizes"] = torch.cat([b["grid_sizes"] for b in pictures])
    return out
