"""The `nvidia-smi` backend: run `nvidia-smi -q -x` (and `-L` for MIG names) and parse what it prints.

For hosts where the NVML library cannot be loaded from Python but the tool works. The parsing is pure and
lives in `nvidia_smi_xml`; this module runs the executable and never lets a hung one hang the sampler.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from pathlib import Path

from gpubot.core.errors import TelemetryError
from gpubot.core.models import HostSample
from gpubot.telemetry.host_name import short_hostname
from gpubot.telemetry.nvidia_smi_xml import (
    MigListing,
    mig_layout,
    name_slices,
    parse_mig_listing,
    parse_nvidia_smi_xml,
)
from gpubot.telemetry.process_owner import PROC_ROOT, host_pids_visible, process_owner

__all__ = ["NvidiaSmiTelemetry", "parse_mig_listing", "parse_nvidia_smi_xml"]

_log = logging.getLogger(__name__)

# After SIGKILL a process normally dies at once; one that does not is stuck in the driver (uninterruptible
# sleep) and no amount of waiting helps, so the wait is short and the sampler moves on.
KILL_GRACE_S = 1.0


class NvidiaSmiTelemetry:
    """Telemetry from the `nvidia-smi` executable."""

    backend_name = "nvidia-smi"

    def __init__(self, executable: str = "nvidia-smi", timeout_s: float = 10.0, *, proc_root: Path = PROC_ROOT) -> None:
        """Configure the command; nothing runs until `sample()`.

        Args:
            executable: Name or path of nvidia-smi (GPUBOT_NVIDIA_SMI).
            timeout_s: How long one run may take before it counts as hung.
            proc_root: Where procfs is mounted, to find process owners (a temporary tree in tests).
        """
        self.executable = executable
        self.timeout_s = timeout_s
        self.proc_root = proc_root
        # Runs that would not die when killed: kept so they are reaped if they ever exit, and so no new one
        # is started on top of them (each would hang in the driver the same way).
        self._abandoned: list[subprocess.Popen[bytes]] = []
        self._mig_names: tuple[tuple[tuple[str | None, int | None, str], ...], dict[tuple[str, int], MigListing]]
        self._mig_names = ((), {})

    def sample(self) -> HostSample:
        """Run `nvidia-smi -q -x` once and parse it, adding each process's owner from /proc.

        Raises:
            TelemetryError: the executable is missing, hangs, fails, or prints something that is not its XML.
        """
        host = parse_nvidia_smi_xml(self._run("-q", "-x"), hostname=short_hostname())
        if any(gpu.mig_index is not None for gpu in host.gpus):
            host = name_slices(host, self._mig_listing(mig_layout(host)))
        # In another PID namespace the host PIDs nvidia-smi reports name other processes here, or none.
        own_pids = host_pids_visible(self.proc_root)
        gpus = tuple(
            dataclasses.replace(
                gpu,
                processes=tuple(
                    dataclasses.replace(
                        process,
                        name=process.name if own_pids else None,
                        user=process_owner(process.pid, self.proc_root),
                    )
                    for process in gpu.processes
                ),
            )
            for gpu in host.gpus
        )
        return dataclasses.replace(host, gpus=gpus)

    def close(self) -> None:
        """Nothing to release: each sample is its own process (one abandoned as hung is left to the kernel)."""

    def _mig_listing(self, layout: tuple[tuple[str | None, int | None, str], ...]) -> dict[tuple[str, int], MigListing]:
        """The slices' names from `nvidia-smi -L`, run again only when the MIG layout has changed."""
        cached_layout, listing = self._mig_names
        if layout == cached_layout:
            return listing
        try:
            listing = parse_mig_listing(self._run("-L"))
        except TelemetryError as error:
            # The slices keep CUDA's legacy MIG-GPU-… names, which CUDA_VISIBLE_DEVICES accepts too.
            _log.warning("nvidia-smi -L failed (%s); MIG slices keep their legacy names.", error.message)
            listing = {}
        self._mig_names = (layout, listing)
        return listing

    def _run(self, *arguments: str) -> str:
        command = [self.executable, *arguments]
        shown = " ".join(command)
        self._refuse_while_one_is_stuck(shown)
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise TelemetryError(
                f"nvidia-smi was not found at {self.executable!r}: set GPUBOT_NVIDIA_SMI to its path, "
                "or choose another backend with GPUBOT_GPU_BACKEND."
            ) from None
        except OSError as error:
            raise TelemetryError(
                f"nvidia-smi at {self.executable!r} could not be started ({error}): check GPUBOT_NVIDIA_SMI."
            ) from error
        try:
            stdout, stderr = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise self._hung(process, shown) from None
        # Bytes that are not UTF-8 become U+FFFD, which the parser reads as "unknown" for that one field.
        out = stdout.decode("utf-8", errors="replace")
        if process.returncode != 0:
            # nvidia-smi prints its own failures ("couldn't communicate with the NVIDIA driver") on stdout.
            err = stderr.decode("utf-8", errors="replace")
            reason = _first_line(err) or _first_line(out) or "no message"
            raise TelemetryError(f"`{shown}` failed with exit {process.returncode}: {reason}")
        return out

    def _hung(self, process: subprocess.Popen[bytes], shown: str) -> TelemetryError:
        """Kill a run that timed out; wait for it only briefly, and abandon it if it will not die."""
        process.kill()
        try:
            process.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            self._abandoned.append(process)
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            return TelemetryError(
                f"`{shown}` did not finish within {self.timeout_s:g} s and did not die when killed "
                f"(PID {process.pid}, stuck in the driver?); it was abandoned, and no nvidia-smi runs until it exits."
            )
        return TelemetryError(
            f"`{shown}` did not finish within {self.timeout_s:g} s (is the driver hung?); "
            f"it was killed (PID {process.pid})."
        )

    def _refuse_while_one_is_stuck(self, shown: str) -> None:
        # poll() reaps the ones that have exited since.
        self._abandoned = [process for process in self._abandoned if process.poll() is None]
        if self._abandoned:
            pids = ", ".join(str(process.pid) for process in self._abandoned)
            raise TelemetryError(
                f"`{shown}` was not started: an earlier nvidia-smi (PID {pids}) is still stuck after being killed "
                "(the driver is likely hung; a reboot or a driver reload may be needed)."
            )


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None
