"""`gpubot serve` says once, at start, when it runs where process owners cannot be read right."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gpubot.daemon.serve import warn_of_namespaces


def _proc(tmp_path: Path, pid_namespace: str) -> Path:
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "ns" / "pid").symlink_to(pid_namespace)
    (tmp_path / "self" / "uid_map").write_text("         0          0 4294967295\n")
    return tmp_path


def test_a_container_of_its_own_is_one_warning_naming_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gpubot.daemon.serve"):
        warn_of_namespaces("nvml", _proc(tmp_path, "pid:[4026532461]"))

    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "PID namespace of its own" in record.getMessage() and "--pid=host" in record.getMessage()


@pytest.mark.parametrize(("backend", "namespace"), [("nvml", "pid:[4026531836]"), ("fake", "pid:[4026532461]")])
def test_on_the_host_or_with_the_fake_backend_nothing_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, backend: str, namespace: str
) -> None:
    with caplog.at_level(logging.INFO, logger="gpubot.daemon.serve"):
        warn_of_namespaces(backend, _proc(tmp_path, namespace))

    assert caplog.records == []
