import pytest

from gpubot.core.load import Availability, LoadLevel, LoadThresholds, gpu_use, load_level
from gpubot.core.models import GpuSample, ProcessSample


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


def test_in_use_means_a_process_or_utilization_at_the_active_threshold():
    thresholds = LoadThresholds(active_pct=10)
    job = ProcessSample(1, "python", 100, "alice")
    assert gpu_use(GpuSample(0, "G", utilization_gpu_pct=0, processes=(job,)), thresholds).in_use
    assert gpu_use(GpuSample(0, "G", utilization_gpu_pct=10), thresholds).in_use
    assert gpu_use(GpuSample(0, "G", utilization_gpu_pct=9), thresholds).availability is Availability.IDLE
    assert gpu_use(GpuSample(0, "G"), thresholds).availability is Availability.UNKNOWN
    assert gpu_use(None, thresholds).availability is Availability.UNKNOWN
    assert gpu_use(GpuSample(0, "G", utilization_gpu_pct=99, processes=(job,), lost=True), thresholds).not_responding


def test_the_description_names_the_biggest_process_and_counts_the_rest():
    small = ProcessSample(2, "helper", 10, "bob")
    big = ProcessSample(1, "python", 9000, "alice")
    use = gpu_use(GpuSample(0, "G", utilization_gpu_pct=95, processes=(small, big)), LoadThresholds())
    assert use.description() == "alice's process python (pid 1) and 1 more process"
