"""GPU telemetry adapters behind `gpubot.core.ports.Telemetry`: NVML, nvidia-smi and a JSON fake.

`open_backend` picks one. NVML is imported only when asked for, so the `fake` and `nvidia-smi` backends
work on hosts without the NVML binding or library. Every backend names the host by its short hostname
(GPUBOT_HOST_NAME overrides it); `none` is a host without GPUs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

from gpubot.core.errors import NoGpuBackend, TelemetryError
from gpubot.core.models import HostSample
from gpubot.core.ports import Telemetry
from gpubot.telemetry.fake import FakeTelemetry
from gpubot.telemetry.host_name import NamedTelemetry, NoGpus, short_hostname
from gpubot.telemetry.nvidia_smi import NvidiaSmiTelemetry

BACKEND_KINDS = ("auto", "nvml", "nvidia-smi", "fake", "none")

__all__ = [
    "BACKEND_KINDS",
    "BackendChoice",
    "FakeTelemetry",
    "NvidiaSmiTelemetry",
    "open_backend",
    "open_configured",
    "sample_once",
]


class BackendChoice(Protocol):
    """The settings that choose a backend (`gpubot.settings.Settings` has them)."""

    @property
    def gpu_backend(self) -> str:
        """One of `BACKEND_KINDS`, or "auto" to try NVML, then nvidia-smi."""
        ...

    @property
    def fake_gpus_path(self) -> Path | None:
        """The JSON file the fake backend reads; None for a real one."""
        ...

    @property
    def nvidia_smi(self) -> str:
        """The nvidia-smi executable the nvidia-smi backend runs."""
        ...

    @property
    def host_name(self) -> str | None:
        """The name samples give the host (GPUBOT_HOST_NAME); None: the backend's own (the short hostname)."""
        ...


def open_configured(choice: BackendChoice) -> Telemetry:
    """Open the backend the settings choose: the daemon, `gpubot doctor` and the host commands all do.

    Raises:
        NoGpuBackend: see `open_backend`.
    """
    return open_backend(
        choice.gpu_backend,
        fake_gpus_path=choice.fake_gpus_path,
        nvidia_smi=choice.nvidia_smi,
        host_name=choice.host_name,
    )


def open_backend(
    kind: str, *, fake_gpus_path: Path | None = None, nvidia_smi: str = "nvidia-smi", host_name: str | None = None
) -> Telemetry:
    """Open the telemetry backend `kind` (GPUBOT_GPU_BACKEND).

    Args:
        kind: `auto` (NVML if it initialises, else nvidia-smi if it is installed), `nvml`, `nvidia-smi`,
            `fake`, or `none` (no GPUs: every sample is empty).
        fake_gpus_path: The JSON file the `fake` backend reads (GPUBOT_FAKE_GPUS).
        nvidia_smi: Name or path of the nvidia-smi executable (GPUBOT_NVIDIA_SMI).
        host_name: The name its samples give the host (GPUBOT_HOST_NAME); None: the machine's short
            hostname (the fake backend's file may name one).

    Returns:
        A backend ready to sample; the caller closes it.

    Raises:
        NoGpuBackend: the kind is unknown, or the backend asked for (any backend, for `auto`) is
            unavailable; the message says what failed and which settings choose another.
    """
    if kind == "none":
        return NoGpus(host_name or short_hostname())
    try:
        backend = _open(kind, fake_gpus_path, nvidia_smi)
    except NoGpuBackend:
        raise
    except TelemetryError as error:
        # Restarting cannot make a backend appear: the CLI exits 78 on this, so systemd does not loop.
        raise NoGpuBackend(error.message) from error
    return backend if host_name is None else NamedTelemetry(backend, host_name)


def _open(kind: str, fake_gpus_path: Path | None, nvidia_smi: str) -> Telemetry:
    if kind == "fake":
        if fake_gpus_path is None:
            raise TelemetryError(
                "GPUBOT_GPU_BACKEND=fake needs GPUBOT_FAKE_GPUS, the path of a JSON file describing the GPUs."
            )
        return FakeTelemetry(fake_gpus_path)
    if kind == "nvml":
        return _open_nvml()
    if kind == "nvidia-smi":
        return _open_nvidia_smi(nvidia_smi)
    if kind == "auto":
        try:
            return _open_nvml()
        except TelemetryError as nvml_error:
            try:
                return _open_nvidia_smi(nvidia_smi)
            except TelemetryError as smi_error:
                raise NoGpuBackend(
                    f"No GPU backend is available. NVML: {nvml_error.message} nvidia-smi: {smi_error.message} "
                    "Set GPUBOT_GPU_BACKEND=nvml|nvidia-smi|fake to choose one."
                ) from smi_error
    raise TelemetryError(f"Unknown GPU backend {kind!r}: set GPUBOT_GPU_BACKEND to one of {', '.join(BACKEND_KINDS)}.")


def _open_nvml() -> Telemetry:
    try:
        # Imported here, not at the top, so hosts using another backend never load the NVML binding.
        from gpubot.telemetry.nvml import NvmlTelemetry
    except ImportError as error:
        raise TelemetryError(f"the NVML binding (nvidia-ml-py) is not installed ({error}).") from error
    return NvmlTelemetry()


def _open_nvidia_smi(executable: str) -> Telemetry:
    # Checked now so a wrong GPUBOT_NVIDIA_SMI fails at start-up, not on the first poll.
    if shutil.which(executable) is None:
        raise TelemetryError(
            f"{executable!r} was not found or is not executable; install the NVIDIA driver utilities "
            "or set GPUBOT_NVIDIA_SMI to its path."
        )
    return NvidiaSmiTelemetry(executable)


def sample_once(choice: BackendChoice) -> HostSample:
    """Open the chosen backend, read every GPU once and close it again: for one-shot commands on the host.

    Raises:
        TelemetryError: the backend cannot be opened or cannot sample.
    """
    telemetry = open_configured(choice)
    try:
        return telemetry.sample()
    finally:
        telemetry.close()
