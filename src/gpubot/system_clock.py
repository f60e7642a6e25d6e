"""The one place that reads the wall clock."""

from __future__ import annotations

from datetime import datetime, timezone


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        """The current time, in UTC."""
        return datetime.now(timezone.utc)
