"""Choosing a backend: explicit kinds, `auto`'s fallback order, and the messages when nothing works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpubot.core.errors import TelemetryError
from gpubot.telemetry import open_backend
from tests.telemetry.nvml_driver import Gpu, SimulatedDriver, install, no_library

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "fake_gpus"
EMPTY_LOG = '<?xml version="1.0" ?><nvidia_smi_log><driver_version>550.54.15</driver_version></nvidia_smi_log>'


@pytest.fixture
def nvidia_smi(tmp_path: Path) -> str:
    """A working stand-in for nvidia-smi."""
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\necho '{EMPTY_LOG}'\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML fails to initialise, as on a host without the driver, whatever this machine has."""
    no_library(monkeypatch)


@pytest.fixture
def working_nvml(monkeypatch: pytest.MonkeyPatch) -> SimulatedDriver:
    """NVML initialises and has one GPU, whatever this machine has."""
    return install(monkeypatch, SimulatedDriver([Gpu(uuid=b"GPU-fake")]))


def test_fake_reads_the_file_it_is_given() -> None:
    telemetry = open_backend("fake", fake_gpus_path=SCENARIOS / "8xH100.json")

    assert telemetry.backend_name == "fake"
    assert len(telemetry.sample().gpus) == 8


def test_fake_without_a_file_names_the_setting() -> None:
    with pytest.raises(TelemetryError, match="GPUBOT_FAKE_GPUS"):
        open_backend("fake")


def test_an_unknown_kind_lists_the_choices() -> None:
    with pytest.raises(TelemetryError, match=r"'dcgm'.*GPUBOT_GPU_BACKEND.*auto, nvml, nvidia-smi, fake"):
        open_backend("dcgm")


def test_nvidia_smi_uses_the_executable_given(nvidia_smi: str) -> None:
    telemetry = open_backend("nvidia-smi", nvidia_smi=nvidia_smi)

    assert telemetry.backend_name == "nvidia-smi"
    assert telemetry.sample().driver_version == "550.54.15"


def test_nvidia_smi_that_is_not_there_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(TelemetryError, match="GPUBOT_NVIDIA_SMI"):
        open_backend("nvidia-smi", nvidia_smi=str(tmp_path / "nvidia-smi"))


def test_nvml_when_asked_for(working_nvml: SimulatedDriver) -> None:
    telemetry = open_backend("nvml")

    assert telemetry.backend_name == "nvml"
    assert telemetry.sample().gpus[0].uuid == "GPU-fake"
    telemetry.close()
    assert working_nvml.shutdowns == 1


@pytest.mark.usefixtures("no_nvml")
def test_nvml_that_does_not_initialise_is_an_error_not_a_fallback(nvidia_smi: str) -> None:
    with pytest.raises(TelemetryError, match="NVML could not be initialised"):
        open_backend("nvml", nvidia_smi=nvidia_smi)


@pytest.mark.usefixtures("working_nvml")
def test_auto_prefers_nvml(nvidia_smi: str) -> None:
    assert open_backend("auto", nvidia_smi=nvidia_smi).backend_name == "nvml"


@pytest.mark.usefixtures("no_nvml")
def test_auto_falls_back_to_nvidia_smi(nvidia_smi: str) -> None:
    assert open_backend("auto", nvidia_smi=nvidia_smi).backend_name == "nvidia-smi"


@pytest.mark.usefixtures("no_nvml")
def test_auto_with_nothing_available_says_what_failed_and_what_to_set(tmp_path: Path) -> None:
    missing = str(tmp_path / "nvidia-smi")

    with pytest.raises(TelemetryError) as raised:
        open_backend("auto", nvidia_smi=missing)

    message = raised.value.message
    assert "NVML Shared Library Not Found" in message
    assert missing in message
    assert "GPUBOT_GPU_BACKEND=nvml|nvidia-smi|fake" in message


def test_the_fake_backend_never_loads_the_nvml_binding() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gpubot.telemetry import open_backend\n"
        f"open_backend('fake', fake_gpus_path=Path({str(SCENARIOS / '8xH100.json')!r})).sample()\n"
        "assert 'pynvml' not in sys.modules, 'pynvml was imported'\n"
        "assert 'gpubot.telemetry.nvml' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)

    assert result.returncode == 0, result.stderr


def test_sample_once_reads_every_gpu_of_the_chosen_backend(tmp_path):
    from gpubot.settings import Settings
    from gpubot.telemetry import sample_once

    path = tmp_path / "gpus.json"
    path.write_text('{"hostname": "box", "gpus": [{"index": 0, "uuid": "GPU-0", "name": "A"}]}')
    settings = Settings.from_env(
        {"GPUBOT_GPU_BACKEND": "fake", "GPUBOT_FAKE_GPUS": str(path), "GPUBOT_DATABASE_URL": "sqlite://"},
        require_tokens=False,
    )
    sample = sample_once(settings)
    assert sample.hostname == "box" and [gpu.uuid for gpu in sample.gpus] == ["GPU-0"]


def test_every_backend_names_the_host_by_its_short_hostname(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, nvidia_smi: str, working_nvml: SimulatedDriver
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "gpu-a.lab.example.org")
    fake = tmp_path / "gpus.json"
    fake.write_text('{"gpus": []}')
    for kind in ("fake", "nvidia-smi", "nvml", "none"):
        telemetry = open_backend(kind, fake_gpus_path=fake, nvidia_smi=nvidia_smi)
        try:
            assert telemetry.sample().hostname == "gpu-a", kind
        finally:
            telemetry.close()


def test_the_host_name_setting_names_every_sample(nvidia_smi: str) -> None:
    for kind in ("fake", "nvidia-smi", "none"):
        telemetry = open_backend(
            kind, fake_gpus_path=SCENARIOS / "8xH100.json", nvidia_smi=nvidia_smi, host_name="node-17"
        )
        try:
            assert telemetry.sample().hostname == "node-17", kind
        finally:
            telemetry.close()
    # The fake's GPUs keep what the file says: only the host's name changes.
    named = open_backend("fake", fake_gpus_path=SCENARIOS / "8xH100.json", host_name="node-17").sample()
    assert named.gpus == open_backend("fake", fake_gpus_path=SCENARIOS / "8xH100.json").sample().gpus


def test_none_is_a_host_without_gpus() -> None:
    telemetry = open_backend("none", host_name="slack-only")
    assert telemetry.backend_name == "none"
    sample = telemetry.sample()
    assert (sample.hostname, sample.driver_version, sample.gpus) == ("slack-only", None, ())
