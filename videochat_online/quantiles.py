"""The figures reported for measured times (time to first token, latency): the median and the 95th percentile."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def median_p95(values: Iterable[float]) -> tuple[float, float] | None:
    """(median, 95th percentile by nearest rank) of the values; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
