"""What a person sees of every GPU: each with its claim, its latest sample and what that says of its use.

A `Dashboard` is one host's GPUs; a `Fleet` is every host's, each a `Dashboard`, with whether it reports.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gpubot.core.errors import UnknownHost
from gpubot.core.load import NO_TELEMETRY, Availability, GpuUse
from gpubot.core.mig import mig_cards
from gpubot.core.models import Claim, Gpu, GpuSample, HostSample


@dataclass(frozen=True)
class GpuRow:
    """One GPU as a person sees it.

    The GPU, its active claim if any, its latest sample if any, and what that sample says of its use (for an
    unclaimed GPU: free, free but in use, or not responding).
    """

    gpu: Gpu
    claim: Claim | None
    sample: GpuSample | None
    use: GpuUse
    # The claim that takes it without naming it: its card's (for a MIG slice), or one of its slices' (for a
    # MIG card). Such a GPU is not free.
    covered_by: Claim | None = None

    @property
    def free(self) -> bool:
        """Nobody holds it, itself or through its card or slices."""
        return self.claim is None and self.covered_by is None


@dataclass(frozen=True)
class Dashboard:
    """Every GPU on the host with who holds it, at one instant.

    `online`: the host reports (a daemon's own host always does); an offline host's GPUs cannot be newly
    claimed, and its telemetry is too old to show. `last_seen_at`: when it last reported (None for the host
    sampled here). `sample`: the telemetry its rows were built from, None when there is none to show.
    """

    host: str
    rows: tuple[GpuRow, ...]
    now: datetime
    online: bool = True
    last_seen_at: datetime | None = None
    sample: HostSample | None = None

    # Cached: a dashboard is built once and rendered whole, and each count walks every row.
    @functools.cached_property
    def free_count(self) -> int:
        """Unclaimed GPUs, in use or not responding included (the next two counts say how many are)."""
        return sum(1 for row in self.rows if row.free)

    @functools.cached_property
    def free_in_use_count(self) -> int:
        """Unclaimed GPUs that someone's job is using anyway."""
        return sum(1 for row in self.rows if row.free and row.use.in_use)

    @functools.cached_property
    def free_not_responding_count(self) -> int:
        """Unclaimed GPUs that do not answer telemetry, which cannot be claimed."""
        return sum(1 for row in self.rows if row.free and row.use.not_responding)

    @functools.cached_property
    def free_unreadable_count(self) -> int:
        """Unclaimed GPUs that answer but cannot be read (e.g. no permission), which cannot be claimed."""
        return sum(1 for row in self.rows if row.free and row.use.availability is Availability.UNREADABLE)


@dataclass(frozen=True)
class Fleet:
    """Every host of the fleet by name, each with its GPUs and their holders, at one instant."""

    hosts: tuple[Dashboard, ...]
    now: datetime

    @property
    def several(self) -> bool:
        """Whether there is more than one host, so that a GPU must be named with its host."""
        return len(self.hosts) > 1

    @property
    def names(self) -> tuple[str, ...]:
        """The hosts' names, in order."""
        return tuple(host.host for host in self.hosts)

    def host(self, name: str) -> Dashboard:
        """One host's dashboard.

        Raises:
            UnknownHost: no host of the fleet has that name.
        """
        for host in self.hosts:
            if host.host == name:
                return host
        raise UnknownHost(name, self.names)

    @functools.cached_property
    def gpu_count(self) -> int:
        """Every GPU of every host."""
        return sum(len(host.rows) for host in self.hosts)

    @functools.cached_property
    def free_count(self) -> int:
        """Unclaimed GPUs on hosts that report (an offline host's cannot be claimed)."""
        return sum(host.free_count for host in self.hosts if host.online)


@dataclass(frozen=True)
class HomeState:
    """What one person's Home tab shows while there is one host: their own claims, then every GPU."""

    user_id: str
    own_claims: tuple[Claim, ...]
    dashboard: Dashboard


@dataclass(frozen=True)
class FleetHome:
    """One person's Home tab in a fleet of several hosts: their claims, every host summarised, one in full.

    `expanded` is the host the person picked to see in full; None until they pick one.
    """

    user_id: str
    own_claims: tuple[Claim, ...]
    fleet: Fleet
    expanded: Dashboard | None = None


def dashboard_rows(
    gpus: Sequence[Gpu], live: Sequence[Claim], sample: HostSample | None, uses: Mapping[str, GpuUse]
) -> tuple[GpuRow, ...]:
    """One row per GPU: its live claim, the claim that covers it through its card or slices, its sample and use.

    Args:
        gpus: the host's present GPUs, in listing order (a MIG card, then its slices).
        live: the host's claims that have not ended.
        sample: the latest telemetry; None: none yet.
        uses: how each GPU of `sample` is used, by UUID.
    """
    claims = {claim.gpu_uuid: claim for claim in live}
    # Only MIG cards and slices can be covered by another GPU's claim; most hosts have none.
    related = [claim for claim in live if claim.parent_gpu_uuid is not None]
    samples = {gpu.uuid: gpu for gpu in sample.gpus} if sample else {}
    partitioned = mig_cards(gpus)
    return tuple(
        GpuRow(
            gpu=gpu,
            claim=claims.get(gpu.uuid),
            sample=samples.get(gpu.uuid),
            use=uses.get(gpu.uuid, NO_TELEMETRY),
            covered_by=_covering(gpu, claims, related, partitioned),
        )
        for gpu in gpus
    )


def _covering(
    gpu: Gpu, claims: dict[str, Claim], related: Sequence[Claim], partitioned: frozenset[str]
) -> Claim | None:
    if gpu.parent_uuid is not None:
        return claims.get(gpu.parent_uuid)
    if gpu.uuid in partitioned:
        return next((claim for claim in related if claim.parent_gpu_uuid == gpu.uuid), None)
    return None
