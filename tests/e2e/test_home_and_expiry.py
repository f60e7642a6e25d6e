"""Issue 3 end to end: the App Home tab, the claim form, DM buttons, and expiry in real seconds."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest

from gpubot.standin import SlackStandin, payloads

from .conftest import reply_text, start_daemon


def claim_form(gpus, purpose, seconds):
    """`view.state` of the claim form as Slack sends it on submit."""
    return {
        "gpus": {
            "gpus": {
                "type": "multi_static_select",
                "selected_options": [
                    {"text": {"type": "plain_text", "text": f"GPU {i}"}, "value": str(i)} for i in gpus
                ],
            }
        },
        "purpose": {"purpose": {"type": "plain_text_input", "value": purpose}},
        "duration": {
            "duration": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": str(seconds)},
            }
        },
    }


def published_to(slack, user, after=0):
    """The views this user was published, newest last, from the `after`-th call on."""
    return [call.params["view"] for call in slack.calls("views.publish") if call.params.get("user_id") == user][after:]


def wait_for_publish(slack, user, count, timeout=10):
    calls = slack.wait_for_calls("views.publish", count, lambda c: c.params.get("user_id") == user, timeout=timeout)
    return calls[-1].params["view"]


def action_ids(view):
    ids = [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    return ids + [b["accessory"]["action_id"] for b in view["blocks"] if "accessory" in b]


def dms_to(slack, user, predicate=lambda text: True):
    channel = payloads.dm_channel_id(user)
    return [
        call
        for call in slack.calls("chat.postMessage")
        if call.params.get("channel") == channel
        and predicate(json.dumps(call.params.get("blocks"), ensure_ascii=False))
    ]


def wait_for_dm(slack, user, fragment, timeout=15):
    """The first DM to `user` containing `fragment` that Slack accepted."""
    channel = payloads.dm_channel_id(user)

    def matches(call):
        text = json.dumps(call.params.get("blocks"), ensure_ascii=False)
        return call.http_status == 200 and call.params.get("channel") == channel and fragment in text

    return slack.wait_for_call("chat.postMessage", matches, timeout=timeout)


class TestHomeTab:
    def test_opening_home_publishes_every_gpu_with_claim_buttons(self, slack, daemon):
        ack = slack.open_home("U0HOME1")
        assert ack.payload is None or "errors" not in ack.payload
        view = wait_for_publish(slack, "U0HOME1", 1)
        assert view["type"] == "home"
        ids = action_ids(view)
        assert "open_claim_form" in ids and "claim_gpu:0" in ids and "claim_gpu:2" in ids
        assert "claim_gpu:3" not in ids  # GPU 3 is not responding: it cannot be claimed
        text = json.dumps(view, ensure_ascii=False)
        assert "You hold no GPUs" in text and "of 4 free" in text

    def test_claim_through_the_form_then_release_from_home(self, slack, daemon):
        user = "U0HOME2"
        slack.open_home(user)
        wait_for_publish(slack, user, 1)
        slack.clear_calls()

        slack.action("claim_gpu:1", "1", user_id=user)
        opened = slack.wait_for_call("views.open")
        modal = opened.params["view"]
        assert modal["blocks"][0]["element"]["initial_options"][0]["value"] == "1"
        assert opened.params["trigger_id"]

        # The confirmation DM goes through the outbox: a rate-limited first try is retried, not lost.
        slack.rate_limit_next("chat.postMessage", retry_after_s=1)
        ack = slack.submit_view("claim_form", claim_form([1], "from the form", 3600), user_id=user)
        assert ack.payload is None or not ack.payload.get("errors")
        home = wait_for_publish(slack, user, 1)
        assert "release:" in " ".join(action_ids(home)) and "from the form" in json.dumps(home)
        assert f"<@{user}>" in reply_text(slack.command("status", user_id="U0OTHER"))
        wait_for_dm(slack, user, "CUDA_VISIBLE_DEVICES=1")

        release_id = next(i for i in action_ids(home) if i.startswith("release:"))
        slack.action(release_id, release_id.split(":")[1], user_id=user)
        home = wait_for_publish(slack, user, 2)
        assert "Released GPU 1." in json.dumps(home) and "You hold no GPUs" in json.dumps(home)
        assert "4 of 4 GPUs free" in reply_text(slack.command("status", user_id="U0OTHER"))

    def test_extend_from_home_twice_extends_once(self, slack, daemon):
        user = "U0HOME3"
        slack.command("claim 2 extend me 1h", user_id=user)
        slack.open_home(user)
        home = wait_for_publish(slack, user, 1)
        plus_one = next(
            e
            for b in home["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"].endswith(":3600")
        )
        slack.clear_calls()
        slack.action(plus_one["action_id"], plus_one["value"], user_id=user)
        first = wait_for_publish(slack, user, 1)
        slack.action(plus_one["action_id"], plus_one["value"], user_id=user)  # the same, stale button
        second = wait_for_publish(slack, user, 2)
        assert "2h left" in json.dumps(first, ensure_ascii=False)
        assert "already changed" in json.dumps(second) and "2h left" in json.dumps(second, ensure_ascii=False)
        slack.command("release all", user_id=user)

    def test_claim_form_errors_come_back_on_their_fields_and_nothing_is_half_claimed(self, slack, daemon):
        slack.command("claim 0 someone else's", user_id="U0HOLDER")
        cases = [
            # Plain text, where a mention cannot render: the holder by the name Slack gives (issue 11, point 13).
            (claim_form([0, 1], "two please", 3600), "gpus", "already claimed by u0holder."),
            (claim_form([1], "", 3600), "purpose", "what the GPU is for"),
            (claim_form([1], "too long", 13 * 3600), "duration", "maximum"),
            (claim_form([], "nothing picked", 3600), "gpus", "at least one"),
        ]
        for state, field, fragment in cases:
            ack = slack.submit_view("claim_form", state, user_id="U0FORM")
            assert ack.payload["response_action"] == "errors"
            assert list(ack.payload["errors"]) == [field] and fragment in ack.payload["errors"][field]
        status = reply_text(slack.command("status", user_id="U0FORM"))
        assert "3 of 4 GPUs free" in status and "U0FORM" not in status
        slack.command("release all", user_id="U0HOLDER")

    def test_gpu_claim_with_nothing_after_it_opens_the_form(self, slack, daemon):
        slack.clear_calls()
        ack = slack.command("claim", user_id="U0HOME4")
        assert not (ack.payload or {}).get("blocks")
        assert slack.wait_for_call("views.open").params["view"]["callback_id"] == "claim_form"

    def test_a_retried_event_is_not_handled_twice(self, slack, daemon):
        slack.clear_calls()
        event = payloads.app_home_opened("U0RETRY")
        slack.send("events_api", event)
        wait_for_publish(slack, "U0RETRY", 1)
        slack.send("events_api", event, retry_attempt=1)
        time.sleep(0.5)  # give a wrongly repeated publish the time to show up
        assert len(published_to(slack, "U0RETRY")) == 1


@pytest.fixture
def fresh_slack():
    with SlackStandin() as standin:
        yield standin


def test_warning_dm_buttons_extend_once_then_release(fresh_slack, tmp_path):
    slack = fresh_slack
    # Warn an hour ahead: a 2 h claim is warned at the first tick.
    daemon = start_daemon(slack, tmp_path, GPUBOT_WARN_BEFORE="3h")
    try:
        slack.command("claim 0 warn me 2h", user_id="U0ALICE")
        warning = wait_for_dm(slack, "U0ALICE", "ends")
        buttons = warning.params["blocks"][-1]["elements"]
        extend = buttons[0]
        channel, ts = warning.params["channel"], warning.response["ts"]

        slack.action(extend["action_id"], extend["value"], user_id="U0ALICE", channel_id=channel, message_ts=ts)
        update = slack.wait_for_call("chat.update", lambda c: c.params["ts"] == ts)
        assert "now ends" in json.dumps(update.params["blocks"]) and "actions" not in json.dumps(
            update.params["blocks"]
        )
        slack.action(extend["action_id"], extend["value"], user_id="U0ALICE", channel_id=channel, message_ts=ts)
        slack.wait_for_calls("chat.update", 2, lambda c: c.params["ts"] == ts)
        assert "already changed" in json.dumps(slack.calls("chat.update")[-1].params["blocks"])
        status = reply_text(slack.command("status", user_id="U0BOB"))
        assert "3h left" in status  # extended by one hour, once

        release = buttons[2]
        slack.action(release["action_id"], release["value"], user_id="U0ALICE", channel_id=channel, message_ts=ts)
        slack.wait_for_calls("chat.update", 3, lambda c: c.params["ts"] == ts)
        assert "Released GPU 0" in json.dumps(slack.calls("chat.update")[-1].params["blocks"])
        slack.action(release["action_id"], release["value"], user_id="U0ALICE", channel_id=channel, message_ts=ts)
        slack.wait_for_calls("chat.update", 4, lambda c: c.params["ts"] == ts)
        assert "already ended" in json.dumps(slack.calls("chat.update")[-1].params["blocks"])
        assert "4 of 4 GPUs free" in reply_text(slack.command("status", user_id="U0BOB"))
    finally:
        assert daemon.stop()[0] == 0


SHORT = {"GPUBOT_MIN_DURATION": "10s", "GPUBOT_WARN_BEFORE": "10s"}


def test_a_20s_claim_is_warned_then_expired_and_the_gpu_freed(fresh_slack, tmp_path):
    slack = fresh_slack
    daemon = start_daemon(slack, tmp_path, **SHORT)
    try:
        started = time.monotonic()
        slack.command("claim 1 short job 20s", user_id="U0ALICE")
        wait_for_dm(slack, "U0ALICE", "ends", timeout=20)
        warned_after = time.monotonic() - started
        expired = wait_for_dm(slack, "U0ALICE", "free again", timeout=25)
        expired_after = time.monotonic() - started
        assert 8 <= warned_after <= 10 + 5 and 19 <= expired_after <= 20 + 5
        # The receipt: GPU 1 of the fake host is idle with no process, and was sampled every second.
        receipt = json.dumps(expired.params["blocks"], ensure_ascii=False)
        assert re.search(r"🧾 held 2\ds · busy 0m \(0%\) · average utilization 0%", receipt), receipt
        assert "4 of 4 GPUs free" in reply_text(slack.command("status", user_id="U0BOB"))
        assert len(dms_to(slack, "U0ALICE", lambda t: "ends" in t)) == 1
    finally:
        assert daemon.stop()[0] == 0


def test_a_restart_between_claim_and_warning_still_warns_once(fresh_slack, tmp_path):
    slack = fresh_slack
    first = start_daemon(slack, tmp_path, **SHORT)
    slack.command("claim 2 survives a restart 20s", user_id="U0ALICE")
    assert first.stop()[0] == 0
    second = start_daemon(slack, tmp_path, **SHORT)
    try:
        wait_for_dm(slack, "U0ALICE", "ends", timeout=20)
        wait_for_dm(slack, "U0ALICE", "free again", timeout=25)
        assert len(dms_to(slack, "U0ALICE", lambda t: "ends" in t and "GPU 2" in t)) == 1
        assert len(dms_to(slack, "U0ALICE", lambda t: "free again" in t)) == 1
    finally:
        assert second.stop()[0] == 0


def test_dms_owed_while_slack_is_down_are_delivered_once_it_is_back(fresh_slack, tmp_path):
    slack = fresh_slack
    daemon = start_daemon(slack, tmp_path, GPUBOT_WARN_BEFORE="3h")
    try:
        slack.rate_limit_next("chat.postMessage", retry_after_s=1, times=2)
        slack.command("claim 2 rate limited 2h", user_id="U0ALICE")
        wait_for_dm(slack, "U0ALICE", "ends", timeout=20)
        assert len([c for c in slack.calls("chat.postMessage") if c.http_status == 429]) == 2
        assert len(dms_to(slack, "U0ALICE", lambda t: "ends" in t)) == 3  # two refused, one delivered
    finally:
        assert daemon.stop()[0] == 0


def test_a_dm_waiting_out_a_rate_limit_survives_a_locked_database(fresh_slack, tmp_path):
    # Issue 11's reproduction: a DM waits on a 429's Retry-After while another process holds the database
    # with BEGIN EXCLUSIVE for 8 s; the sender's writes fail meanwhile. Once the lock goes, the DM goes out,
    # once, and the failure is logged once, not per retry.
    slack = fresh_slack
    daemon = start_daemon(slack, tmp_path, GPUBOT_WARN_BEFORE="3h")
    try:
        slack.rate_limit_next("chat.postMessage", retry_after_s=1)
        slack.command("claim 2 locked out 2h", user_id="U0LOCK")
        slack.wait_for_call("chat.postMessage", lambda call: call.http_status == 429, timeout=15)
        locker = sqlite3.connect(tmp_path / "gpubot.db", isolation_level=None, timeout=10)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            time.sleep(8)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        wait_for_dm(slack, "U0LOCK", "ends", timeout=40)
        time.sleep(2)  # a second delivery, were there one, would come now
        assert len(dms_to(slack, "U0LOCK", lambda t: "ends" in t)) == 2  # the refused one, then the delivered
        log = daemon.log()
        assert log.count("DM sender failed") == 1, log
        assert "DM sender recovered" in log, log
        slack.command("release 2", user_id="U0LOCK")
    finally:
        assert daemon.stop()[0] == 0
