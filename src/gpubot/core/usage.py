"""What a host's sample adds to the usage record: per GPU per minute and hour, and per claim. Pure.

A sample taken at `at` stands for the span since the host's previous counted sample, but never for more than
`UsageRule.max_span` (twice the telemetry interval): after a longer gap (the host offline, its daemon down) it
stands for one interval only and the rest is *not observed*, never idle or busy. A GPU counts as busy in a span
when its utilization is at or above the active threshold, or when any process of anyone runs on it; a GPU that
cannot be read (lost, or neither its utilization nor its processes known) is not observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpubot.core.durations import format_duration
from gpubot.core.models import Claim, ClaimUsage, GpuSample, HostSample, Tally


@dataclass(frozen=True)
class UsageRule:
    """How samples are counted: the interval each stands for, what is busy, and how long hourly rows are kept."""

    interval: timedelta
    active_pct: int
    retention: timedelta = timedelta(days=365)

    @property
    def max_span(self) -> timedelta:
        """The longest span a sample stands for; a gap longer than this is not observed."""
        return 2 * self.interval


@dataclass(frozen=True)
class GpuUsage:
    """One GPU's share of a sample, for its minute and hour rollups."""

    uuid: str
    name: str | None
    tally: Tally


@dataclass(frozen=True)
class SampleUsage:
    """Everything a sample adds: counted at `at`, standing for `span`."""

    at: datetime
    span: timedelta
    gpus: tuple[GpuUsage, ...]
    claims: tuple[ClaimUsage, ...]


def sample_span(previous_at: datetime | None, at: datetime, rule: UsageRule) -> timedelta:
    """The span a sample at `at` stands for, after the previous counted one at `previous_at` (None: the first)."""
    if previous_at is None or at - previous_at > rule.max_span:
        return rule.interval
    return at - previous_at


def count_sample(
    sample: HostSample, previous_at: datetime | None, at: datetime, claims: Sequence[Claim], rule: UsageRule
) -> SampleUsage:
    """What `sample`, taken at `at`, adds to each GPU's rollups and each of `claims` (this host's active ones).

    A claim counts only the part of the span after it started (and before it ended); a claim of a whole MIG
    card counts its slices too.
    """
    span = sample_span(previous_at, at, rule)
    tallies = {gpu.uuid: _tally(gpu, span.total_seconds(), rule) for gpu in sample.gpus}
    gpus = tuple(GpuUsage(gpu.uuid, gpu.name, tallies[gpu.uuid]) for gpu in sample.gpus if tallies[gpu.uuid].observed_s)
    counted = []
    for claim in claims:
        seconds = _overlap_s(at - span, at, claim.started_at, claim.ended_at)
        if seconds <= 0:
            continue
        own = [gpu for gpu in sample.gpus if claim.gpu_uuid in (gpu.uuid, gpu.parent_uuid)]
        tally = _combined([_tally(gpu, seconds, rule) for gpu in own])
        users = frozenset(process.user for gpu in own for process in gpu.processes if process.user)
        if tally.observed_s or users:
            counted.append(ClaimUsage(claim.id, tally, users))
    return SampleUsage(at, span, gpus, tuple(counted))


def add(total: Tally, more: Tally) -> Tally:
    """Two tallies as one: seconds add up, peaks take the higher."""
    return Tally(
        total.observed_s + more.observed_s,
        total.busy_s + more.busy_s,
        total.utilization_s + more.utilization_s,
        total.utilization_known_s + more.utilization_known_s,
        _peak(total.utilization_peak, more.utilization_peak),
        _peak(total.memory_peak_mib, more.memory_peak_mib),
    )


def _tally(gpu: GpuSample, seconds: float, rule: UsageRule) -> Tally:
    utilization = gpu.utilization_gpu_pct
    processes_known = gpu.processes_unknown is None
    if gpu.lost or gpu.unreadable is not None or (utilization is None and not processes_known):
        return Tally()
    busy = (utilization is not None and utilization >= rule.active_pct) or bool(gpu.processes)
    known_s = seconds if utilization is not None else 0.0
    return Tally(
        observed_s=seconds,
        busy_s=seconds if busy else 0.0,
        utilization_s=(utilization or 0) * known_s,
        utilization_known_s=known_s,
        utilization_peak=utilization,
        memory_peak_mib=gpu.memory_used_mib,
    )


def _combined(tallies: Sequence[Tally]) -> Tally:
    """A claim's GPUs in one span (a MIG card with its slices): observed and busy once, not once per slice."""
    observed = [tally for tally in tallies if tally.observed_s]
    if not observed:
        return Tally()
    seconds = max(tally.observed_s for tally in observed)
    known = [tally for tally in observed if tally.utilization_known_s]
    total = Tally(
        observed_s=seconds,
        busy_s=seconds if any(tally.busy_s for tally in observed) else 0.0,
        utilization_s=max((tally.utilization_s for tally in known), default=0.0),
        utilization_known_s=seconds if known else 0.0,
    )
    for tally in observed:
        total = add(total, Tally(utilization_peak=tally.utilization_peak, memory_peak_mib=tally.memory_peak_mib))
    return total


def _overlap_s(start: datetime, end: datetime, claim_start: datetime, claim_end: datetime | None) -> float:
    lower = max(start, claim_start)
    upper = end if claim_end is None else min(end, claim_end)
    return max((upper - lower).total_seconds(), 0.0)


def _peak(first: int | None, second: int | None) -> int | None:
    if first is None:
        return second
    return first if second is None else max(first, second)


# A receipt nudges when a claim observed this long was busy less than this share of it.
IDLE_NUDGE_MIN_OBSERVED = timedelta(minutes=10)
IDLE_NUDGE_BELOW = 0.25


@dataclass(frozen=True)
class Receipt:
    """What a claim used, as its holder reads it when it ends: one line, and whether it was mostly idle."""

    line: str
    mostly_idle: bool


def receipt(held: timedelta, usage: ClaimUsage | None) -> Receipt:
    """The receipt of a claim held for `held`: busy time and share, average utilization, peak memory, gaps.

    E.g. "held 3h 10m · busy 2h 40m (84%) · average utilization 71% · peak memory 62 GiB".
    """
    parts = [f"held {format_duration(held)}"]
    tally = usage.tally if usage is not None else Tally()
    observed = timedelta(seconds=tally.observed_s)
    if tally.observed_s > 0:
        share = tally.busy_s / tally.observed_s
        parts.append(f"busy {format_duration(timedelta(seconds=tally.busy_s))} ({share:.0%})")
        average = tally.utilization_avg
        if average is not None:
            parts.append(f"average utilization {average:.0f}%")
        if tally.memory_peak_mib is not None:
            parts.append(f"peak memory {_memory(tally.memory_peak_mib)}")
    unseen = held - observed
    if unseen >= timedelta(minutes=1):
        parts.append(f"not observed {format_duration(unseen)}")
    mostly_idle = observed >= IDLE_NUDGE_MIN_OBSERVED and tally.busy_s < IDLE_NUDGE_BELOW * tally.observed_s
    return Receipt(" · ".join(parts), mostly_idle)


def _memory(mib: int) -> str:
    return f"{mib / 1024:.0f} GiB" if mib >= 1024 else f"{mib} MiB"
