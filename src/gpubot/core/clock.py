"""Where the core gets the time from: always passed in, never read from a global."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...
