from gpubot.core.figures import free_state
from gpubot.core.load import Availability, GpuUse, LoadThresholds, gpu_use
from gpubot.core.models import GpuSample, ProcessSample


def test_free_state_is_one_wording_that_each_surface_marks_and_cleans_its_own_way():
    job = ProcessSample(4242, "python\x1b[2J", 9000, "alice")
    in_use = gpu_use(GpuSample(0, "G", utilization_gpu_pct=95, processes=(job,)), LoadThresholds())

    def clean(text):
        return text.replace("\x1b[2J", "")

    def bold(text):
        return f"*{text}*"

    assert free_state(GpuUse(Availability.IDLE, 0), clean) == "free"
    assert free_state(GpuUse(Availability.NOT_RESPONDING), clean) == "not responding"
    assert free_state(in_use, clean) == "free, but in use by alice's process python (pid 4242)"
    assert free_state(in_use, clean, bold) == "*free, but in use* by alice's process python (pid 4242)"
    assert free_state(GpuUse(Availability.UNKNOWN), clean, bold) == "*free*"


def test_free_state_is_worked_out_once_per_use_and_surface():
    in_use = gpu_use(GpuSample(0, "G", processes=(ProcessSample(1, "python", 10, "bob"),)), LoadThresholds())
    cleaned: list[str] = []

    def clean(text):
        cleaned.append(text)
        return text

    def shout(text):
        return text.upper()

    first = free_state(in_use, clean)
    assert free_state(in_use, clean) == first and len(cleaned) == 1
    assert free_state(in_use, clean, shout) == "FREE, BUT IN USE by bob's process python (pid 1)"  # another surface
    assert len(cleaned) == 2
