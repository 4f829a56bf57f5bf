"""Paths named by data files (annotations, training samples) kept inside their root: a file may name only media
under the folder it was given, never an absolute path or one that climbs out of it with `..`. Links inside the
root are the operator's own layout (a folder of links to a dataset elsewhere) and are followed."""

from __future__ import annotations

import os
from pathlib import Path


def inside(root: Path, relative: str) -> tuple[Path, str | None]:
    """`relative` joined to `root`, and None; or the unjoined path and why it is refused."""
    if os.path.isabs(relative) or Path(relative).drive:
        return Path(relative), f"path {relative!r} is absolute; it must be relative to its root"
    parts = Path(os.path.normpath(relative)).parts
    if parts and parts[0] == "..":
        return root / relative, f"path {relative!r} leaves its root {root}"
    return root / relative, None
