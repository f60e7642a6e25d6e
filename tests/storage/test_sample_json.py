"""Host samples as stored JSON: every field survives the round trip, defaults are left out, junk is refused."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields

import pytest

from gpubot.core.models import GpuSample, HostSample, ProcessSample
from gpubot.storage.sample_json import sample_from_json, sample_to_json

PROCESS = ProcessSample(pid=4242, name="python ✓", used_memory_mib=8192, user="alice")
# Every field away from its default, so that a field added to the models without a value here fails the test below.
CARD = GpuSample(
    index=3,
    uuid="GPU-3",
    name="NVIDIA H100 80GB HBM3",
    memory_total_mib=81559,
    memory_used_mib=8300,
    utilization_gpu_pct=85,
    temperature_c=72,
    power_draw_w=450.5,
    power_limit_w=700.0,
    processes=(PROCESS, ProcessSample(pid=7)),
    lost=True,
    unreadable="no permission",
    processes_unknown="the driver refused to list them",
    mig_enabled=True,
    mig_index=1,
    parent_uuid="GPU-parent",
    mig_profile="1g.10gb",
)
SLICE = GpuSample(index=3, uuid="MIG-3-1", mig_index=1, parent_uuid="GPU-3", mig_profile="3g.40gb", memory_used_mib=0)
PLAIN = GpuSample(index=0, uuid="GPU-0")


def test_the_round_trip_test_sets_every_field():
    for model, example in ((GpuSample, CARD), (ProcessSample, PROCESS)):
        for field in fields(model):
            if field.default is not MISSING:
                assert getattr(example, field.name) != field.default, f"give {model.__name__}.{field.name} a value"


@pytest.mark.parametrize(
    "sample",
    [
        HostSample("gpu-a", "550.54.15", (CARD, SLICE, PLAIN)),
        HostSample("gpu-a", None, ()),
        HostSample("gpu-ü", None, (PLAIN,)),
    ],
)
def test_every_field_survives_the_round_trip(sample):
    assert sample_from_json(sample_to_json(sample)) == sample


def test_defaults_are_left_out_so_the_text_stays_compact():
    text = sample_to_json(HostSample("gpu-a", None, (PLAIN,)))
    assert json.loads(text) == {"hostname": "gpu-a", "gpus": [{"index": 0, "uuid": "GPU-0"}]}
    assert " " not in text


def test_a_field_unknown_to_this_reader_is_ignored():
    document = {"hostname": "gpu-a", "gpus": [{"index": 0, "uuid": "GPU-0", "fan_speed_pct": 40}]}
    assert sample_from_json(json.dumps(document)) == HostSample("gpu-a", None, (PLAIN,))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"gpus": []}',
        '{"hostname": "gpu-a"}',
        '{"hostname": "gpu-a", "gpus": [{"uuid": "GPU-0"}]}',
        '{"hostname": 7, "gpus": []}',
        '{"hostname": "gpu-a", "gpus": [{"index": 0, "uuid": "GPU-0", "processes": [{"name": "x"}]}]}',
    ],
)
def test_text_that_is_no_stored_sample_is_refused(text):
    with pytest.raises(ValueError, match="not a stored host sample"):
        sample_from_json(text)
