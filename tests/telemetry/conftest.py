"""Telemetry test configuration: the simulated driver under the real binding."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.telemetry.nvml_driver import SimulatedDriver, install


@pytest.fixture
def simulate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[SimulatedDriver], SimulatedDriver]]:
    """Puts a simulated driver under the real binding; fails the test if the simulation itself broke."""
    installed: list[SimulatedDriver] = []

    def put(driver: SimulatedDriver) -> SimulatedDriver:
        installed.append(install(monkeypatch, driver))
        return driver

    yield put
    for driver in installed:
        assert not driver.errors, f"the simulated driver failed: {driver.errors!r}"
