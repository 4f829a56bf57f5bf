"""How a stream is watched: its frame rate and its memory (docs/streaming.md, "Rate and memory"). Every command
resolves them here, in one way: a value given wins, else the one the checkpoint records, else the default below.
"""

from __future__ import annotations

from dataclasses import dataclass

from .memory import MemorySettings

DEFAULT_FPS = 2.0  # a model that records no frame rate is watched at 2 fps
TRAINING_FPS = 1.0  # the rate training samples videos at, unless the start checkpoint or the recipe says another
FRAME_BATCH = 8  # frames per vision-tower batch


@dataclass(frozen=True)
class StreamingConfig:
    """A stream's frame rate and memory, resolved."""

    fps: float
    memory: MemorySettings

    @classmethod
    def resolve(cls, config=None, fps: float | None = None, memory: dict | None = None,
                default_fps: float = DEFAULT_FPS) -> StreamingConfig:
        """For a model's config (None: none loaded): `fps` and the `memory` options given on top of what the
        checkpoint records (`config.fps`, `config.memory`), the defaults where neither says."""
        return cls(resolve_fps(fps, config, default_fps), resolve_memory(memory or {}, config))


def resolve_memory(overrides: dict, config=None) -> MemorySettings:
    """The model's recorded memory (`config.memory`; the defaults when it has none) with `overrides` on top,
    checked against the model's feature grid."""
    recorded = getattr(config, "memory", None)
    base = MemorySettings.from_dict(recorded, "the model's config.json memory") if recorded else MemorySettings()
    settings = base.replace(**overrides)
    if config is not None:
        settings.check(config.grid_size)
    return settings


def resolve_fps(fps: float | None, config=None, default: float = DEFAULT_FPS) -> float:
    """`fps` when given, else the rate the model was trained at, else `default`."""
    return fps or getattr(config, "fps", None) or default
