"""systemd/gpubot.service and gpubot-agent.service: systemd accepts them, they are hardened to "OK", and they match
what the code does."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpubot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "gpubot.service"
AGENT_UNIT = ROOT / "systemd" / "gpubot-agent.service"
UNITS = [UNIT, AGENT_UNIT]
ENV_EXAMPLE = ROOT / "systemd" / "gpubot.env.example"
README = (ROOT / "README.md").read_text()

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (.ci/run installs it)"
)


def directives(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, values in order (keys such as DeviceAllow= repeat)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    units = {"s": 1, "min": 60, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(s|min|m|h)", value)
    assert match, value
    return int(match[1]) * units[match[2]]


UNIT_DIRECTIVES = directives(UNIT.read_text())
AGENT_DIRECTIVES = directives(AGENT_UNIT.read_text())
# What the agent's unit may differ in: what it is, what it runs, and the Slack credentials it does without.
AGENT_DIFFERS_IN = {"Description", "ExecStart", "LoadCredential"}


def installable_copy(tmp_path: Path, unit: Path = UNIT) -> Path:
    """The unit with ExecStart pointing at this checkout's gpubot: verify checks that the binary exists."""
    gpubot = Path(sys.executable).parent / "gpubot"
    assert gpubot.exists(), "the gpubot console script is not installed next to this Python"
    text = re.sub(r"^ExecStart=(\S+)/gpubot ", f"ExecStart={gpubot} ", unit.read_text(), flags=re.MULTILINE)
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


@needs_systemd_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_analyze_verify_accepts_the_unit_silently(tmp_path, unit):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(installable_copy(tmp_path, unit))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_systemd_analyze
def test_the_agent_unit_is_rated_as_safe_as_the_serve_unit(tmp_path):
    scores = []
    for unit in UNITS:
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", str(installable_copy(tmp_path, unit))],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d+) OK", result.stdout)
        assert match, result.stdout + result.stderr
        scores.append(float(match[1]))
    assert scores[1] <= scores[0]


def test_the_agent_unit_is_hardened_exactly_like_the_serve_unit():
    differing = {
        key
        for key in UNIT_DIRECTIVES.keys() | AGENT_DIRECTIVES.keys()
        if UNIT_DIRECTIVES.get(key) != AGENT_DIRECTIVES.get(key)
    }
    assert differing == AGENT_DIFFERS_IN
    assert AGENT_DIRECTIVES["ExecStart"] == [UNIT_DIRECTIVES["ExecStart"][0].replace(" serve", " agent")]
    assert "LoadCredential" not in AGENT_DIRECTIVES  # an agent needs no Slack token
    assert AGENT_DIRECTIVES["Type"] == ["notify"] and AGENT_DIRECTIVES["RestartPreventExitStatus"] == ["78"]


@needs_systemd_analyze
def test_security_exposure_is_ok_and_recorded_in_the_readme(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(installable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for gpubot\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    score, verdict = float(match[1]), match[2]
    assert score <= 2.0 and verdict == "OK"
    recorded = re.search(r"`systemd-analyze security` rates it (\d+\.\d+) OK .*?systemd (\d+)\)", README, re.DOTALL)
    assert recorded, "the README records the score and the systemd version it was measured with"
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True, timeout=30).stdout
    # Other systemd versions weigh some settings differently; the README's figure is for the one it names.
    if re.match(rf"systemd {recorded[2]}\b", version):
        assert recorded[1] == match[1], f"update the README: systemd {recorded[2]} now rates it {match[1]}"


def test_it_is_a_notify_service_that_restarts_on_failure_but_not_on_a_configuration_error():
    assert UNIT_DIRECTIVES["Type"] == ["notify"]
    assert UNIT_DIRECTIVES["Restart"] == ["on-failure"]
    assert UNIT_DIRECTIVES["RestartPreventExitStatus"] == ["78"]
    assert seconds(UNIT_DIRECTIVES["RestartSec"][0]) >= 5
    assert UNIT_DIRECTIVES["ExecStart"][0].endswith("/gpubot serve")


def test_it_waits_longer_than_the_daemons_clean_exit_and_has_a_watchdog():
    assert seconds(UNIT_DIRECTIVES["TimeoutStopSec"][0]) > 10
    # The daemon pings at most every 5 s; a watchdog shorter than a few pings would be flaky.
    assert seconds(UNIT_DIRECTIVES["WatchdogSec"][0]) >= 20


def test_a_dedicated_user_with_its_state_directory():
    assert UNIT_DIRECTIVES["User"] == ["gpubot"] and UNIT_DIRECTIVES["StateDirectory"] == ["gpubot"]
    assert "DynamicUser" not in UNIT_DIRECTIVES


def test_tokens_come_as_credentials_under_the_names_settings_reads(tmp_path):
    names = [value.split(":", 1)[0] for value in UNIT_DIRECTIVES["LoadCredential"]]
    assert names == ["slack-bot-token", "slack-app-token"]
    for name, token in zip(names, ["xoxb-cred", "xapp-cred"], strict=True):
        (tmp_path / name).write_text(token)
    settings = Settings.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert (settings.slack_bot_token, settings.slack_app_token) == ("xoxb-cred", "xapp-cred")
    assert "Environment" not in UNIT_DIRECTIVES  # settings live in the EnvironmentFile=, tokens in credentials
    assert "xoxb-" not in UNIT.read_text() and "xapp-" not in UNIT.read_text()


def test_the_sandbox_keeps_nvml_working():
    allowed = {value.split()[0] for value in UNIT_DIRECTIVES["DeviceAllow"]}
    assert UNIT_DIRECTIVES["DevicePolicy"] == ["closed"]
    assert {"char-nvidia-frontend", "char-nvidia", "char-nvidia-uvm", "char-nvidia-caps"} <= allowed
    assert all(value.split()[1] == "rw" for value in UNIT_DIRECTIVES["DeviceAllow"])  # NVML opens O_RDWR
    assert UNIT_DIRECTIVES.get("PrivateDevices", ["no"]) == ["no"]
    assert UNIT_DIRECTIVES.get("ProtectProc", ["default"]) == ["default"]
    assert UNIT_DIRECTIVES.get("ProcSubset", ["all"]) == ["all"]
    assert UNIT_DIRECTIVES.get("PrivateUsers", ["no"]) == ["no"]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert UNIT_DIRECTIVES[hardening] == ["yes"], hardening
    assert UNIT_DIRECTIVES["ProtectSystem"] == ["strict"]
    assert "AF_INET" in UNIT_DIRECTIVES["RestrictAddressFamilies"][0]


def test_the_env_example_names_only_settings_the_code_reads_and_holds_no_secret():
    source = (ROOT / "src" / "gpubot" / "settings.py").read_text()
    known = set(re.findall(r'"((?:GPUBOT|SLACK)_[A-Z_]+)"', source))
    named = set(re.findall(r"^#?\s*((?:GPUBOT|SLACK)_[A-Z_]+)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert named and named <= known, named - known
    assert not re.search(r"^(SLACK_\w+)=\S", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    assert any(value.endswith("/etc/gpubot/gpubot.env") for value in UNIT_DIRECTIVES["EnvironmentFile"])
