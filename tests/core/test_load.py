import pytest

from gpubot.core.load import LoadLevel, LoadThresholds, load_level
from gpubot.core.models import GpuSample


@pytest.mark.parametrize(
    ("util", "level"),
    [(None, LoadLevel.UNKNOWN), (0, LoadLevel.IDLE), (9, LoadLevel.IDLE), (10, LoadLevel.ACTIVE), (80, LoadLevel.HIGH)],
)
def test_levels_follow_thresholds(util, level):
    assert load_level(GpuSample(0, "GPU-0", utilization_gpu_pct=util), LoadThresholds(10, 80)) == level


def test_lost_gpu_is_lost_whatever_it_last_said():
    assert load_level(GpuSample(0, "GPU-0", utilization_gpu_pct=99, lost=True), LoadThresholds()) == LoadLevel.LOST


def test_thresholds_are_configurable():
    assert load_level(GpuSample(0, "GPU-0", utilization_gpu_pct=50), LoadThresholds(60, 90)) == LoadLevel.IDLE
