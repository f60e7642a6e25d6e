"""People's display names from Slack (`users.info`, scope users:read), for what cannot render a mention.

A name is looked up once and kept (`PeopleDirectory`: memory and the database, where the host CLI reads it),
then refreshed when a day old. Look-ups run after the ack, never delaying a reply; the one place that needs
a name before its ack (the claim form's plain-text errors) waits only briefly, then falls back to the ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.errors import GpubotError
from gpubot.core.people import PeopleDirectory
from gpubot.slack.tasks import AfterAck

logger = logging.getLogger(__name__)

# Slack user IDs; the audit log's other actors ("host:root") have no Slack profile.
_USER_ID = re.compile(r"[UW][A-Z0-9]+")


class SlackNames:
    """Learns people's names from Slack and answers with the ones known."""

    def __init__(self, directory: PeopleDirectory, client: AsyncWebClient, after_ack: AfterAck) -> None:
        self._directory = directory
        self._client = client
        self._after_ack = after_ack
        self._in_flight: set[str] = set()

    def learn(self, user_ids: Iterable[str]) -> None:
        """Look these people up after the ack, unless their names are known and fresh (a memory check)."""
        for user_id in set(user_ids):
            if user_id in self._in_flight or not _USER_ID.fullmatch(user_id) or self._directory.is_fresh(user_id):
                continue
            self._in_flight.add(user_id)
            self._after_ack.spawn(self._refresh(user_id), f"looking up the name of {user_id}")

    async def names(self, user_ids: Iterable[str], wait_s: float) -> dict[str, str]:
        """The names of these people: those known, and those Slack gives within `wait_s`; the rest left out."""
        wanted = {user_id for user_id in user_ids if _USER_ID.fullmatch(user_id)}
        known = await asyncio.to_thread(self._directory.names, wanted)
        missing = wanted - known.keys()
        if missing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(self._look_up_and_keep(u) for u in missing)), wait_s)
            known.update(await asyncio.to_thread(self._directory.names, missing))
        return known

    async def _refresh(self, user_id: str) -> None:
        try:
            if await asyncio.to_thread(self._directory.needs_lookup, user_id):
                await self._look_up_and_keep(user_id)
        finally:
            self._in_flight.discard(user_id)

    async def _look_up_and_keep(self, user_id: str) -> None:
        name = await self._look_up(user_id)
        if name is None:
            return
        try:
            await asyncio.to_thread(self._directory.remember, user_id, name)
        except GpubotError as error:  # the database stayed busy: the next change tries again
            logger.warning("could not keep the name of %s: %s", user_id, error.message)

    async def _look_up(self, user_id: str) -> str | None:
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as error:
            logger.warning("users.info for %s failed: %s", user_id, error.response.get("error", "error"))
            return None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            logger.warning("users.info for %s failed: %s", user_id, str(error) or type(error).__name__)
            return None
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        # What Slack itself shows: the display name people chose, else their full name, else the handle.
        for candidate in (
            profile.get("display_name"),
            profile.get("real_name"),
            user.get("real_name"),
            user.get("name"),
        ):
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
        return None
