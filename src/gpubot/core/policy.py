"""What a claim must respect: its duration bounds, its purpose, and who may release anyone's claim."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NewType

from gpubot.core.durations import format_duration
from gpubot.core.errors import DurationOutOfBounds, InvalidPurpose
from gpubot.core.load import LoadThresholds

PURPOSE_MAX_CHARS = 200
# Characters that show nothing: format characters (zero-width space, ZWJ, BOM, soft hyphen), separators,
# controls, and the letters and symbols that render blank.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# A purpose that passed `check_purpose`: the claim service takes only these, so every way in (the slash
# command, the claim form) checks it exactly once, before the service.
Purpose = NewType("Purpose", str)


def check_purpose(text: str) -> Purpose:
    """A claim's purpose with its whitespace collapsed, once it is present, visible and within the cap.

    Raises:
        InvalidPurpose: the purpose is empty, shows nothing (only zero-width or blank characters), or is too long.
    """
    purpose = " ".join(text.split())
    if all(_invisible(character) for character in purpose):
        raise InvalidPurpose("Say what the GPU is for, e.g. `fine-tune llama`.")
    if len(purpose) > PURPOSE_MAX_CHARS:
        raise InvalidPurpose(f"The purpose is {len(purpose)} characters long; keep it within {PURPOSE_MAX_CHARS}.")
    return Purpose(purpose)


def _invisible(character: str) -> bool:
    return character in _BLANK_CHARACTERS or unicodedata.category(character) in _INVISIBLE_CATEGORIES


@dataclass(frozen=True)
class ClaimPolicy:
    """The bounds a claim must respect and who may release anyone's claim."""

    min_duration: timedelta = timedelta(minutes=30)
    max_duration: timedelta = timedelta(hours=12)
    default_duration: timedelta = timedelta(hours=2)
    warn_before: timedelta = timedelta(minutes=15)
    admins: frozenset[str] = frozenset()
    # What the claim form offers; only those within the bounds are shown.
    duration_choices: tuple[timedelta, ...] = tuple(timedelta(hours=h) for h in (0.5, 1, 2, 4, 8, 12))
    # The utilization at which an unclaimed GPU counts as in use (see `GpuUse`).
    load: LoadThresholds = field(default_factory=LoadThresholds)

    def check_duration(self, duration: timedelta) -> None:
        """Check that a claim or extension may last `duration`.

        Raises:
            DurationOutOfBounds: the duration is outside the configured bounds.
        """
        if duration < self.min_duration:
            raise DurationOutOfBounds(
                f"{format_duration(duration)} is shorter than the minimum of {format_duration(self.min_duration)}."
            )
        if duration > self.max_duration:
            raise DurationOutOfBounds(
                f"{format_duration(duration)} is longer than the maximum of {format_duration(self.max_duration)}."
            )

    def offered_durations(self) -> tuple[timedelta, ...]:
        """The claim form's choices: those within bounds, always including the default, shortest first."""
        within = {d for d in self.duration_choices if self.min_duration <= d <= self.max_duration}
        return tuple(sorted(within | {self.default_duration}))
