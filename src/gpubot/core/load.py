"""How busy a GPU is, for the status indicators of `/gpu realtime`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gpubot.core.models import GpuSample


class LoadLevel(str, enum.Enum):
    HIGH = "high load"
    ACTIVE = "active"
    IDLE = "idle"
    UNKNOWN = "unknown"
    LOST = "lost"


@dataclass(frozen=True)
class LoadThresholds:
    """Utilization (percent) at or above which a GPU counts as active, and as under high load."""

    active_pct: int = 10
    high_load_pct: int = 80


def load_level(sample: GpuSample, thresholds: LoadThresholds) -> LoadLevel:
    """Classify a GPU by its utilization; a GPU that reports none is unknown, not idle."""
    if sample.lost:
        return LoadLevel.LOST
    if sample.utilization_gpu_pct is None:
        return LoadLevel.UNKNOWN
    if sample.utilization_gpu_pct >= thresholds.high_load_pct:
        return LoadLevel.HIGH
    if sample.utilization_gpu_pct >= thresholds.active_pct:
        return LoadLevel.ACTIVE
    return LoadLevel.IDLE
