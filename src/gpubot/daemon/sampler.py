"""Telemetry sampled in the background, so no request ever waits on NVML or a subprocess."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpubot.core.errors import TelemetryError
from gpubot.core.models import HostSample
from gpubot.core.ports import Telemetry

logger = logging.getLogger(__name__)


class TelemetrySampler:
    """Keeps the latest sample of every GPU; tells its listener when the set of GPUs changes."""

    def __init__(self, telemetry: Telemetry, on_inventory_change: Callable[[HostSample], None]) -> None:
        self._telemetry = telemetry
        self._on_inventory_change = on_inventory_change
        # What a sync records of each GPU: a change (a MIG repartition too) syncs again.
        self._inventory: tuple[tuple[int, int | None, str, str | None, str | None, str | None], ...] | None = None
        self._last_error: str | None = None
        self.latest: HostSample | None = None

    def sample_once(self) -> HostSample | None:
        """Read every GPU now (blocking: call it off the event loop). A failed read is logged once per cause."""
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
