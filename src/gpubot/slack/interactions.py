"""Buttons and the claim form: parse the payload, one service call, render, then tell Slack.

The button handlers run after the ack (Slack waits 3 s at most), so they may call the Web API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.errors import CommandError, DurationOutOfBounds, GpubotError
from gpubot.core.models import HostSample
from gpubot.core.policy import Purpose, check_purpose
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimOutcome, ClaimService
from gpubot.slack import actions, messages, views
from gpubot.slack.blocks import Message
from gpubot.slack.dm import DirectMessages
from gpubot.slack.home import HomeTab
from gpubot.slack.people import SlackNames
from gpubot.slack.reads import ACK_DEADLINE_S, StateReads, before_ack

logger = logging.getLogger(__name__)

# The most a refused claim form waits for Slack to name the holder (who is usually known already).
_NAME_WAIT_S = 0.5


class Interactions:
    """What people do outside `/gpu`: press Release/Extend/Claim, submit the claim form."""

    def __init__(
        self,
        service: ClaimService,
        client: AsyncWebClient,
        dms: DirectMessages,
        home: HomeTab,
        timezone: ZoneInfo,
        after_change: Callable[[Iterable[str]], None],
        reads: StateReads | None = None,
        *,
        latest_sample: Callable[[], HostSample | None],
        names: SlackNames,
    ) -> None:
        self._service = service
        self._latest_sample = latest_sample
        self._names = names
        self._reads = reads or StateReads()
        self._client = client
        self._dms = dms
        self._home = home
        self._timezone = timezone
        self._after_change = after_change

    async def release_pressed(self, user_id: str, value: str, container: Mapping[str, Any]) -> None:
        """Release (a DM's or the Home tab's button), then show the outcome where it was pressed."""
        try:
            outcome = await asyncio.to_thread(self._service.release_claim, user_id, actions.parse_int(value))
            message = messages.release_message(outcome)
            self._after_change([user_id, *(claim.user_id for claim in outcome.forced)])
        except GpubotError as error:
            message = messages.error_message(error)
        await self._show(user_id, container, message)

    async def extend_pressed(self, user_id: str, value: str, container: Mapping[str, Any]) -> None:
        """Extend by the pressed or chosen duration, only if the claim still ends where the button said."""
        try:
            request = actions.parse_extend_value(value)
            outcome = await asyncio.to_thread(
                self._service.extend_claim, user_id, request.claim_id, request.duration, request.expected_ends_at
            )
            message = messages.extend_message(outcome, self._service.policy, outcome.now, self._timezone)
            self._after_change([user_id])
        except GpubotError as error:
            message = messages.error_message(error)
        await self._show(user_id, container, message)

    async def open_claim_form(self, trigger_id: str, preselect: int | None) -> None:
        """Open the claim form. The trigger expires about 3 s after the click, so this runs right after the ack;
        the form is built from the database (a local read) before opening, so it opens complete."""
        dashboard = await self._reads.read(self._service.dashboard, self._latest_sample(), in_ack=False)
        view = views.claim_modal(dashboard, self._service.policy, preselect)
        await self._client.views_open(trigger_id=trigger_id, view=view)

    async def submit_claim(self, user_id: str, state: Mapping[str, Any]) -> dict[str, str] | None:
        """Claim what the form asks for, all or nothing. Returns field errors for the form, or None when done.

        This one runs before the ack, whose answer it is. The form closes on submit, so the confirmation
        travels as a DM, queued with the claims and delivered (and retried) by the outbox.
        """
        started = asyncio.get_running_loop().time()
        try:
            selection, purpose, duration = _read_claim_form(state)
            outcome = await before_ack(self._claim_confirmed_by_dm, user_id, selection, purpose, duration)
        except GpubotError as error:
            # Field errors are plain text: the holder is named, looked up in what time the ack has left.
            left_s = ACK_DEADLINE_S - (asyncio.get_running_loop().time() - started)
            names = await self._names.names(error.people, min(_NAME_WAIT_S, max(left_s, 0.0)))
            return views.claim_modal_errors(error, names)
        except Exception:
            # The one boundary where an unexpected failure becomes an answer: an ack without one would leave
            # the form spinning until Slack gives up on it.
            logger.exception("the claim form from %s failed", user_id)
            return views.claim_modal_internal_error()
        self._after_change([user_id])
        message = messages.claim_message(outcome, outcome.claims[0].started_at, self._timezone)
        self._home.refresh(user_id, flash=message)
        return None

    def _claim_confirmed_by_dm(
        self, user_id: str, selection: GpuSelection, purpose: Purpose, duration: timedelta
    ) -> ClaimOutcome:
        sample = self._latest_sample()
        return self._service.claim(user_id, selection, purpose, duration, sample, confirm_by_dm=True)

    async def _show(self, user_id: str, container: Mapping[str, Any], message: Message) -> None:
        if container.get("type") == "message":
            # The DM the button was on: its buttons are spent, so they go and the outcome takes their place.
            await self._dms.update(container["channel_id"], container["message_ts"], message)
        self._home.refresh(user_id, flash=message)


def _read_claim_form(state: Mapping[str, Any]) -> tuple[GpuSelection, Purpose, timedelta]:
    try:
        values = state.get("values", {})
        chosen = values[actions.GPUS_INPUT][actions.GPUS_INPUT].get("selected_options") or []
        indices = tuple(actions.parse_int(option["value"]) for option in chosen)
        purpose = values[actions.PURPOSE_INPUT][actions.PURPOSE_INPUT].get("value") or ""
        duration_option = values[actions.DURATION_INPUT][actions.DURATION_INPUT].get("selected_option") or {}
        duration_value = duration_option.get("value")
    except (KeyError, TypeError, AttributeError):
        raise CommandError("The claim form came back incomplete; open it again.") from None
    if not isinstance(purpose, str):
        raise CommandError("The claim form came back incomplete; open it again.")
    try:
        duration = actions.parse_seconds(duration_value)
    except CommandError:
        raise DurationOutOfBounds("Pick how long you need the GPUs.") from None
    if not indices:
        raise CommandError("Pick at least one GPU.")
    return GpuSelection(indices=indices), check_purpose(purpose), duration
