"""How busy a GPU is: its load level (the badges are in `figures`), and whether an unclaimed GPU is in use."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from gpubot.core.models import GpuSample, ProcessSample


class LoadLevel(str, enum.Enum):
    """How busy a GPU is by its latest sample, as its badge shows it; the value is the word people read."""

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


class Availability(str, enum.Enum):
    """Whether a GPU nobody claimed can be used, by what telemetry says of it."""

    IDLE = "idle"
    IN_USE = "in use"
    NOT_RESPONDING = "not responding"
    # It answers but refuses to be read (e.g. no permission): shown with the reason, never claimable.
    UNREADABLE = "unreadable"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class GpuUse:
    """What is running on a GPU now: the one rule for "in use", which every view and the claim rules share.

    A GPU is in use when its utilization is at or above the active threshold, or when any process holds it
    (a job that loaded its model but is not computing yet still holds the memory). It is not responding
    when telemetry could not read it at all; unreadable when it answers but refuses to be read; unknown
    when there is no sample of it, when its process list could not be read (an unknown list is not an
    empty one), or a sample without utilization and without processes. A MIG slice (or a card in MIG
    mode) reports no utilization by design, so there an empty, known process list means idle.
    """

    availability: Availability
    utilization_pct: int | None = None
    processes: tuple[ProcessSample, ...] = ()
    # Why it is unreadable, or why its process list is unknown (e.g. "no permission").
    reason: str | None = None

    @functools.cached_property
    def in_use(self) -> bool:
        """Something runs on it, so claiming it would share it with that work."""
        return self.availability is Availability.IN_USE

    @functools.cached_property
    def not_responding(self) -> bool:
        """Telemetry could not read it at all: no one is offered it."""
        return self.availability is Availability.NOT_RESPONDING

    @functools.cached_property
    def unclaimable(self) -> bool:
        """Not responding or unreadable: no one may claim it."""
        return self.availability in (Availability.NOT_RESPONDING, Availability.UNREADABLE)

    @functools.cached_property
    def rendered(self) -> dict[object, str]:
        """Texts made of this use, by what made them.

        A use lasts a sample, and every view between two samples shows it again (see
        `gpubot.core.figures.free_state`).
        """
        return {}

    def description(self) -> str:
        """Whose work it is, for "in use by …": e.g. "alice's process python (pid 1234) and 2 more processes"."""
        return self._description

    @functools.cached_property
    def _description(self) -> str:
        # Cached: a GpuUse lasts a sample, and every view between two samples shows it.
        if not self.processes:
            util = f"{self.utilization_pct} %" if self.utilization_pct is not None else "some"
            if self.reason is not None:
                return f"processes gpubot cannot list ({self.reason}; {util} utilization)"
            return f"a process gpubot cannot see ({util} utilization)"
        # The process holding the most memory is the job; the rest are usually its helpers.
        lead = max(self.processes, key=lambda process: process.used_memory_mib or 0)
        owner = f"{lead.user}'s" if lead.user else "an unknown user's"
        name = f" {lead.name}" if lead.name else ""
        text = f"{owner} process{name} (pid {lead.pid})"
        others = len(self.processes) - 1
        if others:
            text += f" and {others} more process{'es' if others > 1 else ''}"
        return text


NO_TELEMETRY = GpuUse(Availability.UNKNOWN)
"""The use of a GPU no sample tells of."""


def gpu_use(sample: GpuSample | None, thresholds: LoadThresholds) -> GpuUse:
    """How a GPU is used, by its latest sample (None: no telemetry for it)."""
    if sample is None:
        return NO_TELEMETRY
    if sample.lost:
        return GpuUse(Availability.NOT_RESPONDING)
    if sample.unreadable is not None:
        return GpuUse(Availability.UNREADABLE, reason=sample.unreadable)
    util = sample.utilization_gpu_pct
    if sample.processes or (util is not None and util >= thresholds.active_pct):
        return GpuUse(Availability.IN_USE, util, sample.processes, sample.processes_unknown)
    if sample.processes_unknown is not None:
        return GpuUse(Availability.UNKNOWN, util, reason=sample.processes_unknown)
    if util is None and not (sample.mig_enabled or sample.mig_index is not None):
        return GpuUse(Availability.UNKNOWN)
    return GpuUse(Availability.IDLE, util)
