"""Durations as people type them: `30m`, `2h`, `1h30m`, `1d`."""

from __future__ import annotations

import re
from datetime import timedelta

from gpubot.core.errors import CommandError

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"(?:\d+[smhd])+")
# Guards against absurd numbers that would overflow timedelta before the bounds check can refuse them.
_MAX_SECONDS = 365 * 86400


def parse_duration(text: str) -> timedelta:
    """Parse `<n>s|m|h|d` and compounds such as `1h30m` (case-insensitive).

    Raises:
        CommandError: the text is not a duration, or is zero.
    """
    compact = text.strip().lower()
    if not _WHOLE.fullmatch(compact):
        raise CommandError(f"`{text}` is not a duration; use e.g. `30m`, `2h` or `1h30m`.")
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(compact))
    if seconds <= 0:
        raise CommandError(f"`{text}` is not a duration longer than zero.")
    if seconds > _MAX_SECONDS:
        raise CommandError(f"`{text}` is longer than a year.")
    return timedelta(seconds=seconds)


def looks_like_duration(text: str) -> bool:
    """True when `text` has the shape of a duration (it may still be zero or out of bounds)."""
    return _WHOLE.fullmatch(text.strip().lower()) is not None


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
