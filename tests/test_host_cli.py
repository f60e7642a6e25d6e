"""The host commands (`status`, `realtime`, `claims`, `release`) on real SQLite and the fake GPUs, no Slack."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from gpubot.cli import main
from gpubot.core.models import NoticeKind, Person
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import GpuSelection
from gpubot.core.service import ClaimService
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.system_clock import SystemClock
from gpubot.telemetry import FakeTelemetry
from tests.notices import pending_notices

FAKE_GPUS = {
    "hostname": "gpu-box-1",
    "driver_version": "550.54.15",
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-0000",
            "memory_total_mib": 81559,
            "memory_used_mib": 8300,
            "utilization_gpu_pct": 85,
            "temperature_c": 72,
            "power_draw_w": 450.0,
            "power_limit_w": 700.0,
            "processes": [{"pid": 4242, "name": "python", "used_memory_mib": 8192, "user": "alice"}],
        },
        {"index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0001", "utilization_gpu_pct": 0},
        {"index": 2, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0002", "lost": True},
    ],
}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A migrated database and fake GPUs, named by the environment the CLI reads; no Slack tokens."""
    for key in [key for key in os.environ if key.startswith(("GPUBOT_", "SLACK_"))]:
        monkeypatch.delenv(key)
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps(FAKE_GPUS))
    url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    upgrade_to_head(url)
    monkeypatch.setenv("GPUBOT_DATABASE_URL", url)
    monkeypatch.setenv("GPUBOT_GPU_BACKEND", "fake")
    monkeypatch.setenv("GPUBOT_FAKE_GPUS", str(fake))
    monkeypatch.setenv("GPUBOT_TIMEZONE", "Europe/Berlin")
    engine = make_engine(url)
    store = SqlClaimStore(engine)
    service = ClaimService(store, SystemClock(), ClaimPolicy(), host="gpu-box-1")
    service.sync_inventory(FakeTelemetry(fake).sample())
    yield Host(service, store)
    engine.dispose()


@dataclass
class Host:
    """The claim service and store of the database the CLI uses, to set up and read back state."""

    service: ClaimService
    store: SqlClaimStore


def claim(host: Host, user: str, gpu: int, purpose: str, hours: int = 2):
    return host.service.claim(user, GpuSelection(labels=(str(gpu),)), purpose, timedelta(hours=hours)).claims[0]


def test_status_lists_every_gpu_with_its_holder(host, capsys):
    claim(host, "U0ALICE", 1, "fine-tune llama")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "GPUs on gpu-box-1: 2 of 3 free (1 in use without a claim, 1 not responding)"
    assert re.search(
        r"^1 +NVIDIA H100 80GB HBM3 +U0ALICE +\w{3} \d\d \w{3} \d\d:\d\d CES?T "
        r"\((?:1h 59m|2h) left\) +fine-tune llama$",
        out,
        re.MULTILINE,
    ), out
    # A busy GPU is not simply "free", and one that stopped answering cannot be claimed (issue 11, point 14).
    assert re.search(
        r"^0 +NVIDIA H100 80GB HBM3 +free, but in use by alice's process python \(pid 4242\)$", out, re.MULTILINE
    ), out
    assert re.search(r"^2 +NVIDIA H100 80GB HBM3 +not responding$", out, re.MULTILINE), out


def test_realtime_shows_load_and_processes(host, capsys):
    claim(host, "U0BOB", 0, "train")
    assert main(["realtime"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Live GPU load on gpu-box-1 (driver 550.54.15)"
    assert re.search(r"🔥 0 +high load +72 °C +85 % +8,300 / 81,559 MiB \(10 %\) +450 / 700 W +U0BOB", out), out
    assert "pid 4242 python (alice), 8,192 MiB" in out
    assert re.search(r"⚠️ 2 +lost +n/a", out), out


def test_claims_as_a_table_and_as_json(host, capsys):
    claim(host, "U0ALICE", 0, "evaluate <!channel> & co")
    assert main(["claims"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["GPU", "HELD", "BY", "SINCE", "UNTIL", "LEFT", "PURPOSE"]
    assert "evaluate <!channel> & co" in table

    assert main(["claims", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["gpu_index"] == 0 and entry["user_id"] == "U0ALICE" and entry["host"] == "gpu-box-1"
    assert entry["ends_at"].endswith("+00:00") and 7100 < entry["seconds_left"] <= 7200


def test_no_claims(host, capsys):
    assert main(["claims"]) == 0
    assert capsys.readouterr().out.strip() == "No active claims."
    assert main(["claims", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_purpose_cannot_drive_the_terminal(host, capsys):
    claim(host, "U0ALICE", 0, "clear \x1b[2J screen")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "clear ?[2J screen" in out


def test_release_needs_force(host, capsys):
    claim(host, "U0ALICE", 1, "train")
    assert main(["release", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert [row.gpu.index for row in host.service.dashboard(None).rows if row.claim] == [1]


def test_release_force_ends_the_claim_and_queues_the_holders_dm(host, capsys, monkeypatch):
    monkeypatch.setattr("gpubot.host.session.os.getlogin", lambda: "root")
    held = claim(host, "U0ALICE", 1, "train")
    assert main(["release", "1", "--force"]) == 0
    assert capsys.readouterr().out.strip() == (
        "released GPU 1, held by U0ALICE; they will get a DM saying so (sent by the running service)"
    )
    assert host.service.dashboard(None).free_count == 3
    (notice,) = pending_notices(host.store, SystemClock().now())
    assert notice.notice.kind is NoticeKind.FORCE_RELEASED and notice.claim.id == held.id
    assert notice.notice.actor_id == "host:root"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["release", "7", "--force"], "There is no GPU 7 here"),
        (["release", "0", "--force"], "GPU 0 is not claimed"),
        (["release", "zero", "--force"], "gpubot:"),
    ],
)
def test_release_errors_are_a_message_and_exit_1(host, capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_release_without_a_database_is_a_message_and_creates_none(host, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere" / "gpubot.db"
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{missing}")
    assert main(["release", "0", "--force"]) == 1
    err = capsys.readouterr().err
    assert "there is no database" in err and "gpubot db upgrade" in err and "Traceback" not in err
    assert not missing.parent.exists()


@pytest.mark.parametrize("command", ["status", "realtime", "claims"])
def test_before_the_service_ever_ran_reads_show_every_gpu_free_and_create_nothing(
    host, tmp_path, monkeypatch, capsys, command
):
    missing = tmp_path / "nowhere" / "gpubot.db"
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{missing}")
    assert main([command]) == 0
    captured = capsys.readouterr()
    assert "no claims database exists yet" in captured.err and str(missing) in captured.err
    if command == "status":
        assert captured.out.splitlines()[0].startswith("GPUs on gpu-box-1: 3 of 3 free")
    assert not missing.parent.exists()


def _service_install(tmp_path, monkeypatch, *, env_lines: str | None) -> tuple[Path, Path]:
    """A pretend installed service: its env file (when `env_lines` is given) and its state directory."""
    for name in ("GPUBOT_DATABASE_URL", "GPUBOT_STATE_DIR", "STATE_DIRECTORY", "GPUBOT_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    etc = tmp_path / "etc"
    etc.mkdir()
    env_file = etc / "gpubot.env"
    if env_lines is not None:
        env_file.write_text(env_lines)
    state = tmp_path / "var-lib-gpubot"
    monkeypatch.setenv("GPUBOT_ENV_FILE", str(env_file))
    monkeypatch.setenv("GPUBOT_SERVICE_STATE_DIR", str(state))
    return env_file, state


def test_host_commands_read_the_services_env_file_and_state_directory(host, tmp_path, monkeypatch, capsys):
    env_file, state = _service_install(tmp_path, monkeypatch, env_lines="# the service\nGPUBOT_TIMEZONE='Asia/Tokyo'\n")
    state.mkdir()
    service_db = state / "gpubot.db"
    upgrade_to_head(f"sqlite:///{service_db}")
    engine = make_engine(f"sqlite:///{service_db}")
    service = ClaimService(SqlClaimStore(engine), SystemClock(), ClaimPolicy(), host="gpu-box-1")
    service.sync_inventory(FakeTelemetry(Path(os.environ["GPUBOT_FAKE_GPUS"])).sample())
    service.claim("U0ALICE", GpuSelection(labels=("1",)), "the service's claim", timedelta(hours=2))
    engine.dispose()

    assert main(["claims", "--json"]) == 0
    captured = capsys.readouterr()
    (entry,) = json.loads(captured.out)
    assert entry["purpose"] == "the service's claim"
    assert f"database sqlite:///{service_db}" in captured.err and str(env_file) in captured.err

    assert main(["release", "1", "--force"]) == 0
    assert "released GPU 1" in capsys.readouterr().out


def test_a_variable_set_in_the_shell_wins_over_the_env_file(host, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere.db"
    _service_install(tmp_path, monkeypatch, env_lines=f"GPUBOT_DATABASE_URL=sqlite:///{tmp_path / 'from-file.db'}\n")
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{elsewhere}")
    assert main(["status"]) == 0
    assert f"database sqlite:///{elsewhere}" in capsys.readouterr().err


def test_with_the_service_state_directory_present_and_no_env_file_it_is_still_used(host, tmp_path, monkeypatch, capsys):
    _, state = _service_install(tmp_path, monkeypatch, env_lines=None)
    state.mkdir()
    assert main(["status"]) == 0
    err = capsys.readouterr().err
    assert f"database sqlite:///{state / 'gpubot.db'}" in err and "no env file" in err
    assert "no claims database exists yet" in err and not (state / "gpubot.db").exists()


def test_a_malformed_env_file_is_one_line_and_exit_78(host, tmp_path, monkeypatch, capsys):
    env_file, _ = _service_install(tmp_path, monkeypatch, env_lines="GPUBOT_ADMINS U012AB3CD\n")
    assert main(["status"]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GPUBOT_ENV_FILE" in err[0] and str(env_file) in err[0]


def test_a_database_behind_the_code_says_to_upgrade(host, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{empty}")
    assert main(["status"]) == 1
    assert "gpubot db upgrade" in capsys.readouterr().err


def test_a_file_that_is_no_database_is_a_message(host, tmp_path, monkeypatch, capsys):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_text("not a database at all\n" * 100)
    monkeypatch.setenv("GPUBOT_DATABASE_URL", f"sqlite:///{corrupt}")
    assert main(["claims"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the database" in err and "file is not a database" in err and "Traceback" not in err


def test_telemetry_failing_is_a_message(host, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPUBOT_GPU_BACKEND", "nvidia-smi")
    monkeypatch.setenv("GPUBOT_NVIDIA_SMI", str(tmp_path / "missing"))
    assert main(["realtime"]) == 78  # no GPU backend: a set-up error, as for `serve`
    err = capsys.readouterr().err
    assert "GPUBOT_NVIDIA_SMI" in err and "Traceback" not in err


def test_host_commands_need_no_slack_tokens(host, capsys):
    assert main(["status"]) == 0  # the fixture removed SLACK_* from the environment


# --- people by name (issue 11, point 13) ----------------------------------------------------------------


def name(host: Host, user: str, display_name: str) -> None:
    """As the daemon does after looking the person up in Slack."""
    host.store.save_person(Person(user, display_name, SystemClock().now()))


def test_every_host_table_names_the_holder_when_the_daemon_knows_the_name(host, capsys, monkeypatch):
    name(host, "U0ALICE", "alice")
    claim(host, "U0ALICE", 1, "train")
    claim(host, "U0BOB", 0, "eval")  # never looked up: shown by ID

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^1 +NVIDIA H100 80GB HBM3 +alice \(U0ALICE\) +\w{3} ", out, re.MULTILINE), out
    assert re.search(r"^0 +NVIDIA H100 80GB HBM3 +U0BOB +\w{3} ", out, re.MULTILINE), out

    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^1 +alice \(U0ALICE\) +\w{3} ", out, re.MULTILINE), out

    assert main(["claims", "--json"]) == 0
    entries = {entry["user_id"]: entry["user_name"] for entry in json.loads(capsys.readouterr().out)}
    assert entries == {"U0ALICE": "alice", "U0BOB": None}

    assert main(["realtime"]) == 0
    assert re.search(r"^💤 1 +idle .* alice \(U0ALICE\)$", capsys.readouterr().out, re.MULTILINE)

    monkeypatch.setattr("gpubot.host.session.os.getlogin", lambda: "root")
    assert main(["release", "1", "--force"]) == 0
    assert capsys.readouterr().out.startswith("released GPU 1, held by alice (U0ALICE); ")


def test_a_name_cannot_drive_the_terminal(host, capsys):
    name(host, "U0ALICE", "evil\x1b[2J")
    claim(host, "U0ALICE", 1, "train")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil?[2J (U0ALICE)" in out
