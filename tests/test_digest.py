"""The weekly digest end to end in one process: a real SQLite store, the real Slack client, the stand-in."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from gpubot.core.digest import DigestSchedule, WeeklyDigest
from gpubot.core.models import ClaimStatus, EventKind, Gpu, NewClaim, Person
from gpubot.core.people import PeopleDirectory
from gpubot.core.usage_report import PersonUsage, UsageFigures, UsageTotals, usage_report
from gpubot.daemon.digest_job import post_digest
from gpubot.slack.digest import DigestPoster, digest_message
from gpubot.standin import SlackStandin
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from tests.fakes import FakeClock
from tests.slack.test_fleet_blocks import within_limits

BERLIN = ZoneInfo("Europe/Berlin")
DUE = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)  # Monday 09:00 in Berlin
SCHEDULE = DigestSchedule.parse("mon 09:00", BERLIN)


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    store = SqlClaimStore(engine)
    gpu = Gpu("box", "GPU-0", 0, "NVIDIA H100 80GB HBM3")
    store.sync_gpus("box", [gpu], DUE - timedelta(days=3))
    store.save_person(Person("U0ALICE", "alice", DUE))
    started = DUE - timedelta(days=2)
    [claim] = store.create_claims([NewClaim(gpu, "U0ALICE", "fine-tune llama", started, started + timedelta(hours=4))])
    store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U0ALICE", started + timedelta(hours=3))
    yield store
    engine.dispose()


def run_digest(slack: SlackStandin, store: SqlClaimStore, clock: FakeClock):
    weekly = WeeklyDigest(store, store, clock, SCHEDULE, "C0DIGEST")
    client = AsyncWebClient(base_url=slack.api_url, token=slack.bot_token)
    job = weekly.take_due()
    if job is None:
        return None
    return asyncio.run(post_digest(job, DigestPoster(client, store, clock), PeopleDirectory(store, clock)))


def test_the_due_digest_goes_out_once_with_its_chart_and_its_figures_in_text(store):
    clock = FakeClock(DUE + timedelta(minutes=1))
    with SlackStandin() as slack:
        ts = run_digest(slack, store, clock)
        assert ts is not None
        assert run_digest(slack, store, clock) is None  # taken: a second daemon, or the next minute's check

        [posted] = [call for call in slack.calls("chat.postMessage") if call.params["channel"] == "C0DIGEST"]
        text = json.dumps(posted.params["blocks"], ensure_ascii=False)
        assert "Weekly GPU digest: the team, week to Mon 23 Nov" in text
        assert "*1 claim* — held 3.0 GPU-h" in text and "<@U0ALICE>" in text and "fine-tune llama (3.0 GPU-h)" in text
        [image] = [block for block in posted.params["blocks"] if block["type"] == "image"]
        uploaded = slack.uploaded(image["slack_file"]["id"])
        assert uploaded is not None and uploaded.data is not None and uploaded.data.startswith(b"\x89PNG")
        assert uploaded.filename == "gpu-usage-2026-11-23.png"


def test_nothing_goes_out_before_it_is_due_or_a_day_after(store):
    with SlackStandin() as slack:
        assert run_digest(slack, store, FakeClock(DUE + timedelta(days=1, minutes=1))) is None
        assert slack.calls("chat.postMessage") == []


def test_slack_refusing_it_leaves_it_for_a_later_try(store):
    clock = FakeClock(DUE + timedelta(minutes=1))
    with SlackStandin() as slack:
        slack.fail_next("chat.postMessage", "not_in_channel")
        assert run_digest(slack, store, clock) is None
        clock.advance(timedelta(minutes=6))  # the lease ran out
        assert run_digest(slack, store, clock) is not None
        assert len([c for c in slack.calls("chat.postMessage") if c.http_status == 200 and c.response["ok"]]) == 1


def test_the_digest_message_stays_within_block_kit_limits_for_a_big_team():
    people = tuple(PersonUsage(f"U{n:08d}", UsageTotals(n * 3600.0, n * 3600.0, n * 1800.0, n)) for n in range(1, 300))
    report = usage_report("the team", DUE - timedelta(days=7), DUE, UsageFigures(people=people), BERLIN)
    message = digest_message(report, "F000000001")
    within_limits(message.blocks, 50)
    assert message.blocks[-2]["type"] == "image" and "more people" in json.dumps(message.blocks)
    assert message.text.startswith("Weekly GPU digest: the team: held")
