"""Reading benchmark annotation files safely: the JSON itself, each field's type, times a video can have, and
video paths kept inside their root (`data.paths.inside`). Every problem is one `OVBenchError` line naming the
file, the row and the field; a path outside its root is a message the run turns into failed questions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..data.paths import inside
from ..errors import InputError

MOST_SECONDS = 86400.0  # a time in an annotation file: at most a day (no benchmark video is longer)


class OVBenchError(InputError):
    """A question file or entry that cannot be used."""


def read_annotations(file: Path) -> list:
    """A benchmark's annotation file: a JSON list, or one line naming the file and the problem."""
    try:
        data = json.loads(file.read_text())
    except OSError as err:
        raise OVBenchError(f"{file}: cannot read it ({err.strerror}); fetch it with "
                           "`python -m videochat_online.tools.fetch_benchmarks`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OVBenchError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(data, list):
        raise OVBenchError(f"{file}: expected a JSON list")
    return data


_KINDS = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}


def field(row: dict, key: str, kind: type, where: str):
    """`row[key]`, which must be of `kind` (int: not a bool; float: any finite number but a bool; str: not empty)."""
    if key not in row:
        raise OVBenchError(f"{where}: missing '{key}'")
    value = row[key]
    ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
    if ok and kind is float:
        ok = math.isfinite(value)
    if ok and kind is str:
        ok = bool(value.strip())
    if not ok:
        raise OVBenchError(f"{where}: '{key}' must be {_KINDS[kind]}{' (finite)' if kind is float else ''}, "
                           f"got {value!r:.60}")
    return value


def check_time(value, where: str, key: str) -> float:
    """A time in seconds that a video can have: a finite number, >= 0, at most a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MOST_SECONDS:
        raise OVBenchError(f"{where}: '{key}' {value!r:.60} is not a time in seconds (0 to {MOST_SECONDS:g})")
    return float(value)


def confined(root: Path, relative: str) -> Path:
    """`relative` under `root`, or an `OVBenchError` saying why it is refused (`inside`)."""
    path, refused = inside(root, relative)
    if refused:
        raise OVBenchError(refused)
    return path
