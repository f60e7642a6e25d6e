"""What systemd passes a service: credentials (LoadCredential=), the notify socket and the watchdog."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from gpubot.core.errors import ConfigError
from gpubot.settings import Settings

TOKENS = {"SLACK_BOT_TOKEN": "xoxb-from-env", "SLACK_APP_TOKEN": "xapp-from-env"}


def write_credentials(directory, bot="xoxb-from-credential\n", app="xapp-from-credential\n"):
    if bot is not None:
        (directory / "slack-bot-token").write_text(bot)
    if app is not None:
        (directory / "slack-app-token").write_text(app)
    return {"CREDENTIALS_DIRECTORY": str(directory)}


def test_credentials_win_over_the_environment(tmp_path):
    settings = Settings.from_env({**TOKENS, **write_credentials(tmp_path)})
    assert settings.slack_bot_token == "xoxb-from-credential"
    assert settings.slack_app_token == "xapp-from-credential"


def test_credentials_alone_are_enough(tmp_path):
    settings = Settings.from_env(write_credentials(tmp_path))
    assert (settings.slack_bot_token, settings.slack_app_token) == ("xoxb-from-credential", "xapp-from-credential")


def test_a_missing_credential_falls_back_to_its_variable(tmp_path):
    settings = Settings.from_env({**TOKENS, **write_credentials(tmp_path, app=None)})
    assert settings.slack_bot_token == "xoxb-from-credential"
    assert settings.slack_app_token == "xapp-from-env"


def test_an_empty_credential_falls_back_to_its_variable(tmp_path):
    settings = Settings.from_env({**TOKENS, **write_credentials(tmp_path, bot="\n")})
    assert settings.slack_bot_token == "xoxb-from-env"


def test_a_wrong_token_in_a_credential_names_the_credential_not_the_value(tmp_path):
    env = {**TOKENS, **write_credentials(tmp_path, bot="xapp-pasted-into-the-wrong-file")}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == "SLACK_BOT_TOKEN (credential slack-bot-token)"
    assert "xapp-pasted" not in str(raised.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_credential_is_a_config_error(tmp_path):
    env = write_credentials(tmp_path)
    (tmp_path / "slack-bot-token").chmod(0)
    with pytest.raises(ConfigError, match="credential slack-bot-token"):
        Settings.from_env(env)


def test_a_credential_that_is_not_a_file_is_a_config_error(tmp_path):
    (tmp_path / "slack-bot-token").mkdir()
    with pytest.raises(ConfigError, match="credential slack-bot-token"):
        Settings.from_env({**TOKENS, "CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_outside_systemd_there_is_no_socket_and_no_watchdog():
    settings = Settings.from_env(TOKENS)
    assert settings.notify_socket is None and settings.watchdog_interval is None


def test_the_notify_socket_and_watchdog_come_from_systemd():
    settings = Settings.from_env(
        {**TOKENS, "NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify", "WATCHDOG_USEC": "30000000"}
    )
    assert settings.notify_socket == "@/org/freedesktop/systemd1/notify"
    assert settings.watchdog_interval == timedelta(seconds=30)


def test_a_watchdog_meant_for_another_process_is_ignored():
    env = {**TOKENS, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Settings.from_env(env).watchdog_interval is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert Settings.from_env(env).watchdog_interval == timedelta(seconds=30)


@pytest.mark.parametrize("value", ["0", "-5", "30s"])
def test_a_malformed_watchdog_is_a_config_error(value):
    with pytest.raises(ConfigError, match="WATCHDOG_USEC"):
        Settings.from_env({**TOKENS, "WATCHDOG_USEC": value})
