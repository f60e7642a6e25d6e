"""What gpubot's buttons and selects carry, encoded by the views and decoded by the listeners.

An extend button carries the end it was shown with, so pressing it twice (or on a stale Home tab)
extends once: the service refuses an end that has moved since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gpubot.core.errors import CommandError

CLAIM_FORM = "open_claim_form"
CLAIM_MODAL_CALLBACK = "claim_form"
# Block and action ids of the claim form's inputs.
GPUS_INPUT = "gpus"
PURPOSE_INPUT = "purpose"
DURATION_INPUT = "duration"

RELEASE_PATTERN = re.compile(r"^release:\d+$")
EXTEND_PATTERN = re.compile(r"^extend(?:_choice)?:\d+(?::\d+)?$")
CLAIM_GPU_PATTERN = re.compile(r"^claim_gpu:\d+$")


@dataclass(frozen=True)
class ExtendRequest:
    claim_id: int
    duration: timedelta
    expected_ends_at: datetime


def release_action_id(claim_id: int) -> str:
    return f"release:{claim_id}"


def extend_action_id(claim_id: int, duration: timedelta | None) -> str:
    # Ids must be unique within a message or view: one per claim and per offered duration.
    return f"extend:{claim_id}:{int(duration.total_seconds())}" if duration else f"extend_choice:{claim_id}"


def claim_gpu_action_id(gpu_index: int) -> str:
    return f"claim_gpu:{gpu_index}"


def extend_value(claim_id: int, duration: timedelta, ends_at: datetime) -> str:
    return f"{claim_id}:{int(duration.total_seconds())}:{int(ends_at.timestamp())}"


def parse_extend_value(value: str) -> ExtendRequest:
    """Raises:
    CommandError: the value was not made by `extend_value`.
    """
    try:
        claim_id, seconds, ends_at = (int(part) for part in value.split(":"))
    except ValueError:
        raise CommandError("That button is not one of gpubot's.") from None
    return ExtendRequest(claim_id, timedelta(seconds=seconds), datetime.fromtimestamp(ends_at, timezone.utc))


def parse_int(value: str) -> int:
    """Raises:
    CommandError: the value is not a number gpubot put there.
    """
    if not value.isdigit():
        raise CommandError("That button is not one of gpubot's.")
    return int(value)
