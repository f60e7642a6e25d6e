"""What gpubot's buttons and selects carry, encoded by the views and decoded by the listeners.

An extend button carries the end it was shown with, so pressing it twice (or on a stale Home tab)
extends once: the service refuses an end that has moved since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gpubot.core.errors import CommandError
from gpubot.core.selection import HOST_NAME

CLAIM_FORM = "open_claim_form"
CLAIM_MODAL_CALLBACK = "claim_form"
# Block and action ids of the claim form's inputs.
GPUS_INPUT = "gpus"
PURPOSE_INPUT = "purpose"
DURATION_INPUT = "duration"
# In a fleet: the claim form's host select (picking one shows that host's GPUs), and the Home tab's.
HOST_INPUT = "host"
HOME_HOST = "home_host"

# ASCII digits only: `\d`, `isdigit()` and `int()` also take `²`, `١` or `１`, which gpubot never writes.
RELEASE_PATTERN = re.compile(r"^release:[0-9]+$")
EXTEND_PATTERN = re.compile(r"^extend(?:_choice)?:[0-9]+(?::[0-9]+)?$")
CLAIM_GPU_PATTERN = re.compile(rf"^claim_gpu:(?:{HOST_NAME.pattern}:)?[0-9]+(?:\.[0-9]+)?$", re.ASCII)
# A GPU's label as gpubot writes it: a card `3` or a MIG slice `3.1`, after its host in a fleet (`box-2:3`).
_GPU_LABEL = re.compile(rf"(?:{HOST_NAME.pattern}:)?[0-9]{{1,9}}(?:\.[0-9]{{1,9}})?", re.ASCII)
# Caps keep `int()`, `timedelta` and `datetime` from overflowing on a forged value.
_NUMBER = re.compile(r"[0-9]{1,18}")
_SECONDS = re.compile(r"[0-9]{1,9}")
_EXTEND_VALUE = re.compile(rf"([0-9]{{1,18}}):({_SECONDS.pattern}):([0-9]{{1,10}})")
NOT_OURS = "That button is not one of gpubot's."


@dataclass(frozen=True)
class ExtendRequest:
    """What an "extend" button asks for: which claim, by how much, and the end the person saw."""

    claim_id: int
    duration: timedelta
    expected_ends_at: datetime


def release_action_id(claim_id: int) -> str:
    """The action id of a claim's "Release" button."""
    return f"release:{claim_id}"


def extend_action_id(claim_id: int, duration: timedelta | None) -> str:
    """The action id of a claim's "extend by `duration`" button, or of its duration menu when None."""
    # Ids must be unique within a message or view: one per claim and per offered duration.
    return f"extend:{claim_id}:{int(duration.total_seconds())}" if duration else f"extend_choice:{claim_id}"


def claim_gpu_action_id(gpu_label: str) -> str:
    """The action id of the Home tab's "Claim" button of one GPU (a card `3`, a MIG slice `3.1`, `box-2:3`)."""
    return f"claim_gpu:{gpu_label}"


def extend_value(claim_id: int, duration: timedelta, ends_at: datetime) -> str:
    """An "extend" button's value: the claim, the duration and the end shown, read back by `parse_extend_value`."""
    return f"{claim_id}:{int(duration.total_seconds())}:{int(ends_at.timestamp())}"


def parse_extend_value(value: object) -> ExtendRequest:
    """Read an "extend" button's value back.

    Raises:
        CommandError: the value was not made by `extend_value`.
    """
    match = _EXTEND_VALUE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise CommandError(NOT_OURS)
    claim_id, seconds, ends_at = (int(part) for part in match.groups())
    return ExtendRequest(claim_id, timedelta(seconds=seconds), datetime.fromtimestamp(ends_at, timezone.utc))


def parse_int(value: object) -> int:
    """Read a number gpubot put in a button or menu value.

    Raises:
        CommandError: the value is not a number gpubot put there.
    """
    if not isinstance(value, str) or not _NUMBER.fullmatch(value):
        raise CommandError(NOT_OURS)
    return int(value)


def parse_seconds(value: object) -> timedelta:
    """A duration gpubot wrote as whole seconds (the claim form's options).

    Raises:
        CommandError: the value is not such a number, or too long for any claim.
    """
    if not isinstance(value, str) or not _SECONDS.fullmatch(value):
        raise CommandError(NOT_OURS)
    return timedelta(seconds=int(value))


def parse_gpu_label(value: object) -> str:
    """Read a GPU label (`3`, `3.1`, or `box-2:3` in a fleet) gpubot put in a button or menu value.

    Raises:
        CommandError: the value is not a label gpubot put there.
    """
    if not isinstance(value, str) or not _GPU_LABEL.fullmatch(value):
        raise CommandError(NOT_OURS)
    return value


def split_gpu_label(value: str) -> tuple[str | None, str]:
    """A label read by `parse_gpu_label` as its host (None: none named) and the GPU's label on it."""
    host, _, label = value.rpartition(":")
    return host or None, label


def parse_host(value: object) -> str:
    """Read a host name gpubot put in a menu value.

    Raises:
        CommandError: the value is not a host name.
    """
    if not isinstance(value, str) or not HOST_NAME.fullmatch(value):
        raise CommandError(NOT_OURS)
    return value


def preselected_gpu(value: object) -> str | None:
    """The GPU a Claim button asks the form to preselect; None (nothing preselected) for a value not gpubot's."""
    try:
        return parse_gpu_label(value)
    except CommandError:
        return None
