"""Latency summaries: the median and the 99th percentile of a set of samples, in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile of `values` by the nearest-rank method (no interpolation).

    Nearest rank always returns a value that was measured, so a p99 of 100 samples is the
    second-largest sample, never a blend of the two largest.

    Args:
        values: the samples, in any order; at least one.
        q: the percentile, 0 < q <= 100.

    Returns:
        The sample at rank ceil(q/100 * n).

    Raises:
        ValueError: no samples, or q out of range.
    """
    if not values:
        raise ValueError("a percentile of no samples")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LatencySummary:
    """How long something took over many samples, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values, rounded to the microsecond."""
        return {key: round(value, 3) if isinstance(value, float) else value for key, value in asdict(self).items()}


def summarize_s(samples_s: Sequence[float]) -> LatencySummary | None:
    """Summarize samples given in seconds; None when there are none."""
    if not samples_s:
        return None
    return LatencySummary(
        count=len(samples_s),
        p50_ms=percentile(samples_s, 50) * 1000,
        p99_ms=percentile(samples_s, 99) * 1000,
        max_ms=max(samples_s) * 1000,
    )
