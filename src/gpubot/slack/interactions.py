"""Buttons and the claim form: parse the payload, one call through the gateway, render, then tell Slack.

The button handlers run after the ack (Slack waits 3 s at most), so they may call the Web API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.errors import CommandError, DurationOutOfBounds, GpubotError
from gpubot.core.policy import Purpose, check_purpose
from gpubot.core.selection import GpuSelection
from gpubot.slack import actions, messages, views
from gpubot.slack.blocks import Message
from gpubot.slack.dm import DirectMessages
from gpubot.slack.gateway import ACK_DEADLINE_S, ServiceGateway
from gpubot.slack.home import HomeTab
from gpubot.slack.people import SlackNames

logger = logging.getLogger(__name__)

# The most a refused claim form waits for Slack to name the holder (who is usually known already).
_NAME_WAIT_S = 0.5


class Interactions:
    """What people do outside `/gpu`: press Release/Extend/Claim, submit the claim form."""

    def __init__(
        self,
        gateway: ServiceGateway,
        client: AsyncWebClient,
        dms: DirectMessages,
        home: HomeTab,
        names: SlackNames,
        timezone: ZoneInfo,
    ) -> None:
        self._gateway = gateway
        self._client = client
        self._dms = dms
        self._home = home
        self._names = names
        self._timezone = timezone

    async def release_pressed(self, user_id: str, value: str, container: Mapping[str, Any]) -> None:
        """Release (a DM's or the Home tab's button), then show the outcome where it was pressed."""
        concerned: Iterable[str] = ()
        try:
            released = await self._gateway.release_claim(user_id, actions.parse_int(value))
            message = messages.release_message(released.outcome)
            concerned = released.concerned
        except GpubotError as error:
            message = messages.error_message(error)
        await self._show(user_id, container, message, concerned)

    async def extend_pressed(self, user_id: str, value: str, container: Mapping[str, Any]) -> None:
        """Extend by the pressed or chosen duration, only if the claim still ends where the button said."""
        concerned: Iterable[str] = ()
        try:
            request = actions.parse_extend_value(value)
            extended = await self._gateway.extend_claim(
                user_id, request.claim_id, request.duration, request.expected_ends_at
            )
            outcome = extended.outcome
            message = messages.extend_message(outcome, self._gateway.policy, outcome.now, self._timezone)
            concerned = extended.concerned
        except GpubotError as error:
            message = messages.error_message(error)
        await self._show(user_id, container, message, concerned)

    async def open_claim_form(self, trigger_id: str, preselect: str | None) -> None:
        """Open the claim form, `preselect` a GPU's label (`3`, or `box-2:3` in a fleet) to pick in it.

        The trigger expires about 3 s after the click, so this runs right after the ack; the form is built from the
        database (a local read) before opening, so it opens complete.
        """
        fleet = await self._gateway.fleet(in_ack=False)
        host, label = actions.split_gpu_label(preselect) if preselect is not None else (None, None)
        view = views.fleet_claim_modal(fleet, self._gateway.policy, host, label)
        await self._client.views_open(trigger_id=trigger_id, view=view)

    async def claim_form_host_picked(self, view_id: str, view_hash: str | None, value: object) -> None:
        """A host was picked in the claim form's menu: show that host's free GPUs in the form (`views.update`).

        The hash makes Slack refuse the update if the form changed meanwhile (e.g. a quicker second pick).
        """
        try:
            host = actions.parse_host(value)
        except CommandError:
            logger.info("a claim form's host menu sent %r, which is no host name; ignored", value)
            return
        fleet = await self._gateway.fleet(in_ack=False)
        view = views.fleet_claim_modal(fleet, self._gateway.policy, host, None)
        await self._client.views_update(view_id=view_id, hash=view_hash, view=view)

    async def submit_claim(self, user_id: str, state: Mapping[str, Any]) -> dict[str, str] | None:
        """Claim what the form asks for, all or nothing. Returns field errors for the form, or None when done.

        This one runs before the ack, whose answer it is. The form closes on submit, so the confirmation
        travels as a DM, queued with the claims and delivered (and retried) by the outbox.
        """
        started = asyncio.get_running_loop().time()
        try:
            selection, purpose, duration = _read_claim_form(state)
            claimed = await self._gateway.claim_from_form(user_id, selection, purpose, duration)
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
        outcome = claimed.outcome
        message = messages.claim_message(outcome, outcome.claims[0].started_at, self._timezone)
        self._home.refresh_each(claimed.concerned, user_id, message)
        return None

    async def _show(
        self, user_id: str, container: Mapping[str, Any], message: Message, concerned: Iterable[str]
    ) -> None:
        """The outcome where the button was pressed; every Home the change concerned, republished once."""
        if container.get("type") == "message":
            # The DM the button was on: its buttons are spent, so they go and the outcome takes their place.
            await self._dms.update(container["channel_id"], container["message_ts"], message)
        self._home.refresh_each(concerned, user_id, message)


def _read_claim_form(state: Mapping[str, Any]) -> tuple[GpuSelection, Purpose, timedelta]:
    try:
        values = state.get("values", {})
        # The one GPU menu (its id names its host in a fleet).
        chosen = [
            option for menu in values[actions.GPUS_INPUT].values() for option in (menu.get("selected_options") or [])
        ]
        picked = [actions.split_gpu_label(actions.parse_gpu_label(option["value"])) for option in chosen]
        labels = tuple(dict.fromkeys(label for _, label in picked))
        hosts = {host for host, _ in picked}
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
    if not labels:
        raise CommandError("Pick at least one GPU.")
    if len(hosts) > 1:
        raise CommandError("Pick GPUs of one host: a claim of several GPUs is on one host.")
    return GpuSelection(labels=labels, host=hosts.pop()), check_purpose(purpose), duration
