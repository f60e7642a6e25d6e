"""The fake backend: JSON scenarios in tests/data/fake_gpus, re-read on every sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpubot.core.errors import TelemetryError
from gpubot.core.models import GpuSample, ProcessSample
from gpubot.telemetry.fake import FakeTelemetry
from gpubot.telemetry.host_name import short_hostname

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "fake_gpus"


def scenario(name: str) -> FakeTelemetry:
    return FakeTelemetry(SCENARIOS / name)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.json")), ids=lambda p: p.name)
def test_every_scenario_samples_with_unique_uuids(path: Path) -> None:
    host = FakeTelemetry(path).sample()

    assert host.hostname
    assert host.gpus
    assert len({gpu.uuid for gpu in host.gpus}) == len(host.gpus)


def test_8xh100_is_a_full_busy_host() -> None:
    telemetry = scenario("8xH100.json")

    host = telemetry.sample()

    assert telemetry.backend_name == "fake"
    assert (host.hostname, host.driver_version) == ("gpu-box-1", "550.54.15")
    assert [gpu.index for gpu in host.gpus] == list(range(8))
    assert {gpu.name for gpu in host.gpus} == {"NVIDIA H100 80GB HBM3"}
    first = host.gpus[0]
    assert first.memory_total_mib == 81559
    assert first.power_draw_w == 450.0
    assert first.processes == (ProcessSample(pid=4242, name="python", used_memory_mib=8192, user="alice"),)
    assert [gpu.index for gpu in host.gpus if gpu.processes] == [0, 2, 4, 6]


def test_one_gpu_lost_keeps_its_identity_and_nothing_else() -> None:
    healthy, lost = scenario("one_gpu_lost.json").sample().gpus

    assert not healthy.lost
    assert healthy.utilization_gpu_pct == 3
    assert lost == GpuSample(index=1, uuid="GPU-a100-0001", name="NVIDIA A100-SXM4-80GB", lost=True)


def test_missing_fields_are_unknown_and_identity_is_derived() -> None:
    host = scenario("fields_missing.json").sample()

    hostname = short_hostname()
    assert host.hostname == hostname
    assert host.driver_version is None
    assert host.gpus == (
        GpuSample(index=0, uuid=f"fake-{hostname}-0", name="NVIDIA GeForce RTX 3090"),
        GpuSample(index=1, uuid=f"fake-{hostname}-1", memory_total_mib=24576),
        GpuSample(index=2, uuid=f"fake-{hostname}-2"),
    )


def test_wrongly_typed_fields_become_unknown_without_failing_the_sample() -> None:
    host = scenario("wrong_types.json").sample()

    assert host.driver_version is None  # a number, not a string
    first, second = host.gpus
    assert first == GpuSample(
        index=0,  # "zero" is no index: position in the list
        uuid="GPU-wrong-types",
        # name 3090, "24 GiB", null, true, "hot", "350 W" and [350] are all unknown; "yes" is not `true`.
        processes=(ProcessSample(pid=77),),  # "4242" is no PID and "not a process" is no object: skipped
    )
    assert second == GpuSample(index=1, uuid="GPU-wrong-processes", memory_total_mib=24576)


def test_a_process_whose_details_vanished_is_still_listed() -> None:
    (gpu,) = scenario("pid_vanished.json").sample().gpus

    assert gpu.processes[1] == ProcessSample(pid=5151, used_memory_mib=8192)


def test_the_file_is_read_again_on_every_sample(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    shutil.copy(SCENARIOS / "8xH100.json", path)
    telemetry = FakeTelemetry(path)
    assert len(telemetry.sample().gpus) == 8

    document = json.loads(path.read_text())
    document["gpus"] = document["gpus"][:1]
    document["gpus"][0]["lost"] = True
    path.write_text(json.dumps(document))
    (gpu,) = telemetry.sample().gpus

    assert gpu.lost


def test_the_file_may_appear_after_the_backend_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "later.json"
    telemetry = FakeTelemetry(path)
    with pytest.raises(TelemetryError, match="does not exist"):
        telemetry.sample()

    path.write_text('{"hostname": "late", "gpus": []}')

    assert telemetry.sample().hostname == "late"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"gpus": [', "is not valid JSON"),
        ("[]", "expected a JSON object, not list"),
        ('{"hostname": "box"}', 'expected a "gpus" list'),
        ('{"gpus": {"0": {}}}', 'expected a "gpus" list'),
        ('{"gpus": [{}, 7]}', r"gpus\[1\] should be an object, not int"),
        (b"\xff\xfe{}", "cannot be read"),
    ],
)
def test_a_malformed_file_is_a_telemetry_error_naming_the_file(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "broken.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    with pytest.raises(TelemetryError, match=message) as raised:
        FakeTelemetry(path).sample()

    assert str(path) in raised.value.message


def test_a_directory_is_not_a_gpu_file(tmp_path: Path) -> None:
    with pytest.raises(TelemetryError, match="cannot be read"):
        FakeTelemetry(tmp_path).sample()


def test_close_leaves_the_backend_usable_for_nothing_in_particular() -> None:
    telemetry = scenario("8xH100.json")

    telemetry.close()

    assert telemetry.sample().gpus  # nothing was held, so nothing was lost


def test_mig_slices_follow_their_card_and_unreadable_and_unknown_processes_carry_reasons() -> None:
    host = scenario("mig_slices_and_unreadable.json").sample()

    assert [gpu.label for gpu in host.gpus] == ["0", "1", "1.1", "1.2", "1.3", "2"]
    card, first, _, third = host.gpus[1:5]
    assert card.mig_enabled and card.mig_index is None and card.parent_uuid is None
    assert (first.uuid, first.parent_uuid, first.mig_profile) == (
        "MIG-11111111-1111-1111-1111-111111111111",
        "GPU-0001",
        "3g.40gb",
    )
    # A slice keeps its card's model and reports no utilization (MIG has none per slice).
    assert (first.name, first.utilization_gpu_pct, first.memory_total_mib) == ("NVIDIA A100-SXM4-80GB", None, 40192)
    # A slice without a UUID gets a derived one, the same on every read.
    assert third.uuid == "MIG-fake-gpu-box-1-1-3" and third.processes_unknown == "no permission"
    assert host.gpus[5].unreadable == "no permission"
    assert host.gpus[0].unreadable is None and host.gpus[0].processes_unknown is None
