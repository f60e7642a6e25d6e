"""Telemetry test configuration: the marker for tests that need a real NVIDIA GPU."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "nvml_hardware: runs against the real NVML library; skips when nvmlInit fails (no driver or GPU).",
    )
