"""Loops that outlive any one failure: logged once per streak, retried with capped back-off.

A busy or vanished database, a driver error, a bug in one run: none of them may end a loop for good,
as one `StoreBusy` once ended the DM sender without anyone noticing. A `FailureStreak` logs the first
failure of a streak with its traceback, stays quiet while the same streak goes on, logs the recovery,
and says how long to wait before the next try. The DM sender uses it directly; the daemon's periodic
jobs through `gpubot.daemon.jobs.guarded`.
"""

from __future__ import annotations

import logging

_FIRST_BACKOFF_S = 1.0
_LONGEST_BACKOFF_S = 60.0


class FailureStreak:
    """One loop's run of consecutive failures: what to log and how long to back off."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        *,
        first_backoff_s: float = _FIRST_BACKOFF_S,
        longest_backoff_s: float = _LONGEST_BACKOFF_S,
    ) -> None:
        self._name = name
        self._logger = logger
        self._first_s = first_backoff_s
        self._longest_s = longest_backoff_s
        self.failures = 0

    def failed(self, error: BaseException) -> float:
        """Record a failure; log it if it starts a streak. Returns the seconds to wait before trying again."""
        if self.failures == 0:
            self._logger.error("%s failed; retrying with back-off: %s", self._name, _describe(error), exc_info=error)
        self.failures += 1
        return min(self._first_s * 2 ** (self.failures - 1), self._longest_s)

    def succeeded(self) -> None:
        """Record a success; log the recovery if it ends a streak."""
        if self.failures:
            self._logger.info("%s recovered after %d failed attempts", self._name, self.failures)
        self.failures = 0


def _describe(error: BaseException) -> str:
    message = getattr(error, "message", None)
    return str(message) if isinstance(message, str) else (str(error) or type(error).__name__)
