"""Telemetry sampled in the background, so no request ever waits on NVML or a subprocess."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from gpubot.core.errors import TelemetryError
from gpubot.core.models import HostSample
from gpubot.core.ports import Telemetry
from gpubot.telemetry.process_owner import PROC_ROOT, namespaces

logger = logging.getLogger(__name__)


class TelemetrySampler:
    """Keeps the latest sample of every GPU; tells its listener when the set of GPUs changes.

    Args:
        telemetry: the backend it reads.
        on_inventory_change: called with a sample whose set of GPUs differs from the last one's.
        report: called after every read, in the same thread, with its sample (None when the read failed):
            the host's report to the fleet's database.
    """

    def __init__(
        self,
        telemetry: Telemetry,
        on_inventory_change: Callable[[HostSample], None],
        report: Callable[[HostSample | None], object] | None = None,
    ) -> None:
        self._telemetry = telemetry
        self._on_inventory_change = on_inventory_change
        self._report = report
        # What a sync records of each GPU: a change (a MIG repartition too) syncs again.
        self._inventory: tuple[tuple[int, int | None, str, str | None, str | None, str | None], ...] | None = None
        self._last_error: str | None = None
        self.latest: HostSample | None = None

    def sample_once(self) -> HostSample | None:
        """Read every GPU now, then report it (blocking: call it off the event loop).

        A failed read is logged once per cause.

        Raises:
            GpubotError: from the report (e.g. StoreBusy); the sample is taken all the same.
        """
        sample = self._read()
        if self._report is not None:
            self._report(sample)
        return sample

    def _read(self) -> HostSample | None:
        try:
            sample = self._telemetry.sample()
        except TelemetryError as error:
            if error.message != self._last_error:
                logger.error("telemetry (%s) failed: %s", self._telemetry.backend_name, error.message)
                self._last_error = error.message
            self.latest = None
            return None
        if self._last_error is not None:
            logger.info("telemetry (%s) is back", self._telemetry.backend_name)
            self._last_error = None
        self.accept(sample)
        return sample

    def accept(self, sample: HostSample) -> None:
        """Take a sample read elsewhere (the daemon's first, which names the host) as the latest."""
        inventory = tuple(
            (gpu.index, gpu.mig_index, gpu.uuid, gpu.parent_uuid, gpu.name, gpu.mig_profile) for gpu in sample.gpus
        )
        if inventory != self._inventory:
            self._on_inventory_change(sample)
            self._inventory = inventory
        self.latest = sample


def warn_of_namespaces(backend_name: str, proc_root: Path = PROC_ROOT) -> None:
    """Log once, at start, when process owners read from /proc would be wrong here (a container).

    Args:
        backend_name: The telemetry backend in use; the fake and none backends read no processes.
        proc_root: Where procfs is mounted (a temporary tree in tests).
    """
    warning = namespaces(proc_root).warning
    if warning and backend_name not in ("fake", "none"):
        logger.warning("%s", warning)
