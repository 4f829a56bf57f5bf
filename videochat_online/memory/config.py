"""`MemorySettings`: the memory mode and every known policy's options, checked when made (one-line
`SettingsError`), before any model is loaded; a checkpoint records the chosen policy's options only.

    MemorySettings()                                   # the pyramid, 2,2,12 frames, intervals 8,4,1
    MemorySettings.from_dict(model.config.memory)      # what a checkpoint was trained with
    settings.build(grid_size)                          # a fresh memory (a MemoryPolicy)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import logging

from ..settings import SettingsError
from .base import POLICIES, MemoryPolicy, all_options

log = logging.getLogger(__name__)
DEFAULT_MODE = "pyramid"  # the memory of a model that records none


@dataclass(frozen=True, init=False)
class MemorySettings:
    """The memory mode (a registered policy's name, or a `package.module:Class` path) and the options of every
    known policy, not only the chosen one's (defaults: each policy's): a protocol picks the mode itself and a live
    stream keeps one memory of each."""

    mode: str
    values: dict  # option name -> value, every registered policy's

    def __init__(self, mode: str = DEFAULT_MODE, **values: Any):
        mode = POLICIES.key(mode)  # a SettingsError naming the known ones
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
        return POLICIES.get(self.mode)

    def check(self, grid_size: int | None = None) -> None:
        """Every policy's check (a SettingsError names the option), against a model grid when given."""
        for policy in POLICIES.values():
            policy.check(self, grid_size)

    def replace(self, **changes: Any) -> MemorySettings:
        return MemorySettings(**{"mode": self.mode, **self.values, **changes})

    def to_dict(self) -> dict:
        """JSON-ready, the chosen policy's options only: {"mode": ..., option: value, ...} (lists for tuples), as a
        checkpoint's config records it."""
        own = {o.name for o in self.policy.options}
        return {"mode": self.mode, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()
                                      if k in own}}

    @classmethod
    def from_dict(cls, data: dict, source: str = "memory") -> MemorySettings:
        """Settings recorded as `to_dict` wrote them. Options of a policy not known here (a plug-in absent from
        this environment) are left out with a warning; the mode itself must be known."""
        if not isinstance(data, dict):
            raise SettingsError(f"{source}: expected an object of memory settings, got {type(data).__name__}")
        known = all_options()
        absent = sorted(k for k in data if k != "mode" and k not in known)
        if absent:
            log.warning("%s: leaving out settings of memory policies not installed here: %s", source,
                        ", ".join(absent))
        try:
            return cls(**{k: v for k, v in data.items() if k not in absent})
        except SettingsError as err:
            raise SettingsError(f"{source}: {err}") from None

    def build(self, grid_size: int, frames_per_entry: int = 1) -> MemoryPolicy:
        """A fresh, empty memory of this mode for frames of a `grid_size` x `grid_size` feature grid; with
        `frames_per_entry` > 1 (a backbone encoding temporal patches), each entry it holds is a patch of that many
        frames, and a policy whose size is in frames says how many entries that is (`MemoryPolicy.per_entry`)."""
        settings = self if frames_per_entry == 1 else self.policy.per_entry(self, frames_per_entry)
        return self.policy.from_settings(settings, grid_size)
