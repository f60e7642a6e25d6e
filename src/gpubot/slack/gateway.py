"""The one way from a Slack listener to the claim service, and where each call runs.

No database wait may hold up the event loop (the Socket Mode connection, every other person's command),
and no answer that goes into an ack may wait longer than Slack does. So a read runs on the event loop only
when the store promises it will not wait (its snapshot is current); everything else runs in a thread, and
a call whose answer goes into an ack is cut short at `ACK_DEADLINE_S`. That rule lives in `_call` alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, ParamSpec, TypeVar

from gpubot.core.commands import UsageCommand
from gpubot.core.dashboard import Fleet, FleetHome, HomeState
from gpubot.core.errors import GpubotError
from gpubot.core.models import HostSample
from gpubot.core.policy import Purpose
from gpubot.core.selection import GpuSelection
from gpubot.core.service import (
    ClaimOutcome,
    ClaimPolicy,
    ClaimService,
    DueReport,
    ExtendOutcome,
    ReleaseOutcome,
)
from gpubot.core.slack_events import SlackEvents
from gpubot.core.usage_report import RecentUsage, UsageReports, UsageView
from gpubot.slack.people import SlackNames

logger = logging.getLogger(__name__)

# Slack shows an error when the ack takes over 3 s; leave room for the reply to travel.
ACK_DEADLINE_S = 2.5
P = ParamSpec("P")
T = TypeVar("T")
OutcomeT = TypeVar("OutcomeT")


@dataclass(frozen=True)
class _Runs:
    """How `_call` runs a call.

    Whether it only reads (so may be answered from memory), and whether its answer goes into an ack (so must
    come within `ACK_DEADLINE_S`).
    """

    reads_only: bool
    in_ack: bool


_READ_FOR_ACK = _Runs(reads_only=True, in_ack=True)
_READ_AFTER_ACK = _Runs(reads_only=True, in_ack=False)
_CHANGE_FOR_ACK = _Runs(reads_only=False, in_ack=True)
_CHANGE_AFTER_ACK = _Runs(reads_only=False, in_ack=False)
# A read of what the snapshot does not hold (whose Home tab is open, usage figures): never from memory.
_DATABASE_READ_AFTER_ACK = _Runs(reads_only=False, in_ack=False)
_DATABASE_READ_FOR_ACK = _Runs(reads_only=False, in_ack=True)


@dataclass(frozen=True)
class Change(Generic[OutcomeT]):
    """What a change did, and whose claims it touched: each of them gets their Home tab republished once."""

    outcome: OutcomeT
    concerned: frozenset[str]


def _never_from_memory() -> AbstractContextManager[bool]:
    return nullcontext(False)


class ServiceGateway:
    """The service's calls as Slack's listeners make them, each run by the one rule above.

    After each change it looks up the names of the people concerned (after the ack), so what cannot render
    a mention (the host CLI, the claim form's errors) can name them.

    Args:
        service: the claim rules.
        latest_sample: the telemetry sampled in the background (None before the first sample).
        names: learns people's names from Slack.
        from_memory: the store's `answering_from_memory`: a context in which, when it yields True, the
            service's reads make no database call that could wait. Without one, every call goes to a thread.
        events: the Slack events handled and the Home tabs open, shared by every daemon on the database.
        usage: the usage reports (`/gpu usage`).
    """

    def __init__(
        self,
        service: ClaimService,
        latest_sample: Callable[[], HostSample | None],
        names: SlackNames,
        from_memory: Callable[[], AbstractContextManager[bool]] = _never_from_memory,
        *,
        events: SlackEvents,
        usage: UsageReports,
    ) -> None:
        self._service = service
        self._events = events
        self._usage = usage
        self._latest_sample = latest_sample
        self._names = names
        self._from_memory = from_memory

    @property
    def policy(self) -> ClaimPolicy:
        """The claim rules, for the forms that offer durations; settings, so no call to the store."""
        return self._service.policy

    # -- Reads ------------------------------------------------------------------------------------------

    async def fleet(self, *, in_ack: bool) -> Fleet:
        """Every host's GPUs and their holders, each host with the telemetry sample its rows were built from.

        Raises:
            GpubotError: (`in_ack`) the database did not answer in time.
        """
        runs = _READ_FOR_ACK if in_ack else _READ_AFTER_ACK
        return await self._call(runs, self._service.fleet, self._latest_sample())

    async def home(self, user_id: str, expanded: str | None = None) -> HomeState | FleetHome:
        """What the person's Home tab shows, `expanded` the host shown in full (read after the ack: no deadline)."""
        return await self._call(_READ_AFTER_ACK, self._service.home, user_id, self._latest_sample(), expanded)

    async def usage(self, user_id: str, command: UsageCommand) -> UsageView:
        """The usage report `command` asks for, read from the database within the ack's deadline.

        Raises:
            GpubotError: the scope could not be resolved or may not be seen, or the database did not answer in time.
        """
        return await self._call(_DATABASE_READ_FOR_ACK, self._usage.report, user_id, command)

    async def recent_usage(self, user_id: str) -> RecentUsage:
        """The Home tab's usage line: from memory while fresh, else read in a thread (after the ack)."""
        fresh = self._usage.recent_if_fresh(user_id)
        if fresh is not None:
            return fresh
        return await self._call(_DATABASE_READ_AFTER_ACK, self._usage.recent, user_id)

    # -- Changes, each answered in the ack --------------------------------------------------------------

    async def claim(
        self, user_id: str, selection: GpuSelection, purpose: Purpose, duration: timedelta | None
    ) -> Change[ClaimOutcome]:
        """`/gpu claim`, judged on the latest telemetry. Raises: GpubotError: refused, or no answer in time."""
        sample = self._latest_sample()
        outcome = await self._call(_CHANGE_FOR_ACK, self._service.claim, user_id, selection, purpose, duration, sample)
        return self._changed(outcome, [user_id])

    async def claim_from_form(
        self, user_id: str, selection: GpuSelection, purpose: Purpose, duration: timedelta
    ) -> Change[ClaimOutcome]:
        """The claim form's claim: the form closes on submit, so the confirmation is queued as a DM with it.

        Raises:
            GpubotError: refused, or no answer in time.
        """
        sample = self._latest_sample()
        outcome = await self._call(
            _CHANGE_FOR_ACK, self._service.claim, user_id, selection, purpose, duration, sample, confirm_by_dm=True
        )
        return self._changed(outcome, [user_id])

    async def release(self, user_id: str, selection: GpuSelection | None) -> Change[ReleaseOutcome]:
        """`/gpu release`. Raises: GpubotError: refused, or no answer in time."""
        outcome = await self._call(_CHANGE_FOR_ACK, self._service.release, user_id, selection)
        return self._changed(outcome, [user_id, *(claim.user_id for claim in outcome.forced)])

    async def extend(self, user_id: str, selection: GpuSelection, duration: timedelta) -> Change[ExtendOutcome]:
        """`/gpu extend`. Raises: GpubotError: refused, or no answer in time."""
        outcome = await self._call(_CHANGE_FOR_ACK, self._service.extend, user_id, selection, duration)
        return self._changed(outcome, [user_id])

    # -- Changes made after the ack (buttons), with no deadline -----------------------------------------

    async def release_claim(self, user_id: str, claim_id: int) -> Change[ReleaseOutcome]:
        """A Release button. Raises: GpubotError: refused."""
        outcome = await self._call(_CHANGE_AFTER_ACK, self._service.release_claim, user_id, claim_id)
        return self._changed(outcome, [user_id, *(claim.user_id for claim in outcome.forced)])

    async def extend_claim(
        self, user_id: str, claim_id: int, duration: timedelta, expected_ends_at: datetime
    ) -> Change[ExtendOutcome]:
        """An Extend button, only if the claim still ends where the button said. Raises: GpubotError: refused."""
        outcome = await self._call(
            _CHANGE_AFTER_ACK, self._service.extend_claim, user_id, claim_id, duration, expected_ends_at
        )
        return self._changed(outcome, [user_id])

    async def process_due(self) -> Change[DueReport]:
        """Expire and warn what is due (the scheduler's tick); the holders of expired claims are concerned."""
        report = await self._call(_CHANGE_AFTER_ACK, self._service.process_due)
        return self._changed(report, [claim.user_id for claim in report.expired])

    # -- The Home tabs, across daemons (after the ack) ----------------------------------------------------

    async def home_opened(self, opens: Sequence[tuple[str, object]]) -> list[str]:
        """Record these Home tabs opened (person, Slack's event id), in one transaction: whose Home to publish.

        Those whose event was handled already, by any daemon, are left out.

        Raises:
            GpubotError: the database stayed busy.
        """
        return await self._call(_CHANGE_AFTER_ACK, self._events.home_opened, opens)

    async def home_viewers(self, user_ids: Collection[str]) -> frozenset[str]:
        """Those of these people whose Home tab is open, opened through any daemon."""
        return await self._call(_DATABASE_READ_AFTER_ACK, self._events.home_viewers, user_ids)

    # -- The rule -----------------------------------------------------------------------------------------

    def _changed(self, outcome: OutcomeT, concerned: Iterable[str]) -> Change[OutcomeT]:
        people = frozenset(concerned)
        if people:
            self._names.learn(people)
        return Change(outcome, people)

    async def _call(self, runs: _Runs, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `work(*args, **kwargs)` where it costs least.

        On the event loop when it only reads and the store answers from memory (a thread hop was most of the
        CPU of a `/gpu status` under load; see BENCHMARKS.md), else in a thread, cut short at `ACK_DEADLINE_S`
        when the answer goes into an ack. Changes never run from memory: they write.

        Raises:
            GpubotError: from `work`, or (`in_ack`) it did not finish in time. It may still complete (a
                database that was slow, not broken), so the message asks the person to look rather than
                saying it failed.
        """
        if runs.reads_only:
            with self._from_memory() as in_memory:
                if in_memory:
                    return work(*args, **kwargs)
        if not runs.in_ack:
            return await asyncio.to_thread(work, *args, **kwargs)
        try:
            return await asyncio.wait_for(asyncio.to_thread(work, *args, **kwargs), ACK_DEADLINE_S)
        except asyncio.TimeoutError:
            logger.error("%s took longer than %.1f s", getattr(work, "__name__", work), ACK_DEADLINE_S)
            raise GpubotError(
                "gpubot's database is answering slowly, so I cannot tell you the outcome in time."
                " `/gpu status` in a moment shows whether it went through."
            ) from None
