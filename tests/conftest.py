"""Every test: the host commands never read this machine's installed service (/etc/gpubot, /var/lib/gpubot)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_installed_service(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = tmp_path_factory.mktemp("no-service")
    monkeypatch.setenv("GPUBOT_ENV_FILE", str(nowhere / "gpubot.env"))
    monkeypatch.setenv("GPUBOT_SERVICE_STATE_DIR", str(Path(nowhere) / "state"))
