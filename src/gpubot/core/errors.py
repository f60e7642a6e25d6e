"""Domain errors: every failure a user can cause, under one root.

Each carries its data (the GPU, the holder, the bounds) and a message in plain words, with no Slack or
terminal syntax: Slack listeners render them as a friendly ephemeral reply (the holder as a mention, hints
as `/gpu …`) and the CLI as a line with exit 1 (78 for a `ConfigError` or `SetupError`: restarting cannot
fix those).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


class GpubotError(Exception):
    """Root of every error gpubot reports to a person."""

    def __init__(self, message: str, usage: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        # The subcommands whose syntax would help (e.g. `("claim",)`); each surface writes its own syntax.
        self.usage = usage

    @property
    def people(self) -> tuple[str, ...]:
        """The user IDs this error is about, so a renderer can look up their names first."""
        return ()


def quote(text: str, limit: int = 40) -> str:
    """User text as a `code` span in a message: shortened, and unable to end the span early."""
    text = text.replace("`", "'")
    return f"`{text if len(text) <= limit else text[: limit - 1] + '…'}`"


class ConfigError(GpubotError):
    """A setting is missing or malformed."""

    def __init__(self, variable: str, expected: str) -> None:
        super().__init__(f"{variable}: {expected}")
        self.variable = variable
        self.expected = expected


class CommandError(GpubotError):
    """The command text could not be understood."""


class ClaimRefused(GpubotError):
    """A claim, release or extend was refused by the claim rules."""


class InvalidPurpose(CommandError):
    """A claim's purpose is missing or too long."""

    def __init__(self, message: str) -> None:
        super().__init__(message, usage=("claim",))


class DurationOutOfBounds(ClaimRefused):
    """A claim's duration is outside the configured bounds."""


class ClaimChanged(ClaimRefused):
    """The claim changed since the button was shown (e.g. it was already extended); nothing was done."""

    def __init__(self, claim_id: int, ends_at: datetime) -> None:
        super().__init__("That claim was already changed; nothing more was done.")
        self.claim_id = claim_id
        self.ends_at = ends_at


class UnknownGpu(ClaimRefused):
    """The GPU named does not exist on this host (`host`: the host named, in a fleet)."""

    def __init__(self, gpu_label: str, known: Sequence[str], host: str | None = None) -> None:
        listing = ", ".join(known) or "none"
        where = "here" if host is None else f"on {host}"
        super().__init__(f"There is no GPU {gpu_label} {where} (GPUs: {listing}).")
        self.gpu_label = gpu_label
        self.known = tuple(known)
        self.host = host


class UnknownHost(ClaimRefused):
    """The host named is not one of the fleet's."""

    def __init__(self, host: str, known: Sequence[str]) -> None:
        super().__init__(f"There is no host {quote(host)} in the fleet (hosts: {', '.join(known) or 'none'}).")
        self.host = host
        self.known = tuple(known)


class HostNeeded(ClaimRefused):
    """A GPU named without its host while the fleet has several: which one is meant is never guessed."""

    def __init__(self, selection: str, hosts: Sequence[str]) -> None:
        super().__init__(
            f"The fleet has {len(hosts)} hosts, so name the host before the GPU, e.g. `{hosts[0]}:{selection}`"
            f" (hosts: {', '.join(hosts)})."
        )
        self.selection = selection
        self.hosts = tuple(hosts)


class HostOffline(ClaimRefused):
    """The host has not reported within the host time-out: its GPUs cannot be newly claimed."""

    def __init__(self, host: str, last_seen_at: datetime | None) -> None:
        seen = "it never reported" if last_seen_at is None else f"last report {last_seen_at:%Y-%m-%d %H:%M:%S} UTC"
        super().__init__(f"Host {host} is offline ({seen}), so its GPUs cannot be claimed now.")
        self.host = host
        self.last_seen_at = last_seen_at


class AlreadyHeld(ClaimRefused):
    """The GPU is already claimed by someone else (or by the caller), itself or through its card or slices.

    `held_label` is the GPU the holder's claim names: the GPU itself, or, for a MIG slice, its card
    (a card claim takes every slice), or, for a MIG card, one of its slices.
    """

    def __init__(self, gpu_label: str, holder_id: str, ends_at: datetime, held_label: str | None = None) -> None:
        self.held_label = gpu_label if held_label is None else held_label
        if self.held_label == gpu_label:
            message = f"GPU {gpu_label} is already claimed by {holder_id}."
        else:
            message = f"GPU {gpu_label} is taken: GPU {self.held_label} is claimed by {holder_id}."
        super().__init__(message)
        self.gpu_label = gpu_label
        self.holder_id = holder_id
        self.ends_at = ends_at

    @property
    def people(self) -> tuple[str, ...]:
        """The holder the message names, so each surface can write them its own way."""
        return (self.holder_id,)


class AlreadyYours(ClaimRefused):
    """The caller already holds the GPU they tried to claim: extending it is what they want."""

    def __init__(self, gpu_label: str) -> None:
        super().__init__(f"You already hold GPU {gpu_label}; extend your claim for more time.")
        self.gpu_label = gpu_label


class NoFreeGpu(ClaimRefused):
    """`any` was asked for but every GPU is taken, or the only unclaimed ones are not responding or unreadable."""

    def __init__(self, not_responding: Sequence[str] = (), unreadable: Sequence[str] = ()) -> None:
        silent = [*not_responding, *unreadable]
        if silent:
            listing = ", ".join(silent)
            them = f"GPU {listing} is" if len(silent) == 1 else f"GPUs {listing} are"
            why = " or ".join(
                word for word, labels in (("not responding", not_responding), ("unreadable", unreadable)) if labels
            )
            message = f"No GPU can be claimed right now: the only unclaimed {them} {why}."
        else:
            message = "Every GPU is claimed right now."
        super().__init__(message)
        self.not_responding = tuple(not_responding)
        self.unreadable = tuple(unreadable)


class NoHostWithFree(ClaimRefused):
    """`2xany` was asked for, but no online host has that many free GPUs that can be claimed."""

    def __init__(self, count: int, most: int) -> None:
        super().__init__(
            f"No host has {count} free GPUs right now (at most {most} on one host); a claim of several GPUs"
            " is on one host."
        )
        self.count = count
        self.most = most


class GpuNotResponding(ClaimRefused):
    """The GPU is known but telemetry cannot read it (fallen off the bus, driver trouble): no one may claim it."""

    def __init__(self, gpu_label: str) -> None:
        super().__init__(f"GPU {gpu_label} is not responding, so it cannot be claimed; tell the host's admin.")
        self.gpu_label = gpu_label


class GpuUnreadable(ClaimRefused):
    """The GPU answers but refuses to be read (e.g. no permission): it cannot be claimed; `reason` says why."""

    def __init__(self, gpu_label: str, reason: str) -> None:
        super().__init__(f"GPU {gpu_label} cannot be read ({reason}), so it cannot be claimed; tell the host's admin.")
        self.gpu_label = gpu_label
        self.reason = reason


class SelectionOverlaps(ClaimRefused):
    """One request names a MIG card and one of its slices: the card claim already takes the slice."""

    def __init__(self, card_label: str, slice_label: str) -> None:
        super().__init__(f"GPU {card_label} takes all its MIG slices, {slice_label} too: name one or the other.")
        self.card_label = card_label
        self.slice_label = slice_label


class NotHolder(ClaimRefused):
    """The caller does not hold the claim they tried to change."""

    def __init__(self, gpu_label: str, holder_id: str) -> None:
        super().__init__(f"GPU {gpu_label} is claimed by {holder_id}, not by you.")
        self.gpu_label = gpu_label
        self.holder_id = holder_id

    @property
    def people(self) -> tuple[str, ...]:
        """The holder the message names, so each surface can write them its own way."""
        return (self.holder_id,)


class NotClaimed(ClaimRefused):
    """The GPU has no active claim."""

    def __init__(self, gpu_label: str) -> None:
        super().__init__(f"GPU {gpu_label} is not claimed.")
        self.gpu_label = gpu_label


class ClaimNotActive(ClaimRefused):
    """The claim ended (released or expired) before this action reached it."""

    def __init__(self, claim_id: int) -> None:
        super().__init__("That claim has already ended.")
        self.claim_id = claim_id


class StoreBusy(GpubotError):
    """The database stayed locked by another writer for too long."""

    def __init__(self) -> None:
        super().__init__("The claim database is busy; please try again in a moment.")


class SetupError(GpubotError):
    """The host is set up so that gpubot cannot run, and waiting or restarting cannot change that.

    The CLI exits 78 (EX_CONFIG) on it, as on a `ConfigError`, so systemd does not restart the service
    in a loop; the message names what to fix.
    """


class StoreUnavailable(GpubotError):
    """The database cannot be opened, created or migrated."""


class NoDatabase(StoreUnavailable):
    """The SQLite file does not exist yet: the service has never run, or runs with another database."""

    def __init__(self, location: str) -> None:
        super().__init__(f"there is no database at {location} yet")
        self.location = location


class StoreReadOnly(StoreUnavailable, SetupError):
    """The database refuses writes: a read-only file or file system, no permission, a full disk."""


class StoreReplaced(StoreUnavailable):
    """The SQLite file was deleted or replaced under the running service; it must not confirm changes.

    What it wrote since would be gone (deleted) or lost (replaced) at the next start, so every write
    is refused until gpubot is restarted on the file that is there now.
    """

    def __init__(self, path: str, what: str) -> None:
        super().__init__(
            f"gpubot's claims database file was {what} while gpubot ran, so nothing was changed. "
            "Please tell the admin: gpubot must be restarted."
        )
        self.path = path
        self.what = what

    @property
    def status(self) -> str:
        """A line for the log and `systemctl status`."""
        return f"database file {self.path} was {self.what}; restart gpubot"


class CopyRefused(GpubotError):
    """`gpubot db copy` will not copy: the source or the target is not what a copy needs; nothing was changed."""


class TelemetryError(GpubotError):
    """A telemetry backend cannot sample at all (one bad GPU is not this: it is reported as lost)."""


class NoGpuBackend(TelemetryError, SetupError):
    """No GPU backend can be opened at all (no NVML, no nvidia-smi, or the one chosen is unavailable)."""


class CheckFailed(GpubotError):
    """A `gpubot doctor` check found something wrong with the installation; `fix` says what to do."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class HostNameTaken(SetupError):
    """Another live gpubot process reports for this host name: two machines' GPUs would be mixed."""

    def __init__(self, name: str, holder: str, last_report_at: datetime) -> None:
        super().__init__(
            f"The host name {name!r} is in use by another live gpubot ({holder}, last report "
            f"{last_report_at:%Y-%m-%d %H:%M:%S} UTC); set GPUBOT_HOST_NAME to a name of this machine's own."
        )
        self.name = name
        self.holder = holder
        self.last_report_at = last_report_at
