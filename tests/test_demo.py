"""`gpubot demo` on a machine with neither Slack nor a GPU: runs the real daemon, exits 0 within 30 s."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def test_the_demo_plays_the_whole_session_in_under_30_seconds():
    # As on a fresh machine: none of this environment's gpubot or Slack settings.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GPUBOT_", "SLACK_"))}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gpubot", "demo"], env=env, capture_output=True, text=True, timeout=60
    )
    took_s = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    assert took_s < 30
    out = result.stdout
    steps = [
        "── alice types /gpu  · only alice sees the reply",
        "6 of 6 GPUs free",
        "↳ 🟢 GPU 3.1 · MIG 3g.40gb",
        "── bob opens gpubot's Home tab",
        "[Claim GPUs…]",
        "✅ You have GPU 0 until",
        "CUDA_VISIBLE_DEVICES=0",
        "⚠️ GPU 0 is already claimed by @alice.",
        "✅ Released GPU 0.",
        "── bob gets a DM from gpubot",
        "[Extend +1h] [Extend +2h] [Release now]",
        "the GPU is free again",
    ]
    position = 0
    for step in steps:
        found = out.find(step, position)
        assert found >= 0, f"{step!r} missing (or out of order) in:\n{out}"
        position = found
    # Rendered for people: no Block Kit JSON, no raw mrkdwn tokens.
    assert '"type"' not in out and "<@" not in out and "<!date" not in out
    assert result.stderr == ""
