"""`gpubot doctor` against the Slack stand-in, fake GPUs and real SQLite: every check, passing and failing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpubot.cli import main
from gpubot.core.models import HostRole, ProcessIdentity
from gpubot.host.doctor import Outcome, all_passed, render, run_checks
from gpubot.standin import SlackStandin
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.storage.tables import SCHEMA_REVISION
from tests.fakes import FakeClock

ADMIN = "U0ADMIN"
FAKE_GPUS = {
    "hostname": "gpu-box-1",
    "driver_version": "550.54.15",
    "gpus": [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0000"},
        {"index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0001", "lost": True},
    ],
}


@pytest.fixture(scope="module")
def slack():
    with SlackStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('doctor') / 'gpubot.db'}"
    upgrade_to_head(url)
    return url


def environment(slack: SlackStandin, tmp_path, database: str, **overrides: str) -> dict[str, str]:
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps(FAKE_GPUS))
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "GPUBOT_SLACK_API_URL": slack.api_url,
        "GPUBOT_DATABASE_URL": database,
        "GPUBOT_GPU_BACKEND": "fake",
        "GPUBOT_FAKE_GPUS": str(fake),
        "GPUBOT_ADMINS": ADMIN,
        "GPUBOT_TIMEZONE": "Europe/Berlin",
        **overrides,
    }


def by_name(results):
    return {result.name: result for result in results}


def test_all_good_is_one_passing_line_per_check(slack, tmp_path, database):
    slack.clear_calls()
    results = run_checks(environment(slack, tmp_path, database), slack_timeout_s=5)

    assert all_passed(results), render(results)
    names = [result.name for result in results]
    assert names == [
        "Python",
        "settings",
        "database",
        "telemetry",
        "process owners",
        "host name",
        "fleet",
        "bot token",
        "app token",
        "Home tab",
        "Messages tab",
    ]
    found = by_name(results)
    assert "fake sees 2 GPUs on gpu-box-1 (driver 550.54.15); 1 not responding" in found["telemetry"].detail
    assert "writable" in found["database"].detail and f"schema {SCHEMA_REVISION}" in found["database"].detail
    assert "commands, chat:write, im:write, im:history, users:read" in found["bot token"].detail
    # The tab checks did what they say, to the admin.
    published = slack.wait_for_call("views.publish")
    assert published.params["user_id"] == ADMIN and published.params["view"]["type"] == "home"
    assert slack.wait_for_call("chat.postMessage").response["channel"] == "D" + ADMIN
    assert render(results).endswith("All 11 checks passed: gpubot is ready.")


def test_the_cli_prints_the_report_and_exits_0_only_when_all_pass(slack, tmp_path, database, monkeypatch, capsys):
    for key, value in environment(slack, tmp_path, database).items():
        monkeypatch.setenv(key, value)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.count("✓ ") == 11 and "✗" not in out

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-revoked")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ bot token: Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in out
    assert "xoxb-revoked" not in out


def test_a_bad_bot_token_fails_with_a_fix_and_skips_the_tabs(slack, tmp_path, database):
    results = by_name(run_checks(environment(slack, tmp_path, database, SLACK_BOT_TOKEN="xoxb-wrong")))

    assert results["bot token"].outcome is Outcome.FAILED
    assert "OAuth & Permissions" in (results["bot token"].fix or "")
    assert results["app token"].outcome is Outcome.PASSED
    assert results["Home tab"].outcome is Outcome.SKIPPED and results["Messages tab"].outcome is Outcome.SKIPPED


def test_a_bad_app_token_fails_with_a_fix(slack, tmp_path, database):
    results = by_name(run_checks(environment(slack, tmp_path, database, SLACK_APP_TOKEN="xapp-wrong")))

    assert results["app token"].outcome is Outcome.FAILED
    assert results["app token"].detail == "Slack rejected SLACK_APP_TOKEN (invalid_auth)"
    assert "connections:write" in (results["app token"].fix or "")
    assert results["bot token"].outcome is Outcome.PASSED


def test_a_missing_scope_is_named(tmp_path, database):
    with SlackStandin(scopes={"commands", "chat:write"}) as narrow:
        results = by_name(run_checks(environment(narrow, tmp_path, database)))

    assert results["bot token"].outcome is Outcome.FAILED
    assert results["bot token"].detail == "valid, but lacks the scopes im:write, im:history, users:read, files:write"
    assert "reinstall" in (results["bot token"].fix or "")


def test_a_home_tab_that_is_off_is_found(tmp_path, database):
    with SlackStandin(home_tab=False) as no_home:
        results = by_name(run_checks(environment(no_home, tmp_path, database)))

    assert results["Home tab"].outcome is Outcome.FAILED
    assert "not_enabled" in results["Home tab"].detail
    assert "home_tab_enabled" in (results["Home tab"].fix or "")
    assert results["Messages tab"].outcome is Outcome.PASSED


def test_without_a_person_to_check_with_the_tabs_fail_saying_how_to_name_one(slack, tmp_path, database):
    results = by_name(run_checks(environment(slack, tmp_path, database, GPUBOT_ADMINS="")))
    assert results["Home tab"].outcome is Outcome.FAILED and "--user" in (results["Home tab"].fix or "")

    named = by_name(run_checks(environment(slack, tmp_path, database, GPUBOT_ADMINS=""), user="U0BOB"))
    assert named["Home tab"].outcome is Outcome.PASSED and "U0BOB" in named["Home tab"].detail


def test_a_database_not_at_head_says_to_upgrade(slack, tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    results = by_name(run_checks(environment(slack, tmp_path, f"sqlite:///{empty}")))

    assert results["database"].outcome is Outcome.FAILED
    assert f"is at schema none (empty), this gpubot needs {SCHEMA_REVISION}" in results["database"].detail
    assert "gpubot db upgrade" in (results["database"].fix or "")


def test_a_missing_database_is_reported_and_not_created(slack, tmp_path):
    missing = tmp_path / "state" / "gpubot.db"
    results = by_name(run_checks(environment(slack, tmp_path, f"sqlite:///{missing}")))

    assert results["database"].outcome is Outcome.FAILED
    assert "there is no database" in results["database"].detail
    assert not missing.parent.exists()


def test_a_read_only_database_is_not_writable(slack, tmp_path, database, monkeypatch):
    readonly = f"sqlite:///file:{database.removeprefix('sqlite:///')}?mode=ro&uri=true"
    results = by_name(run_checks(environment(slack, tmp_path, readonly)))

    assert results["database"].outcome is Outcome.FAILED
    assert "readonly" in results["database"].detail


def test_telemetry_that_cannot_load_fails_with_a_fix(slack, tmp_path, database):
    env = environment(
        slack, tmp_path, database, GPUBOT_GPU_BACKEND="nvidia-smi", GPUBOT_NVIDIA_SMI=str(tmp_path / "missing")
    )
    results = by_name(run_checks(env))

    assert results["telemetry"].outcome is Outcome.FAILED
    assert "GPUBOT_NVIDIA_SMI" in results["telemetry"].detail
    assert "GPUBOT_GPU_BACKEND" in (results["telemetry"].fix or "")


def test_no_gpus_found_is_a_failure(slack, tmp_path, database):
    env = environment(slack, tmp_path, database)
    (tmp_path / "gpus.json").write_text(json.dumps({"hostname": "empty-box", "gpus": []}))
    results = by_name(run_checks(env))
    assert results["telemetry"].outcome is Outcome.FAILED and "sees 0 GPUs" in results["telemetry"].detail


def test_unparseable_settings_skip_the_rest(slack, tmp_path, database):
    env = environment(slack, tmp_path, database, GPUBOT_MIN_DURATION="soon")
    results = run_checks(env, proc_root=fake_proc(tmp_path, "pid:[4026531836]"))

    # Where process owners come from needs no settings: it is still checked.
    assert [result.outcome for result in results] == [Outcome.PASSED, Outcome.FAILED] + [Outcome.SKIPPED] * 2 + [
        Outcome.PASSED
    ] + [Outcome.SKIPPED] * 6
    assert "GPUBOT_MIN_DURATION" in results[1].detail


def test_without_tokens_the_host_side_is_still_checked(slack, tmp_path, database):
    results = by_name(run_checks(environment(slack, tmp_path, database, SLACK_BOT_TOKEN="", SLACK_APP_TOKEN="")))

    assert results["settings"].outcome is Outcome.FAILED and "SLACK_BOT_TOKEN" in results["settings"].detail
    assert results["database"].outcome is Outcome.PASSED and results["telemetry"].outcome is Outcome.PASSED
    assert results["bot token"].outcome is Outcome.SKIPPED


def test_slack_unreachable_is_a_network_fix(tmp_path, database):
    with SlackStandin() as gone:
        env = environment(gone, tmp_path, database)
    results = by_name(run_checks(env, slack_timeout_s=2))

    assert results["bot token"].outcome is Outcome.FAILED and "cannot reach Slack" in results["bot token"].detail
    assert "HTTPS_PROXY" in (results["bot token"].fix or "")
    assert results["app token"].outcome is Outcome.FAILED


def test_an_old_python_is_reported(slack, tmp_path, database):
    results = run_checks(environment(slack, tmp_path, database), python=(3, 9, 18))
    assert results[0].outcome is Outcome.FAILED and results[0].detail == "3.9.18 is too old"


def fake_proc(tmp_path, pid_namespace: str | None):
    proc = tmp_path / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "uid_map").write_text("         0          0 4294967295\n")
    if pid_namespace is not None:
        (proc / "self" / "ns" / "pid").symlink_to(pid_namespace)
    return proc


def nvidia_smi_environment(slack, tmp_path, database):
    capture = Path(__file__).parent / "data" / "nvidia-smi" / "telegraf__tesla-t4.xml"
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat '{capture}'\n")
    script.chmod(0o755)
    return environment(slack, tmp_path, database, GPUBOT_GPU_BACKEND="nvidia-smi", GPUBOT_NVIDIA_SMI=str(script))


def test_in_a_container_of_its_own_the_owners_are_a_warning_with_its_fix(slack, tmp_path, database):
    env = nvidia_smi_environment(slack, tmp_path, database)

    results = run_checks(env, proc_root=fake_proc(tmp_path, "pid:[4026532461]"))

    owners = by_name(results)["process owners"]
    assert owners.outcome is Outcome.WARNED
    assert "PID namespace of its own" in owners.detail and "shown as unknown" in owners.detail
    assert "--pid=host" in (owners.fix or "")
    assert all_passed(results), render(results)  # a warning is not a failure: gpubot runs
    report = render(results)
    assert "! process owners: gpubot runs in a PID namespace of its own" in report
    assert report.endswith("All 11 checks passed, 1 with a warning: gpubot is ready.")


def test_on_the_host_the_owners_pass(slack, tmp_path, database):
    env = nvidia_smi_environment(slack, tmp_path, database)

    owners = by_name(run_checks(env, proc_root=fake_proc(tmp_path, "pid:[4026531836]")))["process owners"]

    assert (owners.outcome, owners.detail) == (Outcome.PASSED, "read from /proc in the host's PID namespace")


def test_a_pid_namespace_that_cannot_be_read_is_a_warning(slack, tmp_path, database):
    env = nvidia_smi_environment(slack, tmp_path, database)

    owners = by_name(run_checks(env, proc_root=fake_proc(tmp_path, None)))["process owners"]

    assert owners.outcome is Outcome.WARNED and "cannot tell" in owners.detail


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
THIS_MACHINE = ProcessIdentity(machine="box", pid=4000, boot_id="boot-1")
OTHER_MACHINE = ProcessIdentity(machine="twin", pid=5000, boot_id="boot-2")


@pytest.fixture
def fleet_database(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    upgrade_to_head(url)
    return url


def register(url: str, name: str, process: ProcessIdentity, at: datetime, role: HostRole = HostRole.AGENT) -> None:
    engine = make_engine(url)
    try:
        store = SqlClaimStore(engine, process=process)
        store.register_host(name, role, f"instance-{name}", str(process), at, timedelta(seconds=30))
    finally:
        engine.dispose()


def fleet_checks(slack, tmp_path, url: str, alive: frozenset[int] = frozenset(), **overrides: str):
    results = run_checks(
        environment(slack, tmp_path, url, SLACK_BOT_TOKEN="", SLACK_APP_TOKEN="", **overrides),
        clock=FakeClock(NOW),
        process=THIS_MACHINE,
        is_alive=lambda pid: pid in alive,
    )
    return by_name(results)


def test_a_host_name_held_by_another_live_machine_fails_with_its_fix(slack, tmp_path, fleet_database):
    register(fleet_database, "gpu-box-1", OTHER_MACHINE, NOW - timedelta(seconds=5))
    found = fleet_checks(slack, tmp_path, fleet_database)["host name"]
    assert found.outcome is Outcome.FAILED
    assert "gpu-box-1 is held by pid 5000 on machine twin" in found.detail and "last report 5s ago" in found.detail
    assert "GPUBOT_HOST_NAME" in (found.fix or "")


@pytest.mark.parametrize(
    ("holder", "at", "alive", "said"),
    [
        (None, None, frozenset(), "not in the database yet"),
        (THIS_MACHINE, NOW - timedelta(seconds=2), frozenset({4000}), "reported for by pid 4000 on machine box, this"),
        (THIS_MACHINE, NOW - timedelta(seconds=2), frozenset(), "whose process is gone: the next start takes it"),
        (OTHER_MACHINE, NOW - timedelta(minutes=5), frozenset(), "silent for longer than 30s"),
    ],
)
def test_a_host_name_this_machine_may_use_passes_saying_who_holds_it(
    slack, tmp_path, fleet_database, holder, at, alive, said
):
    if holder is not None:
        register(fleet_database, "gpu-box-1", holder, at)
    found = fleet_checks(slack, tmp_path, fleet_database, alive)["host name"]
    assert found.outcome is Outcome.PASSED and said in found.detail, found.detail


def test_the_other_hosts_last_reports_and_a_silent_one_as_a_warning(slack, tmp_path, fleet_database):
    register(fleet_database, "gpu-b", OTHER_MACHINE, NOW - timedelta(seconds=3))
    register(fleet_database, "gpu-c", OTHER_MACHINE, NOW - timedelta(hours=1), role=HostRole.SERVE)
    found = fleet_checks(slack, tmp_path, fleet_database)["fleet"]
    assert found.outcome is Outcome.WARNED
    assert found.detail == (
        "2 other hosts: gpu-b (agent, last report 3s ago), gpu-c (serve, offline since 2026-11-26 12:00 CET)"
    )
    assert "gpu-c" in (found.fix or "")


def test_a_serve_host_without_gpus_passes_and_registers_no_name(slack, tmp_path, fleet_database):
    found = fleet_checks(slack, tmp_path, fleet_database, GPUBOT_GPU_BACKEND="none")
    assert found["telemetry"].outcome is Outcome.PASSED and "no GPUs" in found["telemetry"].detail
    assert found["host name"].outcome is Outcome.PASSED and found["fleet"].outcome is Outcome.PASSED
