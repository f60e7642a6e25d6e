"""Pure helpers for Slack's mrkdwn: escaping user text and keeping within Block Kit's limits."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gpubot.core.figures import when


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control syntax.

    This is what defuses `<!channel>`, `<!here>`, `<!everyone>` and `<@U…>` typed by a user.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    """A mention of a Slack user, which Slack renders as their name."""
    return f"<@{user_id}>"


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, marking the cut, never splitting an escape sequence."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    # An entity such as &amp; cut in half would show as garbage; drop the partial entity instead.
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def date_token(moment: datetime, timezone: ZoneInfo) -> str:
    """A Slack date token: each reader sees their own local time; the fallback names the bot's zone."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{when(moment, timezone)}>"
