"""The host commands with MIG slices, an unreadable GPU and an unknown process list (fake GPUs, real SQLite)."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from gpubot.cli import main
from gpubot.core.policy import ClaimPolicy
from gpubot.core.selection import parse_gpu_selection
from gpubot.core.service import ClaimService
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.migrate import upgrade_to_head
from gpubot.system_clock import SystemClock
from gpubot.telemetry import FakeTelemetry

SCENARIO = Path(__file__).resolve().parent / "data" / "fake_gpus" / "mig_slices_and_unreadable.json"


@pytest.fixture
def service(tmp_path, monkeypatch):
    for key in [key for key in os.environ if key.startswith(("GPUBOT_", "SLACK_"))]:
        monkeypatch.delenv(key)
    fake = tmp_path / "gpus.json"
    shutil.copy(SCENARIO, fake)
    url = f"sqlite:///{tmp_path / 'gpubot.db'}"
    upgrade_to_head(url)
    monkeypatch.setenv("GPUBOT_DATABASE_URL", url)
    monkeypatch.setenv("GPUBOT_GPU_BACKEND", "fake")
    monkeypatch.setenv("GPUBOT_FAKE_GPUS", str(fake))
    monkeypatch.setenv("GPUBOT_TIMEZONE", "Europe/Berlin")
    monkeypatch.setattr("gpubot.host.session.os.getlogin", lambda: "root")
    engine = make_engine(url)
    service = ClaimService(SqlClaimStore(engine), SystemClock(), ClaimPolicy(), host="gpu-box-1")
    service.sync_inventory(FakeTelemetry(fake).sample())
    yield service
    engine.dispose()


def claim(service: ClaimService, user: str, gpus: str) -> None:
    service.claim(user, parse_gpu_selection(gpus, allow_any=False), "train", timedelta(hours=2))


def test_status_lists_slices_under_their_card_and_says_why_gpus_cannot_be_read(service, capsys):
    claim(service, "U0ALICE", "1.2")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "GPUs on gpu-box-1: 4 of 6 free (1 in use without a claim, 1 unreadable)"
    assert re.search(r"^1 +NVIDIA A100-SXM4-80GB +slice 1\.2 held by U0ALICE$", out, re.MULTILINE), out
    assert re.search(r"^  1\.1 +MIG 3g\.40gb +free, but in use by alice's process python", out, re.MULTILINE), out
    assert re.search(r"^  1\.2 +MIG 1g\.10gb +U0ALICE +", out, re.MULTILINE), out
    assert re.search(r"^  1\.3 +MIG 1g\.10gb +free, processes n/a \(no permission\)$", out, re.MULTILINE), out
    assert re.search(r"^2 +NVIDIA H100 80GB HBM3 +unreadable \(no permission\)$", out, re.MULTILINE), out


def test_realtime_shows_slice_memory_and_processes_and_unknown_lists(service, capsys):
    assert main(["realtime"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"  1\.1 +unknown +n/a +n/a +20,000 / 40,192 MiB \(50 %\)", out), out
    assert "pid 4242 python (alice), 19,000 MiB" in out
    assert "processes n/a (no permission)" in out


def test_claims_and_json_name_slices(service, capsys):
    claim(service, "U0ALICE", "1.2,0")
    assert main(["claims"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == ["0", "1.2"]
    assert main(["claims", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["gpu"], e["gpu_index"], e["gpu_uuid"]) for e in entries] == [
        ("0", 0, "GPU-0000"),
        ("1.2", 1, "MIG-22222222-2222-2222-2222-222222222222"),
    ]


def test_release_force_takes_a_slice_address(service, capsys):
    claim(service, "U0ALICE", "1.2")
    assert main(["release", "--force", "1.2"]) == 0
    assert "released GPU 1.2, held by U0ALICE" in capsys.readouterr().out
    assert service.dashboard(None).free_count == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["release", "--force", "1.9"], "There is no GPU 1.9 here (GPUs: 0, 1, 1.1, 1.2, 1.3, 2)"),
        (["release", "--force", "1.1-1.2"], "ranges name whole cards"),
    ],
)
def test_bad_slice_addresses_are_a_message_and_exit_1(service, capsys, argv, message):
    assert main(argv) == 1
    assert message in capsys.readouterr().err
