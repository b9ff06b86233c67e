"""Summary statistics for timing samples (no numpy: the orchestrator stays light)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float], digits: int = 4) -> dict[str, float]:
    """Median and spread: min, max, interquartile range, p99, count."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "median": round(percentile(samples, 50), digits),
        "p99": round(percentile(samples, 99), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "iqr": round(percentile(samples, 75) - percentile(samples, 25), digits),
    }


def gain(ours: float | None, reference: float | None, higher_is_better: bool) -> float | None:
    """How many times better than the reference (> 1 is better), whatever the metric's direction."""
    if ours is None or reference is None or ours <= 0 or reference <= 0:
        return None
    return round(ours / reference if higher_is_better else reference / ours, 2)
