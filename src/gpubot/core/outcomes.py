"""What the claim service's changes did: the claims made, released or extended, and what to tell people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gpubot.core.mig import CudaDevices, cuda_devices
from gpubot.core.models import Claim, ClaimUsage


@dataclass(frozen=True)
class DueReport:
    """What one scheduler tick did."""

    expired: tuple[Claim, ...] = ()
    warned: tuple[Claim, ...] = ()


@dataclass(frozen=True)
class ClaimOutcome:
    """The claims just made, and what the claimer should know about them."""

    claims: tuple[Claim, ...]
    # Claimed anyway, but worth knowing: e.g. someone's unclaimed job is running on the GPU.
    warnings: tuple[str, ...] = ()
    # What CUDA_VISIBLE_DEVICES takes; None: work it out from the claims alone (no slices of whole MIG cards).
    devices: CudaDevices | None = None
    # The fleet has several hosts, so the reply names the host (and where to use the line).
    several_hosts: bool = False

    @property
    def cuda_devices(self) -> CudaDevices:
        """What CUDA_VISIBLE_DEVICES takes to put these claims to use."""
        return self.devices if self.devices is not None else cuda_devices(self.claims, ())


@dataclass(frozen=True)
class ReleaseOutcome:
    """The claims just ended: all of them, and those of them an admin ended for someone else."""

    released: tuple[Claim, ...]
    # Claims of other people ended by an admin; their holders get a DM.
    forced: tuple[Claim, ...]
    several_hosts: bool = False
    # What each ended claim's GPU did while held, by claim ID (those never observed are left out).
    usage: Mapping[int, ClaimUsage] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtendOutcome:
    """The claims just extended, with their new ends, as of `now`."""

    claims: tuple[Claim, ...]
    # True when the maximum duration (counted from now) cut an extension short.
    capped: bool
    now: datetime
    several_hosts: bool = False
