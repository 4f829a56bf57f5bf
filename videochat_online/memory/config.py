"""`MemorySettings`: the memory mode and every registered policy's options, checked when made (one-line
`SettingsError`), before any model is loaded.

    MemorySettings()                                   # the pyramid, 2,2,12 frames, intervals 8,4,1
    MemorySettings.from_dict(model.config.memory)      # what a checkpoint was trained with
    settings.build(grid_size)                          # a fresh memory (a MemoryPolicy)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import SettingsError
from .base import POLICIES, MemoryPolicy, all_options


@dataclass(frozen=True, init=False)
class MemorySettings:
    """The memory mode (a registered policy's name) and the options of every policy, not only the chosen one's
    (defaults: each policy's): a protocol picks the mode itself and a live stream keeps one memory of each."""

    mode: str
    values: dict  # option name -> value, every registered policy's

    def __init__(self, mode: str = "pyramid", **values: Any):
        if mode not in POLICIES:
            raise SettingsError(f"--memory {mode}: use one of {', '.join(POLICIES)}")
        known = all_options()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"unknown memory setting {unknown[0]}; known: {', '.join(known)}")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "values", {name: option.parse(values.get(name, option.default))
                                            for name, (option, _) in known.items()})
        self.check()

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def policy(self) -> type[MemoryPolicy]:
        return POLICIES[self.mode]

    def check(self, grid_size: int | None = None) -> None:
        """Every policy's check (a SettingsError names the option), against a model grid when given."""
        for policy in POLICIES.values():
            policy.check(self, grid_size)

    def replace(self, **changes: Any) -> MemorySettings:
        return MemorySettings(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        """JSON-ready: {"mode": ..., option: value, ...} (lists for tuples), as a checkpoint's config records it."""
        return {"mode": self.mode, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()}}

    @classmethod
    def from_dict(cls, data: dict, source: str = "memory") -> MemorySettings:
        """Settings recorded as `to_dict` wrote them; keys of policies not registered here are refused by name."""
        if not isinstance(data, dict):
            raise SettingsError(f"{source}: expected an object of memory settings, got {type(data).__name__}")
        try:
            return cls(**data)
        except SettingsError as err:
            raise SettingsError(f"{source}: {err}") from None

    def build(self, grid_size: int) -> MemoryPolicy:
        """A fresh, empty memory of this mode for frames of a `grid_size` x `grid_size` feature grid."""
        return self.policy.from_settings(self, grid_size)
