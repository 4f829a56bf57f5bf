"""Backbones: the model families a stream runs on, each one adapter behind the interface `StreamingSession` calls
(docs/backbones.md). A checkpoint's `model_type` picks the adapter, never its name or path.

    engine = load_engine("Qwen/Qwen3-VL-4B-Instruct", device="cuda")   # or a local folder
    session = StreamingSession(engine, engine.new_memory(MemorySettings(mode="recent")))

An adapter is a class with a `name` and the `model_types` it reads, registered in `BACKBONES` by `@register`,
by an entry point in the `videochat_online.backbones` group, or named as `package.module:Class` by `--backbone`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError
from ..registry import Registry

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
