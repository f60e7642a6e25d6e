"""What people do in Slack, through the real Bolt app in this process: a listener bug fails here with its
traceback (the e2e tests, which run the daemon as a child process, would only see a reply missing).

Each action republishes the Home tab of each person it concerns exactly once (`views.publish` counted).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from gpubot.core.policy import ClaimPolicy
from gpubot.slack import actions
from gpubot.standin import SlackStandin
from gpubot.standin import payloads as p
from gpubot.standin.calls import Call
from tests.slack.harness import InProcessApp

ALICE = "U0ALICE"
BOB = "U0BOB"
ADMIN = "U0ADMIN"


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture
def gpubot(slack: SlackStandin, caplog: pytest.LogCaptureFixture) -> Iterator[InProcessApp]:
    slack.clear_calls()
    caplog.set_level(logging.DEBUG, logger="gpubot")
    yield InProcessApp(slack, policy=ClaimPolicy(admins=frozenset({ADMIN})))
    # A listener that failed was acked and logged, never raised: its traceback fails the test here.
    failures = [record for record in caplog.records if record.levelno >= logging.WARNING or record.exc_info]
    assert not failures, "\n".join(caplog.handler.format(record) for record in failures)


def run(gpubot: InProcessApp, *bodies: Any) -> list[Any]:
    """Dispatch each body in turn; the acks' bodies."""

    async def main() -> list[Any]:
        return [(await gpubot.dispatch(body)).body for body in bodies]

    return asyncio.run(main())


def open_homes(gpubot: InProcessApp, slack: SlackStandin, *user_ids: str) -> None:
    run(gpubot, *(p.app_home_opened(user_id) for user_id in user_ids))
    slack.clear_calls()


def publishes(slack: SlackStandin) -> dict[str, list[Call]]:
    """The Home views published since the calls were last cleared, by person."""
    published: dict[str, list[Call]] = {}
    for call in slack.calls("views.publish"):
        published.setdefault(call.params["user_id"], []).append(call)
    return published


def shown(call: Call) -> str:
    return json.dumps(call.params, ensure_ascii=False)


def home_button(action_id: str, value: str, user_id: str) -> dict[str, Any]:
    return p.block_actions(action_id, value, user_id=user_id)


def dm_button(action_id: str, value: str, user_id: str) -> dict[str, Any]:
    return p.block_actions(
        action_id,
        value,
        user_id=user_id,
        channel_id=p.dm_channel_id(user_id),
        message_ts=p.slack_ts(7),
        response_url="http://standin.invalid/response/7",
    )


def test_opening_the_home_tab_publishes_it_once_and_a_retried_event_does_not(
    gpubot: InProcessApp, slack: SlackStandin
) -> None:
    gpubot.hold(BOB, 2, "bob's sweep")
    opened = p.app_home_opened(BOB)

    acks = run(gpubot, opened, opened, p.app_home_opened(ALICE, tab="messages"))

    assert acks == [None, None, None]
    (published,) = publishes(slack)[BOB]
    assert published.params["view"]["type"] == "home"
    assert "bob's sweep" in shown(published)
    assert ALICE not in publishes(slack)  # the Messages tab is no Home


@pytest.mark.parametrize("button", [home_button, dm_button], ids=["home", "dm"])
def test_a_release_button_releases_shows_the_outcome_and_republishes_the_home_once(
    gpubot: InProcessApp, slack: SlackStandin, button: Any
) -> None:
    claim_id = gpubot.hold(BOB, 1, "bob's run")
    open_homes(gpubot, slack, BOB, ALICE)

    run(gpubot, button(actions.release_action_id(claim_id), str(claim_id), BOB))

    assert gpubot.store.active_claims("box") == []
    (published,) = publishes(slack)[BOB]
    assert "✅ Released GPU 1" in shown(published)  # the outcome, flashed on top
    assert ALICE not in publishes(slack)  # not concerned
    updates = slack.calls("chat.update")
    if button is dm_button:
        (update,) = updates
        assert update.params["channel"] == p.dm_channel_id(BOB) and "✅ Released GPU 1" in shown(update)
    else:
        assert updates == []


@pytest.mark.parametrize("button", [home_button, dm_button], ids=["home", "dm"])
def test_an_extend_button_extends_shows_the_outcome_and_republishes_the_home_once(
    gpubot: InProcessApp, slack: SlackStandin, button: Any
) -> None:
    claim_id = gpubot.hold(BOB, 1, "bob's run", hours=1)
    (claim,) = gpubot.store.active_claims("box")
    open_homes(gpubot, slack, BOB)

    value = actions.extend_value(claim_id, timedelta(hours=1), claim.ends_at)
    run(gpubot, button(actions.extend_action_id(claim_id, timedelta(hours=1)), value, BOB))

    (extended,) = [c for c in gpubot.store.active_claims("box") if c.id == claim_id]
    assert extended.ends_at == claim.ends_at + timedelta(hours=1)
    assert len(publishes(slack)[BOB]) == 1
    assert len(slack.calls("chat.update")) == (1 if button is dm_button else 0)


def test_an_admin_releasing_someone_elses_claim_republishes_both_homes_once_each(
    gpubot: InProcessApp, slack: SlackStandin
) -> None:
    claim_id = gpubot.hold(ALICE, 0, "alice's run")
    open_homes(gpubot, slack, ALICE, ADMIN, BOB)

    run(gpubot, home_button(actions.release_action_id(claim_id), str(claim_id), ADMIN))

    assert gpubot.store.active_claims("box") == []
    published = publishes(slack)
    assert sorted(published) == [ADMIN, ALICE]
    assert [len(calls) for calls in published.values()] == [1, 1]
    # Alice will be named where a mention cannot render: her name was looked up.
    assert {call.params["user"] for call in slack.calls("users.info")} >= {ALICE}


def test_a_button_that_is_refused_shows_why_on_the_home_tab(gpubot: InProcessApp, slack: SlackStandin) -> None:
    claim_id = gpubot.hold(ALICE, 0, "alice's run")
    open_homes(gpubot, slack, BOB, ALICE)

    run(gpubot, home_button(actions.release_action_id(claim_id), str(claim_id), BOB))

    assert len(gpubot.store.active_claims("box")) == 1
    (published,) = publishes(slack)[BOB]
    assert "⚠️" in shown(published)
    assert ALICE not in publishes(slack)


def test_the_claim_form_submitted_claims_closes_queues_a_dm_and_republishes_the_home_once(
    gpubot: InProcessApp, slack: SlackStandin
) -> None:
    open_homes(gpubot, slack, BOB)
    values: dict[str, Any] = {
        actions.GPUS_INPUT: {
            actions.GPUS_INPUT: {"type": "multi_static_select", "selected_options": [{"value": "1"}, {"value": "3"}]}
        },
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": "ablation"}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "7200"}}
        },
    }

    (ack,) = run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))

    assert ack is None  # the form closes
    claims = gpubot.store.active_claims("box")
    assert sorted(c.gpu_index for c in claims) == [1, 3] and {c.user_id for c in claims} == {BOB}
    far = gpubot.clock.now() + timedelta(days=1)
    assert {item.notice.user_id for item in gpubot.store.pending_notices(far, limit=10)} == {BOB}
    (published,) = publishes(slack)[BOB]
    assert "ablation" in shown(published) and "CUDA_VISIBLE_DEVICES=1,3" in shown(published)


@pytest.mark.parametrize(
    ("body", "preselected"),
    [
        (p.slash_command("claim", response_url="http://standin.invalid/response/1", user_id=BOB), None),
        (home_button(actions.CLAIM_FORM, "", BOB), None),
        (home_button(actions.claim_gpu_action_id(2), "2", BOB), 2),
    ],
    ids=["/gpu claim", "home: claim", "home: claim GPU 2"],
)
def test_the_claim_form_opens_after_an_empty_ack(
    gpubot: InProcessApp, slack: SlackStandin, body: dict[str, Any], preselected: int | None
) -> None:
    (ack,) = run(gpubot, body)

    assert ack is None
    (opened,) = slack.calls("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == actions.CLAIM_MODAL_CALLBACK
    assert opened.params["trigger_id"] == body["trigger_id"]
    initial = json.dumps(view).count('"initial_options"')
    assert initial == (0 if preselected is None else 1)


def test_a_slash_command_change_republishes_each_concerned_home_once(gpubot: InProcessApp, slack: SlackStandin) -> None:
    gpubot.hold(ALICE, 0, "alice's run")
    open_homes(gpubot, slack, ALICE, ADMIN, BOB)
    url = "http://standin.invalid/response/1"

    (reply,) = run(gpubot, p.slash_command("release 0", response_url=url, user_id=ADMIN))

    assert reply["response_type"] == "ephemeral"
    assert gpubot.store.active_claims("box") == []
    published = publishes(slack)
    assert sorted(published) == [ADMIN, ALICE] and [len(calls) for calls in published.values()] == [1, 1]


def test_the_claim_forms_confirmation_arrives_as_a_dm(gpubot: InProcessApp, slack: SlackStandin) -> None:
    values: dict[str, Any] = {
        actions.GPUS_INPUT: {actions.GPUS_INPUT: {"type": "multi_static_select", "selected_options": [{"value": "2"}]}},
        actions.PURPOSE_INPUT: {actions.PURPOSE_INPUT: {"type": "plain_text_input", "value": "eval"}},
        actions.DURATION_INPUT: {
            actions.DURATION_INPUT: {"type": "static_select", "selected_option": {"value": "3600"}}
        },
    }
    run(gpubot, p.view_submission(actions.CLAIM_MODAL_CALLBACK, values, user_id=BOB))

    assert asyncio.run(gpubot.deliver_notices()) == 1
    (posted,) = slack.calls("chat.postMessage")
    assert posted.params["channel"] == p.dm_channel_id(BOB) and "GPU 2" in posted.params["text"]


def test_an_expiry_warning_dm_arrives_and_its_extend_button_works(gpubot: InProcessApp, slack: SlackStandin) -> None:
    claim_id = gpubot.hold(BOB, 3, "bob's run", hours=1)
    open_homes(gpubot, slack, BOB)
    gpubot.clock.advance(timedelta(minutes=50))
    warned = asyncio.run(gpubot.gateway.process_due())
    assert [claim.id for claim in warned.outcome.warned] == [claim_id]
    assert asyncio.run(gpubot.deliver_notices()) == 1
    (posted,) = slack.calls("chat.postMessage")
    blocks = posted.params["blocks"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]
    extend = next(button for button in buttons if actions.EXTEND_PATTERN.fullmatch(button["action_id"]))
    assert any(actions.RELEASE_PATTERN.fullmatch(button["action_id"]) for button in buttons)
    channel, ts = posted.response["channel"], posted.response["ts"]
    slack.clear_calls()

    url = "http://standin.invalid/response/8"
    pressed = p.block_actions(
        extend["action_id"], extend["value"], user_id=BOB, channel_id=channel, message_ts=ts, response_url=url
    )
    (claim,) = gpubot.store.active_claims("box")
    run(gpubot, pressed)

    (extended,) = gpubot.store.active_claims("box")
    assert extended.ends_at > claim.ends_at
    (update,) = slack.calls("chat.update")  # the warning's buttons are spent: the outcome replaces them
    assert update.params["ts"] == ts and "✅ GPU 3 now ends" in shown(update)
    assert len(publishes(slack)[BOB]) == 1


def test_a_force_released_holder_gets_a_dm_naming_the_admin(gpubot: InProcessApp, slack: SlackStandin) -> None:
    claim_id = gpubot.hold(ALICE, 0, "alice's run")

    run(gpubot, dm_button(actions.release_action_id(claim_id), str(claim_id), ADMIN))
    assert asyncio.run(gpubot.deliver_notices()) == 1

    (posted,) = slack.calls("chat.postMessage")
    assert posted.params["channel"] in (ALICE, p.dm_channel_id(ALICE)) and f"<@{ADMIN}>" in shown(posted)
