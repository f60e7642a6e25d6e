"""The host commands from any host of a fleet: the whole fleet, one host in full, `release --force HOST:SEL`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from gpubot.cli import main
from gpubot.core.models import GpuSample, HostReport, HostRole, HostSample
from gpubot.core.selection import parse_gpu_selection
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.system_clock import SystemClock
from tests.test_host_cli import Host, host  # noqa: F401  (the fixture)

REMOTE = HostSample(
    "gpu-box-2", "550.54.15", tuple(GpuSample(i, f"R-{i}", name="NVIDIA A100", utilization_gpu_pct=0) for i in range(2))
)
SILENT = HostSample("gpu-box-3", "550.54.15", (GpuSample(0, "S-0", name="NVIDIA A100"),))


class FleetSqlStore(SqlClaimStore):
    """The SQL store with the fleet side the registry adds: here, two other hosts' reports, one gone silent."""

    def hosts(self) -> list[HostReport]:
        now = SystemClock().now()
        return [
            HostReport("gpu-box-2", HostRole.AGENT, now, REMOTE),
            HostReport("gpu-box-3", HostRole.AGENT, now - timedelta(hours=1), SILENT),
        ]

    def register_host(self, *args: object) -> None:
        raise AssertionError("a host command registers no host")

    def report(self, *args: object) -> bool:
        raise AssertionError("a host command reports nothing")

    def release_host(self, *args: object) -> None:
        raise AssertionError("a host command holds no host name")


@pytest.fixture
def fleet(
    host: Host,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Host:
    monkeypatch.setattr("gpubot.host.session.SqlClaimStore", FleetSqlStore)
    # What the daemon's own read of the fleet records: the other hosts' GPUs.
    host.service.fleet_reported(FleetSqlStore.hosts(host.store))  # type: ignore[arg-type]
    host.service.claim("U0ALICE", parse_gpu_selection("gpu-box-2:1", allow_any=False), "train", timedelta(hours=2))
    return host


def test_status_shows_every_host_and_what_is_held(fleet: Host, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "GPUs in the fleet: 4 of 6 free on 3 hosts (1 offline)"
    assert lines[1].split() == ["HOST", "GPUS", "FREE", "STATE"]
    assert lines[2].split() == ["gpu-box-1", "3", "3", "online"]
    assert lines[3].split() == ["gpu-box-2", "2", "1", "online"]
    assert lines[4].split()[:3] == ["gpu-box-3", "1", "1"] and "offline, last report" in lines[4]
    assert any(line.startswith("gpu-box-2:1") and "U0ALICE" in line and "train" in line for line in lines)


def test_status_of_a_host_shows_it_in_full_and_an_unknown_one_is_refused(
    fleet: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "gpu-box-2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "GPUs on gpu-box-2: 1 of 2 free"
    assert main(["status", "gpu-box-3"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("GPUs on gpu-box-3: 1 of 1 free; offline, last report") and "newly claimed" in first
    assert main(["status", "nope"]) == 1
    assert "There is no host `nope` in the fleet (hosts: gpu-box-1, gpu-box-2, gpu-box-3)" in capsys.readouterr().err


def test_realtime_of_the_fleet_and_of_one_host(fleet: Host, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["realtime"]) == 0
    out = capsys.readouterr().out
    assert "Live GPU load on gpu-box-1 (driver 550.54.15)" in out and "Live GPU load on gpu-box-2" in out
    assert "gpu-box-3: offline, last report" in out
    assert main(["realtime", "gpu-box-2"]) == 0
    only = capsys.readouterr().out
    assert only.splitlines()[0] == "Live GPU load on gpu-box-2 (driver 550.54.15)" and "gpu-box-1" not in only


def test_claims_name_each_gpus_host(fleet: Host, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["claims"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("gpu-box-2:1 ")
    assert main(["claims", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["host"], entry["gpu"]) == ("gpu-box-2", "1")


def test_release_force_needs_the_host_and_then_releases_there(fleet: Host, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", "1", "--force"]) == 1
    assert "The fleet has 3 hosts, so name the host before the GPU, e.g. `gpu-box-1:1`" in capsys.readouterr().err
    assert main(["release", "gpu-box-2:1", "--force"]) == 0
    assert capsys.readouterr().out.startswith("released GPU gpu-box-2:1, held by U0ALICE;")
    assert fleet.store.active_claims() == []


def test_with_one_host_its_name_may_be_given_or_not(host: Host, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    host.service.claim("U0ALICE", parse_gpu_selection("1", allow_any=False), "train", timedelta(hours=2))
    assert main(["status", "gpu-box-1"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("GPUs on gpu-box-1: 2 of 3 free")
    assert main(["release", "gpu-box-1:1", "--force"]) == 0
    assert capsys.readouterr().out.startswith("released GPU 1, held by U0ALICE;")
