"""`gpubot usage` on a real SQLite file: usage counted from reports, shown by person, purpose, host and GPU."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from gpubot.cli import main
from gpubot.core.models import ClaimStatus, EventKind, Gpu, HostRole, NewClaim, Person
from gpubot.core.usage import UsageRule
from gpubot.telemetry import FakeTelemetry
from tests.test_host_cli import host  # noqa: F401  (the fixture)

RULE = UsageRule(interval=timedelta(seconds=2), active_pct=10)


@pytest.fixture
def used(host, tmp_path):  # noqa: F811
    """Alice held GPU 0 for an hour, an hour ago; its host reported 60 samples of 85 % in the first two minutes."""
    store = host.store
    started = datetime.now(timezone.utc) - timedelta(hours=2)
    store.register_host("gpu-box-1", HostRole.SERVE, "me", "pid 1", started, timedelta(seconds=30))
    store.save_person(Person("U0ALICE", "Alice", started))
    gpu = Gpu("gpu-box-1", "GPU-0000", 0, "NVIDIA H100 80GB HBM3")
    [claim] = store.create_claims([NewClaim(gpu, "U0ALICE", "train", started, started + timedelta(hours=2))])
    sample = FakeTelemetry(tmp_path / "gpus.json").sample()
    for n in range(1, 61):
        assert store.report("gpu-box-1", "me", sample, started + timedelta(seconds=2 * n), RULE)
    store.end_claim(claim.id, ClaimStatus.RELEASED, EventKind.RELEASED, "U0ALICE", started + timedelta(hours=1))
    return host


def test_by_person_as_json_has_the_hours_held_observed_and_busy(used, capsys):
    assert main(["usage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "user_id": "U0ALICE",
            "user": "Alice",
            "claims": 1,
            "held_h": 1.0,
            "observed_h": 0.03,
            "busy_h": 0.03,
            "idle_held_h": 0.0,
            "busy_share": 1.0,
        }
    ]


def test_by_purpose_as_csv_and_by_gpu_and_host(used, capsys):
    assert main(["usage", "--by", "purpose", "--csv", "--since", "7d"]) == 0
    assert capsys.readouterr().out == "purpose,held_h\ntrain,1.0\n"
    assert main(["usage", "--by", "gpu", "--json"]) == 0
    # GPU 1 was never claimed but was seen (idle); GPU 2 answered nothing, so it has no row.
    claimed, unclaimed = json.loads(capsys.readouterr().out)
    assert claimed["gpu_uuid"] == "GPU-0000" and claimed["held_h"] == 1.0 and claimed["utilization_avg"] == 85.0
    assert claimed["model"] == "NVIDIA H100 80GB HBM3" and claimed["busy_share"] == 1.0
    assert (unclaimed["gpu_uuid"], unclaimed["held_h"], unclaimed["busy_share"]) == ("GPU-0001", 0.0, 0.0)
    assert main(["usage", "--by", "host", "--csv"]) == 0
    assert capsys.readouterr().out == "host,gpus,held_h,observed_h,busy_h,busy_share\ngpu-box-1,2,1.0,0.07,0.03,0.5\n"


def test_the_table_has_a_title_and_totals_and_a_scope_narrows_it(used, capsys):
    assert main(["usage"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "GPU usage: the team, last 30 days"
    assert out[1].startswith("1 claims, 1.0 GPU-h held, 0.03 busy (100% of what was observed)")
    assert main(["usage", "@alice", "--since", "90d"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "GPU usage: @Alice, last 90 days"
    assert main(["usage", "a100"]) == 1
    assert "No host or GPU model is called `a100`" in capsys.readouterr().err


def test_me_means_nothing_at_the_terminal(used, capsys):
    assert main(["usage", "me"]) == 1
    assert "no `me`" in capsys.readouterr().err
