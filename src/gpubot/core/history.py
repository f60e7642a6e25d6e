"""Recent utilization per GPU, in fixed time buckets, for the Home tab's trend sparkline."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpubot.core.models import HostSample


@dataclass(frozen=True)
class RecentMinute:
    """A GPU's average utilization over one minute, as counted in the database, and the seconds it was seen."""

    uuid: str
    at: datetime
    utilization_pct: float
    observed_s: float


@dataclass
class _Bucket:
    index: int
    total_pct: float = 0.0
    count: float = 0.0


class UtilizationHistory:
    """Keeps, per GPU UUID, the mean utilization of each of the last `buckets` spans of `window / buckets`.

    Memory is bounded by the number of GPUs times `buckets`, however often it is fed.
    """

    def __init__(self, window: timedelta = timedelta(hours=1), buckets: int = 12) -> None:
        self.window = window
        self._bucket_s = window.total_seconds() / buckets
        self._buckets = buckets
        self._series: dict[str, deque[_Bucket]] = {}
        # Trends already computed, valid until the next record or the next bucket: every Home publish
        # asks for every GPU's, and between two samples the answers cannot change.
        self._trends: dict[str, tuple[float | None, ...]] = {}
        self._trends_index: int | None = None

    def record(self, sample: HostSample, at: datetime) -> None:
        """Add one sample's utilization figures (unknown ones are skipped)."""
        for gpu in sample.gpus:
            if gpu.utilization_gpu_pct is not None:
                self.add(gpu.uuid, at, gpu.utilization_gpu_pct)

    def seed(self, minutes: Iterable[RecentMinute], interval: timedelta) -> None:
        """Add what the database counted in the last minutes (oldest first), each weighed as the samples it holds.

        A daemon that starts (or takes over from one that died) shows the trends of the last hour at once.
        """
        for minute in minutes:
            self.add(minute.uuid, minute.at, minute.utilization_pct, minute.observed_s / interval.total_seconds())

    def add(self, uuid: str, at: datetime, utilization_pct: float, weight: float = 1.0) -> None:
        """One GPU's utilization at `at`, counted `weight` times."""
        index = self._index(at)
        self._trends.clear()
        series = self._series.setdefault(uuid, deque(maxlen=self._buckets))
        if series and series[-1].index > index:
            return  # older than what is kept already: seeding comes first, in order
        if not series or series[-1].index != index:
            series.append(_Bucket(index))
        series[-1].total_pct += utilization_pct * weight
        series[-1].count += weight

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
