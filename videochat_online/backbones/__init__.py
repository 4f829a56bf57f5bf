"""Backbones: the model families a stream runs on, each one adapter behind the interface `StreamingSession` calls
(docs/backbones.md). A checkpoint's `model_type` picks the adapter, never its name or path.

    engine = load_engine("Qwen/Qwen3-VL-4B-Instruct", device="cuda")   # or a local folder
    session = StreamingSession(engine, engine.new_memory(MemorySettings(mode="recent")))

An adapter is a class with a `name` and the `model_types` it reads, registered in `BACKBONES` by `@register`,
by an entry point in the `videochat_online.backbones` group, or named as `package.module:Class` by `--backbone`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import CheckpointError
from ..registry import Registry


class Backbone(Protocol):
    """What the streaming core calls (`StreamingSession`, the evaluation's `Driver`, the CLI). `ChatEngine` is the
    InternVL family's, `qwen_vl.Qwen3VLEngine` / `Qwen25VLEngine` the Qwen-VL ones', tests/test_toy_backbone.py a
    toy's."""

    name: ClassVar[str]  # --backbone NAME
    model_types: ClassVar[tuple[str, ...]]  # the config.json model_types it reads
    frames_per_patch: int  # frames encoded together into one memory entry (a temporal patch)
    config: Any  # what streams read of the checkpoint: grid_size, fps and memory (None: not recorded)
    system_message: str | None
    kv_cache: str  # "dynamic" or "static"

    @classmethod
    def from_pretrained(cls, path: str, **options) -> Backbone: ...

    def patch_time(self, first: float | None, last: float | None) -> float | None:
        """The time memory holds a patch at, from its first and last frames' times."""

    def new_memory(self, settings) -> Any:
        """A fresh memory (a `MemoryPolicy`) of these `MemorySettings` for this backbone's entries."""

    def encode_frames(self, frames: Sequence) -> Any:
        """Frames, a whole number of patches -> one feature grid per patch [P, C, h, w] (what memory pools)."""

    def video_prompt(self, system: str | None, history: Sequence[tuple[str, str]], held: Sequence,
                     question: str) -> tuple[str, Any]:
        """The prompt for a question about the `MemoryFrame`s held, and what fills its visual slots."""

    def generate(self, prompt: str, visual: Any, max_new_tokens: int = 256, **options) -> Any:
        """A `chat.Reply`; `prefix_cache` (a `PrefixCache`) is reused where it shares the prompt's prefix."""

    def choose(self, prompt: str, visual: Any, replies: Sequence[str], prefix_cache=None) -> Any:
        """The most likely of `replies`, as a `chat.Reply`."""

    def generate_stream(self, prompt: str, visual: Any, max_new_tokens: int = 256, **options) -> Iterator[str]:
        """The reply's text so far, after each token."""

BACKBONES = Registry("backbone", "--backbone", "videochat_online.backbones",
                     builtin=("videochat_online.chat", "videochat_online.backbones.qwen_vl"))


def register(cls: type) -> type:
    """Make a backbone adapter known: by its `name`, and for each of its `model_types`."""
    return BACKBONES.register(cls)


def backbone_for(model_type: str | None, where: str) -> type:
    """The adapter that reads checkpoints of this `model_type`; a one-line CheckpointError naming the known ones."""
    for cls in BACKBONES.values():
        if model_type in getattr(cls, "model_types", ()):
            return cls
    known = ", ".join(t for cls in BACKBONES.values() for t in getattr(cls, "model_types", ()))
    raise CheckpointError(f"{where}: model_type {model_type!r} is not a backbone this project streams with "
                          f"(known: {known})")


def model_type_of(root: Path) -> str | None:
    """A checkpoint folder's `model_type`, read from its config.json (None: no readable config; the adapter's own
    loading then says what is wrong)."""
    try:
        raw = json.loads((root / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return raw.get("model_type") if isinstance(raw, dict) else None


def load_engine(path_or_id: str, backbone: str | None = None, **options):
    """The engine for a checkpoint folder or hub id: the adapter its config's `model_type` names (`backbone`: a
    registered name or `package.module:Class`, to choose one yourself); `options` go to its `from_pretrained`."""
    from ..model.checkpoint import resolve

    root = resolve(path_or_id)
    if backbone is not None:
        cls = BACKBONES.get(backbone)
    else:
        model_type = model_type_of(root)
        cls = backbone_for(model_type, str(root / "config.json")) if model_type is not None else BACKBONES.get("internvl")
    return cls.from_pretrained(str(root), **options)
