"""The `/gpu` slash command: parse, one call through the gateway, render. No rules live here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
    UsageCommand,
    parse_command,
)
from gpubot.core.errors import GpubotError
from gpubot.core.load import LoadThresholds
from gpubot.slack import fleet_messages, messages, usage_messages
from gpubot.slack.blocks import Message
from gpubot.slack.gateway import ServiceGateway
from gpubot.slack.home import HomeTab

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """Answer in the ack, seen only by the person who typed the command."""

    message: Message


@dataclass(frozen=True)
class OpenClaimForm:
    """Ack with no reply, then open the claim form (its trigger is the command's)."""


Answer = Reply | OpenClaimForm


class SlashCommands:
    """Answers `/gpu …` from local state: the database and the telemetry sampled in the background."""

    def __init__(self, gateway: ServiceGateway, home: HomeTab, timezone: ZoneInfo, thresholds: LoadThresholds) -> None:
        self._gateway = gateway
        self._home = home
        self._timezone = timezone
        self._thresholds = thresholds

    async def answer(self, user_id: str, text: str) -> Answer:
        """What to do about `/gpu <text>` from `user_id`.

        Reply with a result or with what was wrong, or open the claim form.
        """
        try:
            command = parse_command(text)
            if isinstance(command, ClaimDialogCommand):
                return OpenClaimForm()
            return Reply(await self._run(user_id, command))
        except GpubotError as error:
            return Reply(messages.error_message(error))
        except Exception:
            # The one boundary where an unexpected failure becomes a reply, so Slack still gets its ack.
            logger.exception("/gpu %r from %s failed", text, user_id)
            return Reply(messages.internal_error_message())

    async def _run(self, user_id: str, command: Command) -> Message:
        gateway = self._gateway
        policy = gateway.policy
        match command:
            case StatusCommand(host):
                fleet = await gateway.fleet(in_ack=True)
                return fleet_messages.status_message(fleet, host, policy, self._timezone)
            case RealtimeCommand(host):
                fleet = await gateway.fleet(in_ack=True)
                return fleet_messages.realtime_message(fleet, host, self._thresholds, self._timezone)
            case HelpCommand():
                return messages.help_message(policy)
            case ClaimCommand(selection, purpose, duration):
                claimed = await gateway.claim(user_id, selection, purpose, duration)
                self._home.refresh_each(claimed.concerned)
                outcome = claimed.outcome
                return messages.claim_message(outcome, outcome.claims[0].started_at, self._timezone)
            case ReleaseCommand(selection):
                released = await gateway.release(user_id, selection)
                self._home.refresh_each(released.concerned)
                return messages.release_message(released.outcome)
            case ExtendCommand(selection, duration):
                extended = await gateway.extend(user_id, selection, duration)
                self._home.refresh_each(extended.concerned)
                return messages.extend_message(extended.outcome, policy, extended.outcome.now, self._timezone)
            case UsageCommand():
                view = await gateway.usage(user_id, command)
                return usage_messages.usage_message(view.report, view.team_view)
        raise TypeError(f"unhandled command {command!r}")  # parse_command returns only the cases above
