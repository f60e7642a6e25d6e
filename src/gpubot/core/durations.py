"""Durations as people type them: `30m`, `2h`, `1h30m`, `1h 30m`, `1.5h`, `45min`, `1 hour`, `1d`."""

from __future__ import annotations

import re
from datetime import timedelta

from gpubot.core.errors import CommandError, quote

ACCEPTED_FORMS = "`30m`, `2h`, `1h 30m`, `1.5h`, `45min` or `90 minutes`"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Longest spelling first, so `min` is not read as `m` followed by junk.
_UNIT_WORDS = r"seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d"
_UNIT = rf"(?:{_UNIT_WORDS})"
# ASCII digits only: `int()` and `float()` take Arabic-Indic and full-width digits that nobody means here.
# The digit caps keep `float()`/`timedelta` from meeting absurd numbers before the bounds check refuses them.
_NUMBER = r"[0-9]{1,9}(?:\.[0-9]{1,6})?"
_PART = re.compile(rf"({_NUMBER})\s*({_UNIT})", re.ASCII | re.IGNORECASE)
_WHOLE = re.compile(rf"\s*(?:{_NUMBER}\s*{_UNIT}\s*)+", re.ASCII | re.IGNORECASE)
# What someone probably meant as a duration, valid or not: `90`, `-1h`, `1e9h`, `1.5.h`, `2 weeks`, `١h`.
# Deliberately wider than `_WHOLE` (any digit, signs, exponents, unknown units) and narrower than a word
# such as `7b` or `3d-unet`, which are ordinary words in a purpose.
_ATTEMPT = re.compile(
    rf"\s*(?:[+\-]?\.?\d[\d.,eE+\-]*\s*(?:{_UNIT_WORDS}|ms|w|wks?|weeks?|mo|months?|y|yrs?|years?)?\s*)+",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(r"\s*[+\-]?\.?\d[\d.,eE+\-]*\s*")
_MAX_SECONDS = 365 * 86400


def parse_duration(text: str) -> timedelta:
    """Parse one or more `<number><unit>` parts, e.g. `2h`, `1h30m`, `1h 30m`, `1.5h`, `45min`, `1 hour`.

    Units are s, m, h, d or their spelled-out forms (`sec`, `min`, `hour`, `days`, …), in any case; the number
    may have a decimal part. The total is rounded to the second.

    Raises:
        CommandError: the text is not a duration, has no unit, or is zero or longer than a year.
    """
    if not _WHOLE.fullmatch(text):
        if _BARE_NUMBER.fullmatch(text) and len(text.strip()) <= 9:
            number = text.strip()
            raise CommandError(f"`{number}` has no unit; write e.g. `{number}m` or `{number}h`.")
        raise CommandError(f"{quote(text.strip())} is not a duration; write e.g. {ACCEPTED_FORMS}.")
    seconds = round(sum(float(number) * _UNIT_SECONDS[unit[0].lower()] for number, unit in _PART.findall(text)))
    if seconds <= 0:
        raise CommandError(f"{quote(text.strip())} is not a duration longer than zero.")
    if seconds > _MAX_SECONDS:
        raise CommandError(f"{quote(text.strip())} is longer than a year.")
    return timedelta(seconds=seconds)


def is_duration(text: str) -> bool:
    """True when `text` has the shape of a valid duration (it may still be zero or out of bounds)."""
    return _WHOLE.fullmatch(text) is not None


def looks_like_duration(text: str) -> bool:
    """True when `text` looks like an attempt at a duration, valid or not: a number, with or without a unit.

    A claim whose last word looks like this is refused rather than having that word taken into its purpose.
    """
    return _ATTEMPT.fullmatch(text) is not None


def format_duration(duration: timedelta) -> str:
    """Format compactly, largest units first: `1d 2h`, `1h 30m`, `45s`.

    Spans of a minute or more round to the nearest minute, so a fresh 2 h claim reads `2h`, not `1h 59m`.
    """
    seconds = max(round(duration.total_seconds()), 0)
    if seconds >= 60:
        seconds = round(seconds / 60) * 60
    if seconds == 0:
        return "0m"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    # Seconds only matter for short spans; "2h 0m 13s" is noise to a person.
    if len(parts) > 1 and parts[-1].endswith("s"):
        parts.pop()
    return " ".join(parts[:2])
