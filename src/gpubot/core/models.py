"""Value objects the core works with. Units are in the names; times are aware UTC datetimes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ProcessSample:
    """One process using a GPU. Any field may be unknown (None)."""

    pid: int
    name: str | None = None
    used_memory_mib: int | None = None
    user: str | None = None


@dataclass(frozen=True)
class GpuSample:
    """What one GPU, or one MIG slice of a GPU, reported. Any figure it cannot report is None ("n/a").

    `lost` means the GPU is known (it was enumerated) but does not answer at all ("not responding").
    `unreadable` says why a GPU that does answer refuses to be read (e.g. "no permission"): it is shown,
    with that reason, but cannot be claimed, since its UUID (what claims are keyed on) may be unknown.
    `processes_unknown` says why the process list could not be read: an unknown list is not an empty
    one, so such a GPU must never be taken for idle.

    A MIG slice is a sample of its own, listed right after its card: `index` is the card's index,
    `mig_index` the slice's index on the card, `parent_uuid` the card's UUID and `uuid` the slice's own
    (`MIG-…`, what CUDA_VISIBLE_DEVICES takes). A card in MIG mode has `mig_enabled`.
    """

    index: int
    uuid: str
    name: str | None = None
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    utilization_gpu_pct: int | None = None
    temperature_c: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    processes: tuple[ProcessSample, ...] = ()
    lost: bool = False
    unreadable: str | None = None
    processes_unknown: str | None = None
    mig_enabled: bool = False
    mig_index: int | None = None
    parent_uuid: str | None = None
    # The slice's MIG profile, e.g. "1g.10gb".
    mig_profile: str | None = None

    @property
    def label(self) -> str:
        """How people name it: `3` for a card, `3.1` for slice 1 of card 3."""
        return gpu_label(self.index, self.mig_index)

    @property
    def memory_used_pct(self) -> float | None:
        """Used memory as a share of the total; None when either is unknown or the total is zero."""
        if self.memory_used_mib is None or not self.memory_total_mib:
            return None
        return 100.0 * self.memory_used_mib / self.memory_total_mib


@dataclass(frozen=True)
class HostSample:
    """One telemetry sample of every GPU on a host."""

    hostname: str
    driver_version: str | None
    gpus: tuple[GpuSample, ...]


def gpu_label(index: int, mig_index: int | None) -> str:
    """How people name a GPU: `3` for a card, `3.1` for MIG slice 1 of card 3."""
    return str(index) if mig_index is None else f"{index}.{mig_index}"


class HostRole(str, enum.Enum):
    """What a gpubot process on a host does: `serve` answers Slack too, `agent` only reports telemetry."""

    SERVE = "serve"
    AGENT = "agent"


@dataclass(frozen=True)
class ProcessIdentity:
    """A gpubot process as the fleet's registry knows it: its PID on which machine, in which boot of it.

    `boot_id` tells two boots of one machine apart (a PID means nothing across a reboot); None where the
    machine does not say.
    """

    machine: str
    pid: int
    boot_id: str | None = None

    def __str__(self) -> str:
        """How messages name it: `pid 812 on machine gpu-a`."""
        return f"pid {self.pid} on machine {self.machine}"

    def same_boot(self, other: ProcessIdentity) -> bool:
        """Whether both run on one machine in one boot, so that one PID can be looked up for the other."""
        return self.machine == other.machine and self.boot_id is not None and self.boot_id == other.boot_id


@dataclass(frozen=True)
class HostReport:
    """One host of the fleet as the database knows it: who reports for it, when last, and what.

    `sample` is the latest telemetry it wrote (None: none yet, its telemetry failed, or a serve instance
    without GPUs). `holder` is the process that holds the name now; None once it released it on a clean stop.
    """

    name: str
    role: HostRole
    last_report_at: datetime | None
    sample: HostSample | None = None
    holder: ProcessIdentity | None = None

    def online(self, now: datetime, timeout: timedelta) -> bool:
        """Whether it reported within `timeout` of `now`: an offline host's GPUs cannot be newly claimed."""
        return self.last_report_at is not None and now - self.last_report_at <= timeout


@dataclass(frozen=True)
class Gpu:
    """A GPU as the claim rules know it: identified by host and UUID, addressed by its label.

    A MIG slice is a GPU of its own (its `uuid` is the slice's `MIG-…` UUID) with `mig_index` and its
    card's `parent_uuid`; its card shares its `index`, so GPUs are told apart by `label`, never by `index`.
    """

    host: str
    uuid: str
    index: int
    name: str | None = None
    mig_index: int | None = None
    parent_uuid: str | None = None
    # The slice's MIG profile, e.g. "1g.10gb".
    mig_profile: str | None = None

    @property
    def label(self) -> str:
        """`3` for a card, `3.1` for slice 1 of card 3."""
        return gpu_label(self.index, self.mig_index)

    @property
    def is_slice(self) -> bool:
        """Whether it is a MIG slice of a card."""
        return self.mig_index is not None


class ClaimStatus(str, enum.Enum):
    """Where a claim is in its life: active until released by a person or expired at its end."""

    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"


class EventKind(str, enum.Enum):
    """What happened to a claim; one row per change in the audit log."""

    CLAIMED = "claimed"
    RELEASED = "released"
    EXTENDED = "extended"
    EXPIRED = "expired"
    FORCE_RELEASED = "force_released"
    WARNED = "warned"


@dataclass(frozen=True)
class Claim:
    """One claim of one GPU."""

    id: int
    host: str
    gpu_uuid: str
    gpu_index: int
    user_id: str
    purpose: str
    started_at: datetime
    ends_at: datetime
    status: ClaimStatus = ClaimStatus.ACTIVE
    warned_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    # Set on a claim of a MIG slice: the slice's index on its card, and the card's UUID.
    gpu_mig_index: int | None = None
    parent_gpu_uuid: str | None = None

    @property
    def label(self) -> str:
        """The GPU it holds as people name it: `3`, or `3.1` for a MIG slice."""
        return gpu_label(self.gpu_index, self.gpu_mig_index)

    def time_left(self, now: datetime) -> timedelta:
        """How long until the claim ends, never negative."""
        return max(self.ends_at - now, timedelta(0))


@dataclass(frozen=True)
class NewClaim:
    """A claim about to be written."""

    gpu: Gpu
    user_id: str
    purpose: str
    started_at: datetime
    ends_at: datetime


class NoticeKind(str, enum.Enum):
    """Direct messages the bot owes a person, delivered through the outbox."""

    FORCE_RELEASED = "force_released"
    EXPIRY_WARNING = "expiry_warning"
    EXPIRED = "expired"
    # The confirmation of a claim made where no reply can carry it (the claim form closes on submit).
    CLAIMED = "claimed"


@dataclass(frozen=True)
class Notice:
    """A DM to send: written in the same transaction as the change it reports."""

    kind: NoticeKind
    user_id: str
    claim_id: int
    actor_id: str | None = None


@dataclass(frozen=True)
class Tally:
    """Seconds observed and busy, utilization × seconds over the seconds it was known, and the peaks."""

    observed_s: float = 0.0
    busy_s: float = 0.0
    utilization_s: float = 0.0
    utilization_known_s: float = 0.0
    utilization_peak: int | None = None
    memory_peak_mib: int | None = None

    @property
    def utilization_avg(self) -> float | None:
        """Average utilization over the seconds it was known; None when never known."""
        return self.utilization_s / self.utilization_known_s if self.utilization_known_s > 0 else None


@dataclass(frozen=True)
class ClaimUsage:
    """One active claim's share of a sample, with the Unix users whose processes ran on its GPU."""

    claim_id: int
    tally: Tally
    users: frozenset[str]


@dataclass(frozen=True)
class OutboxItem:
    """A notice waiting in the outbox, with the claim it is about as it is now."""

    id: int
    notice: Notice
    claim: Claim
    attempts: int = 0
    created_at: datetime | None = None
    # The lease this sender holds on it, and until when: only that lease may settle it.
    lease: str | None = None
    leased_until: datetime | None = None
    # An earlier attempt, since then, may have reached Slack (its answer was lost, or its sender died).
    unsettled_since: datetime | None = None
    # What the claim's GPU did while held, for the receipt an expiry or a release DM carries.
    usage: ClaimUsage | None = None


@dataclass(frozen=True)
class Person:
    """A Slack user's display name, as looked up at `updated_at`."""

    user_id: str
    display_name: str
    updated_at: datetime


@dataclass(frozen=True)
class HomeOpen:
    """Someone opened their Home tab, as Slack's `app_home_opened` event said: `event_id` is repeated on each retry."""

    user_id: str
    # None: the event had no id that could be kept, so it cannot be told from a retry.
    event_id: str | None
