"""The fleet's rules: which hosts it has, which host a request means, and which free GPUs `any` takes.

Pure: the service hands in the GPUs, claims, samples and host reports it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from gpubot.core.dashboard import Dashboard, GpuRow
from gpubot.core.errors import GpuNotResponding, GpuUnreadable, HostNeeded, HostOffline, UnknownGpu, UnknownHost
from gpubot.core.load import Availability, GpuUse
from gpubot.core.mig import mig_cards
from gpubot.core.models import Gpu, HostReport, HostSample
from gpubot.core.selection import GpuSelection


class _OnHost(Protocol):
    @property
    def host(self) -> str: ...


T = TypeVar("T", bound=_OnHost)

# Which free GPU `any` takes first: a GPU known to be idle before one without telemetry, before one in use.
PREFERENCE = {
    Availability.IDLE: 0,
    Availability.UNKNOWN: 1,
    Availability.IN_USE: 2,
    Availability.NOT_RESPONDING: 3,
    Availability.UNREADABLE: 3,
}


def by_host(items: Iterable[T]) -> dict[str, list[T]]:
    """`items` (GPUs or claims) grouped by host, each group in the order given."""
    grouped: dict[str, list[T]] = {}
    for item in items:
        grouped.setdefault(item.host, []).append(item)
    return grouped


def host_names(local: str, others: Mapping[str, HostReport], listed: Mapping[str, Sequence[Gpu]]) -> list[str]:
    """The fleet's hosts by name: every host that reports, and this daemon's own.

    Its own is left out when it has no GPUs while other hosts exist (a daemon on a machine without GPUs), so it
    never makes a fleet of one GPU host look like two. GPUs listed for a host that never reported (a renamed host's
    rows) make no host of their own.
    """
    names = set(others)
    if listed.get(local) or not names:
        names.add(local)
    return sorted(names)


def host_of(
    name: str, local: str, others: Mapping[str, HostReport], now: datetime, timeout: timedelta
) -> tuple[bool, datetime | None]:
    """Whether host `name` is online, and when it last reported (None for this daemon's own host)."""
    if name == local:
        return True, None
    report = others[name]
    return report.online(now, timeout), report.last_report_at


def target_host(selection: GpuSelection, names: Sequence[str]) -> str:
    """The host a selection of named GPUs means: the one it names, or the only one there is.

    Raises:
        UnknownHost: it names a host the fleet does not have.
        HostNeeded: it names none while the fleet has several.
    """
    if selection.host is not None:
        if selection.host not in names:
            raise UnknownHost(selection.host, names)
        return selection.host
    if len(names) > 1:
        raise HostNeeded(",".join(selection.labels) or "0", names)
    return names[0]


def claimable_host(host: Dashboard) -> Dashboard:
    """`host`, when its GPUs can be newly claimed.

    Raises:
        HostOffline: it has not reported within the host time-out.
    """
    if not host.online:
        raise HostOffline(host.host, host.last_seen_at)
    return host


def free_candidates(host: Dashboard) -> list[GpuRow]:
    """The host's GPUs `any` may take, the most usable first.

    Free and claimable (never one not responding or unreadable), an idle one first, then one without telemetry (or
    whose processes cannot be listed), then one in use; among equals a whole card before a MIG slice. A MIG card is
    never taken whole: it is partitioned to be shared by slice.
    """
    partitioned = mig_cards(row.gpu for row in host.rows)
    free = [row for row in host.rows if row.free and row.gpu.uuid not in partitioned and not row.use.unclaimable]
    return sorted(free, key=lambda row: (PREFERENCE[row.use.availability], row.gpu.is_slice))


def ranked_choices(hosts: Sequence[Dashboard], count: int) -> list[list[GpuRow]]:
    """The GPUs `any` (count 1) or `2xany` (all on one host) could take, best choice first.

    For one GPU: each free GPU of every host, the most usable first (host order among equals). For several: per
    host with enough free GPUs, its best `count`, hosts whose best are idle first.
    """
    if count == 1:
        rows = [row for host in hosts for row in free_candidates(host)]
        rows.sort(key=lambda row: (PREFERENCE[row.use.availability], row.gpu.is_slice))
        return [[row] for row in rows]
    choices = [free_candidates(host)[:count] for host in hosts]
    enough = [rows for rows in choices if len(rows) == count]
    return sorted(enough, key=lambda rows: sorted((PREFERENCE[row.use.availability] for row in rows), reverse=True))


def most_free(hosts: Sequence[Dashboard]) -> int:
    """The most GPUs `any` could take on one host."""
    return max((len(free_candidates(host)) for host in hosts), default=0)


def inventory(host: str, sample: HostSample) -> list[Gpu]:
    """The GPUs a host's sample shows, as the store lists them (by index, a MIG card before its slices)."""
    gpus = [
        Gpu(host, gpu.uuid, gpu.index, gpu.name, gpu.mig_index, gpu.parent_uuid, gpu.mig_profile) for gpu in sample.gpus
    ]
    return sorted(gpus, key=lambda gpu: (gpu.index, -1 if gpu.mig_index is None else gpu.mig_index, gpu.uuid))


def address(gpu_label: str, host: str, several: bool) -> str:
    """How a GPU is named to people: `3` while the fleet has one host, `box-2:3` when it has several."""
    return f"{host}:{gpu_label}" if several else gpu_label


def name(gpu: Gpu, several: bool) -> str:
    """A GPU as people name it (see `address`)."""
    return address(gpu.label, gpu.host, several)


def check_claimable(gpu: Gpu, use: GpuUse, several: bool) -> None:
    """Refuse a GPU that cannot be claimed whoever holds it.

    Raises:
        GpuNotResponding: telemetry cannot read it.
        GpuUnreadable: it answers but refuses to be read.
    """
    if use.not_responding:
        raise GpuNotResponding(name(gpu, several))
    if use.availability is Availability.UNREADABLE:
        raise GpuUnreadable(name(gpu, several), use.reason or "no reason given")


def in_use_warnings(gpus: Sequence[Gpu], uses: Mapping[str, GpuUse], several: bool) -> tuple[str, ...]:
    """What a claimer should know of GPUs they are about to claim: someone's job on them, or processes unknown."""
    warnings = []
    for gpu in gpus:
        use = uses[gpu.uuid]
        if use.in_use:
            warnings.append(
                f"GPU {name(gpu, several)} is in use by {use.description()}, which holds no claim."
                " Check with them before you start, or your jobs will share the GPU."
            )
        elif use.reason is not None:
            warnings.append(
                f"GPU {name(gpu, several)}'s processes cannot be listed ({use.reason}): it may not be idle."
            )
    return tuple(warnings)


def resolve(selection: GpuSelection, gpus: Sequence[Gpu], host: str | None) -> list[Gpu]:
    """The GPUs a selection names among `gpus` (one host's; `host`: its name, to say in a fleet).

    Raises:
        UnknownGpu: it names a GPU that is not among them.
    """
    by_label = {gpu.label: gpu for gpu in gpus}
    unknown = [label for label in selection.labels if label not in by_label]
    if unknown:
        raise UnknownGpu(unknown[0], list(by_label), host)
    return [by_label[label] for label in selection.labels]
