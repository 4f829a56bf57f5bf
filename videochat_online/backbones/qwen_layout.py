"""How a Qwen-VL family lays frames into a prompt, with no model: pixels in temporal patches, the vision text
of held patches, and the 3-D M-RoPE position ids of a prompt. The engine (`qwen_vl.py`) streams with it and
training (`train/qwen.py`) builds samples with it, so the two cannot disagree."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import CheckpointError
from ..settings import SettingsError

VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
VIDEO_PAD, IMAGE_PAD = "<|video_pad|>", "<|image_pad|>"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
DEFAULT_FRAME_SIZE = 448  # pixels a side when neither the checkpoint nor an option says
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def patchify(videos: torch.Tensor, patch_size: int, merge_size: int) -> torch.Tensor:
    """Normalised frames [P, T, 3, S, S] (P patches of T frames) -> the vision tower's input rows
    [P * (S/p)^2, 3 * T * p * p], merge-size blocks of patches together (the layout of transformers' Qwen-VL
    video processors)."""
    n, t, c, h, w = videos.shape
    gh, gw, m, p = h // patch_size, w // patch_size, merge_size, patch_size
    x = videos.view(n, t, c, gh // m, m, p, gw // m, m, p)  # [P, T, C, bh, m, p, bw, m, p]
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # [P, bh, bw, m, m, C, T, p, p]
    return x.reshape(n * gh * gw, c * t * p * p)


@dataclass(frozen=True)
class QwenLayout:
    """One family's layout at one frame size. `timestamped`: Qwen3-VL (a `<t seconds>` text and a vision block per
    patch, t the mean of its first and last frames); else Qwen2.5-VL (one video block, temporal ids the seconds
    since the first held patch times `tokens_per_second`)."""

    name: str
    timestamped: bool
    frame_size: int
    patch_size: int
    merge_size: int
    frames_per_patch: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_ids: tuple[int, int]  # <|video_pad|>, <|image_pad|>
    tokens_per_second: float | None = None

    @property
    def grid_size(self) -> int:
        """Merged tokens a side of one patch."""
        return self.frame_size // (self.patch_size * self.merge_size)

    @classmethod
    def of(cls, name: str, model_config, tokenizer, root: Path | None, frame_size: int | None) -> QwenLayout:
        """The layout of a checkpoint: its config, tokenizer and processor files, at `frame_size` (else the
        checkpoint's `streaming.frame_size`, else 448); a one-line error for a size its processor cannot grid."""
        vision = model_config.vision_config
        timestamped = model_config.model_type == "qwen3_vl"
        processor = {}
        if root is not None:  # the video processor's settings, else the image processor's
            processor = _read_json(root / "video_preprocessor_config.json") or _read_json(root / "preprocessor_config.json")
        default_mean, default_std = ((0.5,) * 3, (0.5,) * 3) if timestamped else (CLIP_MEAN, CLIP_STD)
        vocab = tokenizer.get_vocab()
        absent = [t for t in (VISION_START, VISION_END, VIDEO_PAD, IMAGE_PAD, STOP_TOKENS[0]) if t not in vocab]
        if absent:
            raise CheckpointError(f"{root}: the tokenizer lacks the special tokens {absent}")
        streaming = getattr(model_config, "streaming", None) or {}
        size = frame_size or streaming.get("frame_size") or DEFAULT_FRAME_SIZE
        layout = cls(name, timestamped, size, vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size,
                     tuple(processor.get("image_mean", default_mean)), tuple(processor.get("image_std", default_std)),
                     (vocab[VIDEO_PAD], vocab[IMAGE_PAD]), getattr(vision, "tokens_per_second", None))
        limits = processor.get("size") or {"shortest_edge": processor.get("min_pixels"),
                                           "longest_edge": processor.get("max_pixels")}
        layout.check_frame_size(limits)
        return layout

    def check_frame_size(self, limits: dict) -> None:
        size, factor = self.frame_size, self.patch_size * self.merge_size
        if size % factor:
            raise SettingsError(f"--frame-size {size}: {self.name} grids frames in blocks of {factor} pixels (patch "
                                f"{self.patch_size} x merge {self.merge_size}); give a multiple of {factor}")
        low, high = limits.get("shortest_edge"), limits.get("longest_edge")  # pixels a frame, min and max
        if (low and size * size < low) or (high and size * size > high):
            raise SettingsError(f"--frame-size {size}: {size * size} pixels a frame is outside the processor's "
                                f"{low} to {high}")

    # frames -> pixels
    def pixel_values(self, frames: Sequence) -> torch.Tensor:
        """Frames (PIL images or HxWx3 uint8 arrays), a whole number of patches -> [P, T, 3, S, S], resized as the
        processors resize (bicubic) and normalised with the processor's mean and std."""
        if len(frames) % self.frames_per_patch:
            raise ValueError(f"{len(frames)} frames do not make whole temporal patches of {self.frames_per_patch}")
        size, arrays = self.frame_size, []
        for frame in frames:
            image = (frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame))).convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BICUBIC)
            arrays.append(np.asarray(image))
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255  # [F, 3, S, S]
        x = (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)
        return x.view(-1, self.frames_per_patch, 3, size, size)

    def patch_time(self, first: float | None, last: float | None) -> float | None:
        """The time a patch is held at: Qwen3-VL's the mean of its first and last frames' (what its processor
        writes), Qwen2.5-VL's its first frame's (temporal ids count patches from there)."""
        if first is None or last is None:
            return None
        return (first + last) / 2 if self.timestamped else first

    # held patches -> prompt text and positions
    def vision_text(self, patches: Sequence[tuple[float | None, int]]) -> str:
        """The text of held patches, each (time, tokens)."""
        if self.timestamped:
            return "".join(f"<{t or 0.0:.1f} seconds>{VISION_START}{VIDEO_PAD * n}{VISION_END}" for t, n in patches)
        return VISION_START + VIDEO_PAD * sum(n for _, n in patches) + VISION_END

    def images_text(self, tokens_per_image: Sequence[int]) -> str:
        return "".join(VISION_START + IMAGE_PAD * n + VISION_END for n in tokens_per_image)

    def temporal_ids(self, times: Sequence[float | None]) -> list[int]:
        """Each held patch's temporal offset: 0 for Qwen3-VL (time is in its text); for Qwen2.5-VL the seconds
        since the first held patch times `tokens_per_second`, floored as transformers does."""
        if self.timestamped or not times:
            return [0] * len(times)
        first = times[0] or 0.0
        return [int(((t or 0.0) - first) * self.tokens_per_second + 1e-6) for t in times]

    def positions(self, ids: torch.Tensor, grids: list[tuple[int, int]], temporal: list[int],
                  per_run: Sequence[int] | None = None) -> torch.Tensor:
        """3-D position ids [3, L] of a prompt's tokens [L]: text counts on by one; a run of visual tokens holding
        patches of (h, w) merged tokens gives each token (start + its patch's temporal offset, start + row,
        start + column), and the text after it starts at start + the largest side (transformers' get_rope_index).
        A run of image tokens, or of Qwen3-VL's video tokens, is one patch; a Qwen2.5-VL video run holds
        `per_run[k]` patches (default: all that are left)."""
        is_visual = torch.isin(ids, torch.tensor(self.pad_ids, device=ids.device))
        image_run = (ids == self.pad_ids[1]).tolist()
        counts = iter(per_run or ())
        out, cur, patch, start = [], 0, 0, 0
        for visual, group in itertools.groupby(is_visual.tolist()):
            n = len(list(group))
            if not visual:
                out.append(torch.arange(n).expand(3, n) + cur)
                cur, start = cur + n, start + n
                continue
            count = 1 if self.timestamped or image_run[start] else next(counts, len(grids) - patch)
            run, side = [], 0
            for (h, w), t in zip(grids[patch:patch + count], temporal[patch:patch + count]):
                rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
                run.append(torch.stack([torch.full((h * w,), t), rows.flatten(), cols.flatten()]) + cur)
                side = max(side, h, w)
            block = torch.cat(run, dim=1) if run else torch.zeros(3, 0, dtype=torch.long)
            if block.shape[1] != n:
                raise ValueError(f"the prompt has {n} visual tokens in a run but its patches give {block.shape[1]}")
            out.append(block)
            patch, cur, start = patch + count, cur + side, start + n
        if patch != len(grids):
            raise ValueError(f"the prompt has visual slots for {patch} patches but {len(grids)} were given")
        return torch.cat(out, dim=1)  # [3, L]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
