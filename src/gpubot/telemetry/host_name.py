"""Which host a sample names: the machine's short hostname, or the name the settings give it.

The name is what claims are filed under and what the fleet knows the host by (`HOST:0`), so every backend
names the host alike: by its short hostname, without the domain that some machines report and others do not.
"""

from __future__ import annotations

import dataclasses
import socket

from gpubot.core.models import HostSample
from gpubot.core.ports import Telemetry


def short_hostname() -> str:
    """This machine's hostname without its domain: `gpu-a` for `gpu-a.lab.example.org`."""
    return socket.gethostname().split(".")[0]


class NamedTelemetry:
    """A backend whose samples name the host as GPUBOT_HOST_NAME says, whatever the machine is called.

    Args:
        inner: the backend that reads the GPUs.
        host_name: the name its samples carry.
    """

    def __init__(self, inner: Telemetry, host_name: str) -> None:
        self._inner = inner
        self.host_name = host_name
        self.backend_name = inner.backend_name

    def sample(self) -> HostSample:
        """The inner backend's sample, under this host name.

        Raises:
            TelemetryError: the inner backend cannot sample.
        """
        return dataclasses.replace(self._inner.sample(), hostname=self.host_name)

    def close(self) -> None:
        """Close the inner backend."""
        self._inner.close()


class NoGpus:
    """The `none` backend: a host without GPUs (a `gpubot serve` that only answers Slack) samples as empty.

    Args:
        host_name: the name its samples carry.
    """

    backend_name = "none"

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name

    def sample(self) -> HostSample:
        """An empty sample: no GPUs, no driver."""
        return HostSample(hostname=self.host_name, driver_version=None, gpus=())

    def close(self) -> None:
        """Nothing to release."""
