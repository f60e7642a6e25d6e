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
