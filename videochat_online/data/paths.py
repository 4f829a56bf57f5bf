"""Paths named by data files (annotations, training samples) kept inside their root: a file may name only media
under the folder it was given, never an absolute path or one that leaves it by `..` or a link."""

from __future__ import annotations

import os
from pathlib import Path


def inside(root: Path, relative: str) -> tuple[Path, str | None]:
    """`relative` resolved under `root`, and None; or the unresolved path and why it is refused."""
    if os.path.isabs(relative) or Path(relative).drive:
        return Path(relative), f"path {relative!r} is absolute; it must be relative to its root"
    path = root / relative
    if str(root).startswith("<"):  # no root given: the path points nowhere and is read as missing
        return path, None
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        return path, f"path {relative!r} leaves its root {root}"
    return path, None
