from datetime import timedelta
from pathlib import Path

import pytest

from gpubot.core.errors import ConfigError
from gpubot.settings import Settings, host_environment, read_env_file

TOKENS = {"SLACK_BOT_TOKEN": "xoxb-1-abc", "SLACK_APP_TOKEN": "xapp-1-def"}


def test_defaults():
    settings = Settings.from_env({**TOKENS, "HOME": "/home/ann"})
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.state_dir == Path("/home/ann/.local/state/gpubot")
    assert settings.database_url == "sqlite:////home/ann/.local/state/gpubot/gpubot.db"
    assert settings.gpu_backend == "auto"
    assert (settings.min_duration, settings.max_duration) == (timedelta(minutes=30), timedelta(hours=12))
    assert settings.default_duration == timedelta(hours=2)
    assert settings.warn_before == timedelta(minutes=15)
    assert settings.usage_visibility == "team"
    assert Settings.from_env({**TOKENS, "GPUBOT_USAGE_VISIBILITY": "Admins"}).usage_visibility == "admins"
    assert settings.admins == frozenset()
    # The host is named by its telemetry (the short hostname) unless GPUBOT_HOST_NAME says otherwise.
    assert settings.host_name is None and settings.host_timeout == timedelta(seconds=30)


def test_the_fleet_settings():
    settings = Settings.from_env(
        {"GPUBOT_HOST_NAME": "gpu-a.lab_2", "GPUBOT_HOST_TIMEOUT": "1m", "GPUBOT_GPU_BACKEND": "none"},
        require_tokens=False,
    )
    assert (settings.host_name, settings.host_timeout, settings.gpu_backend) == (
        "gpu-a.lab_2",
        timedelta(minutes=1),
        "none",
    )


def test_a_long_telemetry_interval_stretches_the_default_host_timeout():
    settings = Settings.from_env({**TOKENS, "GPUBOT_TELEMETRY_INTERVAL": "1m"})
    assert settings.host_timeout == timedelta(minutes=2)


def test_systemd_state_directory_and_overrides():
    settings = Settings.from_env(
        {
            **TOKENS,
            "STATE_DIRECTORY": "/var/lib/gpubot:/var/lib/other",
            "GPUBOT_SLACK_API_URL": "http://127.0.0.1:9/api",
            "GPUBOT_ADMINS": "U01, W02",
            "GPUBOT_TIMEZONE": "Europe/Berlin",
            "GPUBOT_MIN_DURATION": "10s",
        }
    )
    assert settings.state_dir == Path("/var/lib/gpubot")
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.admins == frozenset({"U01", "W02"})
    assert settings.timezone.key == "Europe/Berlin"
    assert settings.min_duration == timedelta(seconds=10)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"),
        ({**TOKENS, "SLACK_BOT_TOKEN": "xapp-wrong-kind"}, "SLACK_BOT_TOKEN"),
        ({**TOKENS, "GPUBOT_GPU_BACKEND": "cuda"}, "GPUBOT_GPU_BACKEND"),
        ({**TOKENS, "GPUBOT_GPU_BACKEND": "fake"}, "GPUBOT_FAKE_GPUS"),
        ({**TOKENS, "GPUBOT_MAX_DURATION": "forever"}, "GPUBOT_MAX_DURATION"),
        ({**TOKENS, "GPUBOT_MIN_DURATION": "13h"}, "GPUBOT_MIN_DURATION"),
        ({**TOKENS, "GPUBOT_DEFAULT_DURATION": "20h"}, "GPUBOT_DEFAULT_DURATION"),
        ({**TOKENS, "GPUBOT_ADMINS": "alice"}, "GPUBOT_ADMINS"),
        ({**TOKENS, "GPUBOT_TIMEZONE": "Mars/Olympus"}, "GPUBOT_TIMEZONE"),
        ({**TOKENS, "GPUBOT_LOG_LEVEL": "LOUD"}, "GPUBOT_LOG_LEVEL"),
        ({**TOKENS, "GPUBOT_SLACK_API_URL": "slack.com"}, "GPUBOT_SLACK_API_URL"),
        ({**TOKENS, "GPUBOT_HIGH_LOAD_PCT": "120"}, "GPUBOT_HIGH_LOAD_PCT"),
        ({**TOKENS, "GPUBOT_USAGE_VISIBILITY": "everyone"}, "GPUBOT_USAGE_VISIBILITY"),
        ({**TOKENS, "GPUBOT_USAGE_RETENTION": "12h"}, "GPUBOT_USAGE_RETENTION"),
        # A colon would make `HOST:0` ambiguous; a space or a comma could not be typed in a command.
        ({**TOKENS, "GPUBOT_HOST_NAME": "gpu:a"}, "GPUBOT_HOST_NAME"),
        ({**TOKENS, "GPUBOT_HOST_NAME": "gpu a"}, "GPUBOT_HOST_NAME"),
        ({**TOKENS, "GPUBOT_HOST_NAME": "-gpu"}, "GPUBOT_HOST_NAME"),
        ({**TOKENS, "GPUBOT_HOST_NAME": "g" * 64}, "GPUBOT_HOST_NAME"),
        ({**TOKENS, "GPUBOT_HOST_TIMEOUT": "soon"}, "GPUBOT_HOST_TIMEOUT"),
        # Shorter than two reports: a host would flicker offline, and its name be taken, between reports.
        ({**TOKENS, "GPUBOT_HOST_TIMEOUT": "3s", "GPUBOT_TELEMETRY_INTERVAL": "2s"}, "GPUBOT_HOST_TIMEOUT"),
    ],
)
def test_each_bad_setting_names_its_variable(env, variable):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert raised.value.expected


def test_a_token_in_the_wrong_variable_is_not_echoed():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**TOKENS, "SLACK_APP_TOKEN": "xoxb-secret-value"})
    assert "secret" not in str(raised.value)


def test_tokens_stay_out_of_repr():
    assert "xoxb" not in repr(Settings.from_env(TOKENS))
    assert "xapp" not in repr(Settings.from_env(TOKENS))


def test_host_only_commands_need_no_tokens():
    assert Settings.from_env({}, require_tokens=False).slack_bot_token == ""


def test_the_env_file_reads_as_systemd_reads_it(tmp_path):

    env_file = tmp_path / "gpubot.env"
    env_file.write_text(
        "# comment\n; another\n\nGPUBOT_ADMINS=U012AB3CD\nGPUBOT_TIMEZONE=\"Europe/Berlin\"\nA = ' x '\n"
    )
    assert read_env_file(env_file) == {"GPUBOT_ADMINS": "U012AB3CD", "GPUBOT_TIMEZONE": "Europe/Berlin", "A": " x "}


def test_host_commands_use_the_service_state_dir_once_the_env_file_exists(tmp_path):

    env_file = tmp_path / "gpubot.env"
    service_dir = tmp_path / "var-lib-gpubot"  # not created yet: the service never ran
    shell = {"GPUBOT_ENV_FILE": str(env_file), "GPUBOT_SERVICE_STATE_DIR": str(service_dir), "HOME": str(tmp_path)}
    assert host_environment(shell).env.get("STATE_DIRECTORY") is None  # no service installed: as serve
    env_file.write_text("GPUBOT_ADMINS=U012AB3CD\n")
    host = host_environment(shell)
    assert host.env_file == env_file and host.env["GPUBOT_ADMINS"] == "U012AB3CD"
    assert Settings.from_env(host.env, require_tokens=False).state_dir == service_dir


def test_the_digest_settings():
    from datetime import time

    settings = Settings.from_env({**TOKENS, "GPUBOT_TIMEZONE": "Europe/Berlin"})
    assert settings.digest_channel is None
    assert (settings.digest_schedule.weekday, settings.digest_schedule.at) == (0, time(9))
    assert settings.digest_schedule.timezone.key == "Europe/Berlin"
    chosen = Settings.from_env({**TOKENS, "GPUBOT_DIGEST_CHANNEL": "C0123ABC", "GPUBOT_DIGEST_AT": "fri 17:00"})
    assert chosen.digest_channel == "C0123ABC" and chosen.digest_schedule.weekday == 4
    for variable, value in (("GPUBOT_DIGEST_CHANNEL", "#general"), ("GPUBOT_DIGEST_AT", "friday")):
        with pytest.raises(ConfigError) as refused:
            Settings.from_env({**TOKENS, variable: value})
        assert refused.value.variable == variable
