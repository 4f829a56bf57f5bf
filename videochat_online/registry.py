"""Plug-ins by name: memory policies, benchmarks and protocols (docs/design.md, "Extending").

A plug-in is a class with a `name`. It is known to a `Registry` in one of three ways: its module is one of the
registry's built-in modules (imported on first lookup), an installed package names it in the registry's entry-point
group (`[project.entry-points."videochat_online.memory"]`, ...), or the option names it by path,
`package.module:Class` (`--memory my_lab.memory:KeyFrames`).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from importlib.metadata import entry_points

from .settings import SettingsError


class Registry:
    """Classes by name, filled by `register`, the built-in modules, entry points and `module:Class` paths."""

    def __init__(self, what: str, flag: str, group: str, builtin: tuple[str, ...] = ()):
        self.what, self.flag, self.group, self.builtin = what, flag, group, builtin
        self.entries: dict[str, type] = {}
        self.aliases: dict[str, str] = {}  # a `module:Class` path -> the name its class registered itself under
        self._loaded = False

    def register(self, cls: type) -> type:
        """Make `cls` known by its `name` (a class decorator)."""
        self.entries[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self.entries.pop(name, None)
        self.aliases = {path: key for path, key in self.aliases.items() if key != name}

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtin:
            import_module(module)
        for point in entry_points(group=self.group):
            if point.name not in self.entries:
                found = point.load()
                if isinstance(found, type):
                    self.entries.setdefault(point.name, found)

    def get(self, name: str) -> type:
        """The class registered as `name`, or the one `name` = `package.module:Class` points to; a `SettingsError`
        naming the option otherwise."""
        self._load()
        name = self.aliases.get(name, name)
        if name in self.entries:
            return self.entries[name]
        module, sep, attr = str(name).partition(":")
        if not sep:
            raise SettingsError(f"{self.flag} {name}: use one of {', '.join(self.names())}, or a "
                                f"package.module:Class path")
        try:
            cls = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise SettingsError(f"{self.flag} {name}: cannot load that {self.what} ({err})") from None
        if not isinstance(cls, type) or not isinstance(getattr(cls, "name", None), str):
            raise SettingsError(f"{self.flag} {name}: not a {self.what} class (it needs a `name`)")
        known = [key for key, entry in self.entries.items() if entry is cls]
        if known:  # its module registered it on import
            self.aliases[name] = known[0]
        else:
            self.entries[name] = cls
        return cls

    def key(self, name: str) -> str:
        """The name `name` is registered under: itself, or for a path the name its class registered itself as."""
        self.get(name)
        return self.aliases.get(name, name)

    def names(self) -> list[str]:
        """The registered names (paths given as `module:Class` included), in registration order."""
        self._load()
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self):
        self._load()
        return list(self.entries.items())

    def values(self):
        self._load()
        return list(self.entries.values())
