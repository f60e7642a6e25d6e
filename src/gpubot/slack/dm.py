"""Direct messages to people: the one place that opens DM channels and posts or updates DMs."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from gpubot.slack.blocks import Message

# The bot's own recent DMs to one person: a lost answer is looked for among the last few only.
_HISTORY_PAGE = 200


class DirectMessages:
    """Posts and updates DMs from the bot, remembering each person's DM channel."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._channels: dict[str, str] = {}

    async def send(self, user_id: str, message: Message, metadata: dict[str, Any] | None = None) -> None:
        """Post `message` to the person's DM with the bot, with Slack message `metadata` if given.

        Raises:
            SlackApiError: Slack refused (rate limit, bad token, …).
        """
        channel = await self.channel(user_id)
        await self._client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks, metadata=metadata
        )

    async def find_posted(self, user_id: str, event_type: str, payload: dict[str, Any]) -> bool:
        """Whether one of the latest messages in the person's DM carries this metadata.

        That is, metadata of `event_type` with an `event_payload` holding `payload`: the way to tell whether a post
        whose answer was lost reached Slack (needs the `im:history` scope). The latest page, not "since the attempt":
        Slack's clock is not ours, and a lost post is minutes old, far fewer messages back than a page holds.

        Raises:
            SlackApiError: Slack refused.
        """
        channel = await self.channel(user_id)
        response = await self._client.conversations_history(
            channel=channel, include_all_metadata=True, limit=_HISTORY_PAGE
        )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            found = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and all(found.get(k) == v for k, v in payload.items()):
                return True
        return False

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Replace a message the bot posted, e.g. a warning whose buttons were just used.

        Raises:
            SlackApiError: Slack refused.
        """
        await self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)

    async def channel(self, user_id: str) -> str:
        """The person's DM channel with the bot, opened once and then remembered.

        Raises:
            SlackApiError: Slack refused.
        """
        channel = self._channels.get(user_id)
        if channel is None:
            response = await self._client.conversations_open(users=user_id)
            channel = str(response["channel"]["id"])
            self._channels[user_id] = channel
        return channel
