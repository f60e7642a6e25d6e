"""The payload builders carry every key of the payloads Slack really sends."""

from __future__ import annotations

import pytest

from gpubot.standin import payloads as p
from tests.standin.conftest import missing_keys, recorded

RESPONSE_URL = "http://127.0.0.1:1/response/1"


def test_slash_command_matches_a_recorded_one() -> None:
    ours = p.slash_command("claim 0 2h", response_url=RESPONSE_URL, user_id="U0BOB")
    theirs = recorded("slash_commands_envelope_sdk_mock.json")

    assert set(ours) == set(theirs["payload"])
    assert (ours["text"], ours["user_id"], ours["command"]) == ("claim 0 2h", "U0BOB", "/gpu")
    envelope = p.envelope("slash_commands", ours, envelope_id="e1")
    assert set(envelope) == set(theirs) and envelope["accepts_response_payload"] is True


def test_home_tab_button_matches_a_recorded_one() -> None:
    ours = p.block_actions("release", "0", user_id="U0BOB")

    # Only buttons given a style carry one.
    assert missing_keys(recorded("block_actions_home_tab_button_payload.json"), ours) == {"actions.0.style"}
    assert ours["container"] == {"type": "view", "view_id": ours["view"]["id"]}
    assert (ours["actions"][0]["value"], ours["user"]["id"]) == ("0", "U0BOB")


def test_message_button_matches_a_recorded_one() -> None:
    ours = p.block_actions("release", "0", channel_id="C0GPULAB", message_ts=p.slack_ts(5), response_url=RESPONSE_URL)
    theirs = recorded("interactive_block_actions_message_button_envelope.json")

    assert missing_keys(theirs["payload"], ours) == set()
    assert p.envelope("interactive", ours, envelope_id="e1")["accepts_response_payload"] is False


def test_ephemeral_message_button_has_no_message() -> None:
    ours = p.block_actions(
        "release", channel_id="C0GPULAB", message_ts=p.slack_ts(5), response_url=RESPONSE_URL, ephemeral=True
    )

    assert "message" not in ours
    assert ours["container"]["is_ephemeral"] is True


def test_a_message_button_needs_channel_ts_and_response_url() -> None:
    with pytest.raises(ValueError, match="together"):
        p.block_actions("release", channel_id="C0GPULAB")


def test_view_submission_matches_a_recorded_one() -> None:
    theirs = recorded("view_submission_payload.json")
    state = theirs["view"]["state"]["values"]

    ours = p.view_submission("claim_modal", state, private_metadata="gpu=0")

    # The recorded one came from an Enterprise Grid org.
    assert missing_keys(theirs, ours) == {"team.enterprise_id", "team.enterprise_name"}
    assert [b["block_id"] for b in ours["view"]["blocks"]] == [b["block_id"] for b in theirs["view"]["blocks"]]
    assert (ours["view"]["callback_id"], ours["view"]["private_metadata"]) == ("claim_modal", "gpu=0")
    assert p.envelope("interactive", ours, envelope_id="e1")["accepts_response_payload"] is True


def test_app_home_opened_matches_a_recorded_one() -> None:
    ours = p.app_home_opened("U0BOB")

    # The recorded one came from an Enterprise Grid org.
    assert missing_keys(recorded("app_home_opened_event_callback_messages_tab.json"), ours) == {"enterprise_id"}
    assert (ours["event"]["user"], ours["event"]["tab"], ours["event"]["channel"]) == ("U0BOB", "home", "DU0BOB")


def test_builders_are_deterministic() -> None:
    state = {"duration": {"duration_input": {"type": "plain_text_input", "value": "2h"}}}
    assert p.view_submission("c", state) == p.view_submission("c", state)
    assert p.app_home_opened(event_id="Ev1") == p.app_home_opened(event_id="Ev1")


def test_each_event_gets_its_own_id_as_on_slack() -> None:
    assert p.app_home_opened()["event_id"] != p.app_home_opened()["event_id"]


@pytest.mark.parametrize("envelope_type", ["slash_commands", "interactive"])
def test_only_events_are_retried(envelope_type: str) -> None:
    with pytest.raises(ValueError, match="only events_api"):
        p.envelope(envelope_type, {}, envelope_id="e1", retry_attempt=1)


def test_unknown_envelope_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown envelope type"):
        p.envelope("hello", {}, envelope_id="e1")


def test_ts_values_sort_like_slacks() -> None:
    assert p.slack_ts(1) == "1700000000.000001"
    assert float(p.slack_ts(999_999)) < float(p.slack_ts(1_000_000))
