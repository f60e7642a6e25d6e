"""The weekly digest in Slack: its message (pure, from the report) and its posting (chart upload, then message).

The figures are in the text, for screen readers and mobile, and the chart is an image block showing the file
uploaded just before (Slack's upload flow: files.getUploadURLExternal, the upload, files.completeUploadExternal).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timezone

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.clock import Clock
from gpubot.core.digest import DigestJob
from gpubot.core.ports import DigestStore
from gpubot.core.usage_report import UsageReport
from gpubot.slack.blocks import Block, Message, context, header
from gpubot.slack.usage_messages import report_blocks, totals_line

logger = logging.getLogger(__name__)

_ALT_TEXT = "Charts: average GPU utilization by hour of the week, and GPU-hours held and busy by person."


def digest_message(report: UsageReport, chart_file_id: str | None) -> Message:
    """The digest: team totals, each person's hours held and busy, the purposes, the busiest hours, the chart."""
    title = f"Weekly GPU digest: {report.title}"
    blocks: list[Block] = [header(title), *report_blocks(report, with_people=True)]
    if chart_file_id is not None:
        blocks.append({"type": "image", "slack_file": {"id": chart_file_id}, "alt_text": _ALT_TEXT})
    blocks.append(context("Busy: utilization at the active threshold or any process on the GPU. `/gpu usage team`"))
    return Message(text=f"{title}: {totals_line(report.totals)}", blocks=blocks)


class DigestPoster:
    """Posts a digest a daemon took, once: the chart (if drawn) uploaded, the digest marked posting, the message.

    Args:
        client: the Web API client.
        store: where the digest is marked posting, then posted (or, Slack having refused it, not posted).
        clock: the time those marks carry.
    """

    def __init__(self, client: AsyncWebClient, store: DigestStore, clock: Clock) -> None:
        self._client = client
        self._store = store
        self._clock = clock

    async def post(self, job: DigestJob, chart_png: bytes | None) -> str | None:
        """Post the digest; its message's timestamp, or None when it was not (or may not have been) posted."""
        file_id = await self._upload(job, chart_png) if chart_png is not None else None
        if not await asyncio.to_thread(self._store.digest_posting, job.due_at, job.lease, self._clock.now()):
            logger.info("the digest due %s was taken over by another daemon; not posting it here", job.due_at)
            return None
        message = digest_message(job.report, file_id)
        try:
            posted = await self._client.chat_postMessage(channel=job.channel, text=message.text, blocks=message.blocks)
        except SlackApiError as error:
            # Slack answered, so it was not posted: a later try may, once this lease runs out.
            await asyncio.to_thread(self._store.digest_not_posted, job.due_at, job.lease)
            logger.error("Slack refused the weekly digest for %s: %s", job.channel, error.response.get("error"))
            return None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            logger.warning(
                "the weekly digest may or may not have reached %s (%s); it is not sent again", job.channel, error
            )
            return None
        ts = str(posted["ts"])
        await asyncio.to_thread(self._store.digest_posted, job.due_at, job.lease, self._clock.now(), ts)
        logger.info("posted the weekly digest to %s", job.channel)
        return ts

    async def _upload(self, job: DigestJob, chart_png: bytes) -> str | None:
        day = job.report.until.astimezone(timezone.utc).date().isoformat()
        try:
            uploaded = await self._client.files_upload_v2(
                content=chart_png, filename=f"gpu-usage-{day}.png", title=f"GPU usage, week to {day}"
            )
        except (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            logger.warning("the digest's chart could not be uploaded (%s); posting its figures alone", error)
            return None
        return str(uploaded["files"][0]["id"])
