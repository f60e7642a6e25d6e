"""Recent utilization per GPU, in fixed time buckets, for the Home tab's trend sparkline."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpubot.core.models import HostSample


@dataclass
class _Bucket:
    index: int
    total_pct: float = 0.0
    count: int = 0


class UtilizationHistory:
    """Keeps, per GPU UUID, the mean utilization of each of the last `buckets` spans of `window / buckets`.

    Memory is bounded by the number of GPUs times `buckets`, however often it is fed.
    """

    def __init__(self, window: timedelta = timedelta(hours=1), buckets: int = 12) -> None:
        self._bucket_s = window.total_seconds() / buckets
        self._buckets = buckets
        self._series: dict[str, deque[_Bucket]] = {}
        # Trends already computed, valid until the next record or the next bucket: every Home publish
        # asks for every GPU's, and between two samples the answers cannot change.
        self._trends: dict[str, tuple[float | None, ...]] = {}
        self._trends_index: int | None = None

    def record(self, sample: HostSample, at: datetime) -> None:
        """Add one sample's utilization figures (unknown ones are skipped)."""
        index = self._index(at)
        self._trends.clear()
        for gpu in sample.gpus:
            if gpu.utilization_gpu_pct is None:
                continue
            series = self._series.setdefault(gpu.uuid, deque(maxlen=self._buckets))
            if not series or series[-1].index != index:
                series.append(_Bucket(index))
            series[-1].total_pct += gpu.utilization_gpu_pct
            series[-1].count += 1

    def trend(self, uuid: str, now: datetime) -> tuple[float | None, ...]:
        """Mean utilization per bucket, oldest first, ending with the current one; None where none was seen."""
        latest = self._index(now)
        if latest != self._trends_index:
            self._trends.clear()
            self._trends_index = latest
        trend = self._trends.get(uuid)
        if trend is None:
            by_index = {bucket.index: bucket for bucket in self._series.get(uuid, ())}
            trend = tuple(
                bucket.total_pct / bucket.count if bucket and bucket.count else None
                for bucket in (by_index.get(index) for index in range(latest - self._buckets + 1, latest + 1))
            )
            self._trends[uuid] = trend
        return trend

    def _index(self, at: datetime) -> int:
        return int(at.timestamp() // self._bucket_s)
