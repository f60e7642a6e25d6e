"""The command line: help, exit codes, and errors as a message, never a traceback."""

import os
import subprocess
import sys

import pytest

from gpubot import __version__
from gpubot.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "gpubot", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "serve" in result.stdout and "db" in result.stdout


def test_db_upgrade_creates_the_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPUBOT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("GPUBOT_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "gpubot.db").exists()
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0  # idempotent


def test_config_error_is_one_line_and_exit_78(monkeypatch, capsys):
    monkeypatch.setenv("GPUBOT_MIN_DURATION", "soon")
    assert main(["db", "upgrade"]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GPUBOT_MIN_DURATION" in err[0]


def test_unreachable_database_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{blocker}/sub/gpubot.db")
    assert main(["db", "upgrade"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "gpubot:" in err


@pytest.mark.parametrize(
    ("url", "fragment"),
    [("not a url", "GPUBOT_DATABASE_URL"), ("nosuchdb://x/y", "no database driver")],
)
def test_bad_database_urls_are_explained(monkeypatch, capsys, url, fragment):
    monkeypatch.setenv("GPUBOT_DATABASE_URL", url)
    assert main(["db", "upgrade"]) != 0
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_a_file_that_is_not_a_database_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    garbage = tmp_path / "gpubot.db"
    garbage.write_bytes(b"this is not an SQLite database, just some text that is long enough" * 20)
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{garbage}")
    assert main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot open or migrate the database" in err


def test_digest_says_where_and_when_and_posts_one_now(tmp_path, monkeypatch, capsys):
    from gpubot.standin import SlackStandin
    from gpubot.storage.migrate import upgrade_to_head

    for key in [key for key in os.environ if key.startswith(("GPUBOT_", "SLACK_"))]:
        monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    upgrade_to_head(url)
    monkeypatch.setenv("GPUBOT_DATABASE_URL", url)
    monkeypatch.setenv("GPUBOT_TIMEZONE", "Europe/Berlin")
    assert main(["digest"]) == 0
    assert "set GPUBOT_DIGEST_CHANNEL" in capsys.readouterr().err
    monkeypatch.setenv("GPUBOT_DIGEST_CHANNEL", "C0DIGEST")
    monkeypatch.setenv("GPUBOT_DIGEST_AT", "fri 16:30")
    assert main(["digest"]) == 0
    assert capsys.readouterr().out == "gpubot: the weekly digest goes to C0DIGEST Fridays at 16:30 (Europe/Berlin)\n"
    with SlackStandin() as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", slack.bot_token)
        monkeypatch.setenv("SLACK_APP_TOKEN", slack.app_token)
        monkeypatch.setenv("GPUBOT_SLACK_API_URL", slack.api_url)
        assert main(["digest", "--now"]) == 0
        assert "posted the digest of the last seven days to C0DIGEST" in capsys.readouterr().out
        [posted] = slack.calls("chat.postMessage")
        assert posted.params["channel"] == "C0DIGEST" and posted.params["text"].startswith("Weekly GPU digest")
