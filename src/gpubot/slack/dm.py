"""Direct messages to people: the one place that opens DM channels and posts or updates DMs."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from gpubot.slack.blocks import Message


class DirectMessages:
    """Posts and updates DMs from the bot, remembering each person's DM channel."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._channels: dict[str, str] = {}

    async def send(self, user_id: str, message: Message) -> None:
        """Post `message` to the person's DM with the bot.

        Raises:
            SlackApiError: Slack refused (rate limit, bad token, …).
        """
        channel = await self._channel(user_id)
        await self._client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Replace a message the bot posted, e.g. a warning whose buttons were just used.

        Raises:
            SlackApiError: Slack refused.
        """
        await self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)

    async def _channel(self, user_id: str) -> str:
        channel = self._channels.get(user_id)
        if channel is None:
            response = await self._client.conversations_open(users=user_id)
            channel = str(response["channel"]["id"])
            self._channels[user_id] = channel
        return channel
