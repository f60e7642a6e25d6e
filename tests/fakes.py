"""Test doubles for the core's ports. Product fakes (the fake GPU backend) live in src/."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class FakeClock:
    """A settable clock: tests move time forward instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when
