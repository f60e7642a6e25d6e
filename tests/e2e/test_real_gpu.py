"""The real daemon on the real NVML: what a lab admin sees on the first day, checked on a machine with a GPU.

Skipped where NVML does not initialise (CI has no GPU); run with `pytest -m nvml_hardware` on a GPU host.
"""

from __future__ import annotations

import re

import pynvml
import pytest

from .conftest import reply_text, start_daemon


def _first_card() -> tuple[int, str]:
    """How many GPUs NVML counts, and GPU 0's name, read straight from the binding."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        pytest.skip(f"no usable NVML here: {error}")
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return pynvml.nvmlDeviceGetCount(), pynvml.nvmlDeviceGetName(handle)
    finally:
        pynvml.nvmlShutdown()


@pytest.mark.nvml_hardware
def test_the_daemon_on_nvml_lists_claims_and_releases_the_real_gpus(slack, tmp_path):
    count, name = _first_card()
    daemon = start_daemon(slack, tmp_path, GPUBOT_GPU_BACKEND="nvml")
    try:
        status = reply_text(slack.command("status", user_id="U0BOB"))
        assert name in status, status
        assert re.search(rf"\d+ of {count} GPUs? free", status), status

        realtime = reply_text(slack.command("realtime", user_id="U0BOB"))
        assert name in realtime and " °C" in realtime, realtime

        claim = reply_text(slack.command("claim 0 checking gpubot on this host 30m", user_id="U0ALICE"))
        assert "You have *GPU 0*" in claim, claim
        # A whole card goes by its index in PCI order; a card in MIG mode by its slices' UUIDs.
        whole_card = "CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0`"
        assert whole_card in claim or "CUDA_VISIBLE_DEVICES=MIG-" in claim, claim

        held = reply_text(slack.command("status", user_id="U0BOB"))
        assert "<@U0ALICE>" in held and "checking gpubot on this host" in held, held

        released = reply_text(slack.command("release 0", user_id="U0ALICE"))
        assert "Released" in released, released
        assert "ERROR" not in daemon.log() and "Traceback" not in daemon.log(), daemon.log()
    finally:
        code, _ = daemon.stop()
        assert code == 0, daemon.log()
