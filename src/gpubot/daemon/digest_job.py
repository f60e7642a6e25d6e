"""The weekly digest's job: take the due digest (one daemon of the fleet does), draw its chart in a child, post it.

Also `gpubot digest --now`, which posts one at once through the same steps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient

from gpubot.charts.digest_chart import ChartError, chart_input, render_digest_chart
from gpubot.core.digest import DigestJob, WeeklyDigest
from gpubot.core.people import PeopleDirectory
from gpubot.settings import Settings
from gpubot.slack.digest import DigestPoster
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.preflight import require_head
from gpubot.system_clock import SystemClock

logger = logging.getLogger(__name__)

# How often a daemon looks whether a digest is due: it goes out within this of its time.
DIGEST_CHECK_INTERVAL = timedelta(minutes=1)


def digest_tick(
    take: Callable[[], DigestJob | None], poster: DigestPoster, people: PeopleDirectory
) -> Callable[[], Awaitable[None]]:
    """The job: take the due digest if nobody did (`WeeklyDigest.take_due`, blocking), then post it."""

    async def tick() -> None:
        job = await asyncio.to_thread(take)
        if job is not None:
            await post_digest(job, poster, people)

    return tick


async def post_digest(job: DigestJob, poster: DigestPoster, people: PeopleDirectory) -> str | None:
    """Draw the chart in a child process (without it, the figures go alone) and post; the message's timestamp."""
    names = await asyncio.to_thread(people.names, [person.user_id for person in job.report.people])
    try:
        chart: bytes | None = await asyncio.to_thread(render_digest_chart, chart_input(job.report, names))
    except ChartError as error:
        logger.warning("%s; the digest goes out with its figures only", error.message)
        chart = None
    return await poster.post(job, chart)


async def post_digest_now(settings: Settings) -> str | None:
    """Post it to GPUBOT_DIGEST_CHANNEL; the message's timestamp, or None (logged) when it was not posted.

    Raises:
        StoreUnavailable: the database cannot be opened or is not at the newest schema.
    """
    assert settings.digest_channel is not None  # the CLI checked
    engine = make_engine(settings.database_url)
    try:
        require_head(engine)
        store, clock = SqlClaimStore(engine), SystemClock()
        weekly = WeeklyDigest(store, store, clock, settings.digest_schedule, settings.digest_channel)
        job = weekly.take_now()
        if job is None:
            logger.error("another digest is being posted this moment")
            return None
        client = AsyncWebClient(base_url=settings.slack_api_url, token=settings.slack_bot_token)
        return await post_digest(job, DigestPoster(client, store, clock), PeopleDirectory(store, clock))
    finally:
        engine.dispose()
