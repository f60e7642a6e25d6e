"""manifest.yml parses and asks Slack for exactly what the code uses: no more, no less."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gpubot.slack.manifest import BOT_EVENTS, BOT_SCOPES, SLASH_COMMAND
from gpubot.slack.messages import USAGES
from gpubot.standin import DEFAULT_SCOPES

MANIFEST_PATH = Path(__file__).resolve().parents[2] / "manifest.yml"


@pytest.fixture(scope="module")
def manifest():
    return yaml.safe_load(MANIFEST_PATH.read_text())


def test_socket_mode_and_interactivity_are_on_with_no_request_urls(manifest):
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    # With Socket Mode, a request URL anywhere would be unused and misleading.
    assert "request_url" not in settings["interactivity"]
    assert "request_url" not in settings["event_subscriptions"]


def test_the_bot_scopes_are_exactly_the_codes(manifest):
    scopes = manifest["oauth_config"]["scopes"]
    assert scopes["bot"] == list(BOT_SCOPES)
    assert set(scopes) == {"bot"}  # no user scopes: gpubot never acts as a person
    assert set(BOT_SCOPES) == set(DEFAULT_SCOPES)  # the stand-in grants what the manifest asks for


def test_the_events_are_exactly_the_codes(manifest):
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == list(BOT_EVENTS)


def test_the_slash_command_and_its_usage_hint(manifest):
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == SLASH_COMMAND
    for name in USAGES:
        assert name in command["usage_hint"], name
    assert len(command["usage_hint"]) <= 1000 and len(command["description"]) <= 2000


def test_home_and_messages_tabs_are_on(manifest):
    app_home = manifest["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is False
    assert manifest["features"]["bot_user"]["display_name"]
