"""What every memory policy is: a frame container behind a small interface, registered by name.

A policy states its options once (`Option`); the CLI flags, lmms-eval's `model_args` keys, a checkpoint's
recorded memory and `MemorySettings` are read from those statements, so a new policy is one file and its
`@register` (tests/toy_memory.py is one).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..registry import Registry
from ..settings import SettingsError, parse_int_list, show_ints

if TYPE_CHECKING:  # the memory modules import torch only where tensors are computed: options stay light to import
    import torch


@dataclass
class MemoryFrame:
    """One frame held in memory: its feature grid [C, h, w] at the resolution of its level."""

    index: int
    level: int
    grid: torch.Tensor
    timestamp: float | None = None
    mean: torch.Tensor = field(init=False, repr=False)  # [C] float32, the pyramid's eviction feature

    def __post_init__(self):
        self.mean = self.grid.float().mean(dim=(1, 2))

    @property
    def tokens(self) -> torch.Tensor:
        """[h*w, C], row-major."""
        c, h, w = self.grid.shape
        return self.grid.reshape(c, h * w).transpose(0, 1)

    @property
    def num_tokens(self) -> int:
        return self.grid.shape[1] * self.grid.shape[2]


@dataclass(frozen=True)
class Option:
    """One setting of a policy. `kind` is int, bool or "ints" (a list such as 2,2,12; lmms-eval's 2-2-12).

    The flag is `--name` with dashes (`--grid-sizes`); lmms-eval's key and the checkpoint's field are `name`.
    A default of None means "derived" (the pyramid's grid sizes come from the model's grid)."""

    name: str
    default: Any
    help: str
    kind: Any = int
    minimum: int | None = None  # the smallest value allowed (an int option)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """A user's value (text from a command line or model_args, or a Python value) -> this option's type."""
        if value is None:
            if self.default is None:
                return None
            raise SettingsError(f"{self.flag}: give a value")
        if self.kind == "ints":
            return parse_int_list(value, self.flag)
        text = str(value).strip().lower()
        if self.kind is bool and text in ("true", "false", "1", "0"):
            return text in ("true", "1")
        if self.kind is int and re.fullmatch(r"-?\d+", text):
            if self.minimum is not None and int(text) < self.minimum:
                raise SettingsError(f"{self.flag} {value}: must be >= {self.minimum} ({self.help})")
            return int(text)
        raise SettingsError(f"{self.flag} {value}: expected {'true or false' if self.kind is bool else 'an integer'}")

    def show(self, value: Any) -> str:
        return show_ints(value) if self.kind == "ints" and value is not None else str(value)


class MemoryPolicy(ABC):
    """A memory of a stream: `add` takes frame `index` as its full-resolution grid [C, g, g]; `frames()` is what
    the model is shown now, in time order (`by_level`: grouped by level; `kept`: every frame it stores, which it
    may show later); `reset` forgets everything; `max_tokens` is the most visual tokens it ever shows. `check`
    raises a SettingsError naming the option when settings cannot build it (for a model whose grid is
    `grid_size`, when known); `from_settings` builds an empty one."""

    name: ClassVar[str]  # the --memory value
    options: ClassVar[tuple[Option, ...]] = ()
    frames_option: ClassVar[str | None] = None  # the option that says how many full frames it shows, if one does

    @classmethod
    def check(cls, settings, grid_size: int | None = None) -> None:
        pass

    @classmethod
    @abstractmethod
    def from_settings(cls, settings, grid_size: int) -> MemoryPolicy: ...

    @classmethod
    def per_entry(cls, settings, frames_per_entry: int):
        """The settings for a backbone whose memory entries are temporal patches of `frames_per_entry` frames
        (a SettingsError saying why when this policy cannot hold them). Counts are in entries unless a policy
        says otherwise here."""
        return settings

    @classmethod
    def training_grids(cls, settings, grid_size: int, num_frames: int) -> list[int]:
        """The grid side of each of a training clip's `num_frames` frames, as this memory would show them (training
        arranges a clip's tokens so); a policy that does not say cannot be trained with."""
        raise SettingsError(f"--memory {cls.name}: this policy does not say how training arranges a clip's frames "
                            "(a `training_grids` method); train with the pyramid, window, uniform or recent")

    @abstractmethod
    def add(self, features: torch.Tensor, index: int, timestamp: float | None = None) -> None: ...

    @abstractmethod
    def frames(self) -> list[MemoryFrame]: ...

    @abstractmethod
    def reset(self) -> None: ...

    @property
    @abstractmethod
    def max_tokens(self) -> int: ...

    def by_level(self) -> list[list[MemoryFrame]]:
        return [self.frames()]

    def kept(self) -> list[MemoryFrame]:
        """Every frame it stores, so may show now or later (the shown ones, unless it keeps more)."""
        return self.frames()


POLICIES = Registry("memory policy", "--memory", "videochat_online.memory")


def register(policy: type[MemoryPolicy]) -> type[MemoryPolicy]:
    """Make a policy known by its name: `--memory NAME`, its options as flags, model_args and config fields."""
    taken = {o.name: p.name for p in POLICIES.entries.values() if p.name != policy.name for o in p.options}
    clash = [o.name for o in policy.options if o.name in taken]
    if clash:
        raise ValueError(f"memory policy {policy.name}: option {clash[0]} is already {taken[clash[0]]}'s")
    return POLICIES.register(policy)


def all_options() -> dict[str, tuple[Option, str]]:
    """Every known policy's options: name -> (option, policy name)."""
    return {o.name: (o, p.name) for p in POLICIES.values() for o in p.options}
