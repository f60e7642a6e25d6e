"""The `/gpu` slash command: parse, one service call off the event loop, render. No rules live here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

from gpubot.core.commands import (
    ClaimCommand,
    ClaimDialogCommand,
    Command,
    ExtendCommand,
    HelpCommand,
    RealtimeCommand,
    ReleaseCommand,
    StatusCommand,
    parse_command,
)
from gpubot.core.errors import GpubotError
from gpubot.core.load import LoadThresholds
from gpubot.core.models import HostSample
from gpubot.core.service import ClaimService
from gpubot.slack import messages
from gpubot.slack.blocks import Message
from gpubot.slack.reads import StateReads, before_ack

logger = logging.getLogger(__name__)


class SlashCommands:
    """Answers `/gpu …` from local state: the database and the telemetry sampled in the background."""

    def __init__(
        self,
        service: ClaimService,
        latest_sample: Callable[[], HostSample | None],
        timezone: ZoneInfo,
        thresholds: LoadThresholds,
        after_change: Callable[[Iterable[str]], None],
        open_claim_form: Callable[[str], None],
        reads: StateReads | None = None,
    ) -> None:
        self._service = service
        self._reads = reads or StateReads()
        self._latest_sample = latest_sample
        self._timezone = timezone
        self._thresholds = thresholds
        self._after_change = after_change
        self._open_claim_form = open_claim_form

    async def answer(self, user_id: str, text: str, trigger_id: str = "") -> Message | None:
        """The reply to `/gpu <text>` from `user_id`: a result, a message saying what was wrong, or None when
        the answer is the claim form (opened after the ack, with `trigger_id`)."""
        try:
            command = parse_command(text)
            if isinstance(command, ClaimDialogCommand):
                self._open_claim_form(trigger_id)
                return None
            return await self._run(user_id, command)
        except GpubotError as error:
            return messages.error_message(error)
        except Exception:
            # The one boundary where an unexpected failure becomes a reply, so Slack still gets its ack.
            logger.exception("/gpu %r from %s failed", text, user_id)
            return messages.internal_error_message()

    async def _run(self, user_id: str, command: Command) -> Message:
        service = self._service
        policy = service.policy
        match command:
            case StatusCommand():
                dashboard = await self._reads.read(service.dashboard, self._latest_sample(), in_ack=True)
                return messages.status_message(dashboard, policy, self._timezone)
            case RealtimeCommand():
                sample = self._latest_sample()
                dashboard = await self._reads.read(service.dashboard, sample, in_ack=True)
                return messages.realtime_message(dashboard, sample, self._thresholds)
            case HelpCommand():
                return messages.help_message(policy)
            case ClaimCommand(selection, purpose, duration):
                sample = self._latest_sample()
                claimed = await before_ack(service.claim, user_id, selection, purpose, duration, sample)
                self._after_change([user_id])
                return messages.claim_message(claimed, claimed.claims[0].started_at, self._timezone)
            case ReleaseCommand(selection):
                released = await before_ack(service.release, user_id, selection)
                self._after_change([user_id, *(claim.user_id for claim in released.forced)])
                return messages.release_message(released)
            case ExtendCommand(selection, duration):
                extended = await before_ack(service.extend, user_id, selection, duration)
                self._after_change([user_id])
                return messages.extend_message(extended, policy, extended.now, self._timezone)
        raise TypeError(f"unhandled command {command!r}")  # parse_command returns only the cases above
