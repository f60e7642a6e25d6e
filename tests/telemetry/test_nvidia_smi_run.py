"""Running nvidia-smi: a hung run never hangs the sampler; odd output is unknown, never a traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gpubot.core.errors import TelemetryError
from gpubot.telemetry import nvidia_smi
from gpubot.telemetry.nvidia_smi import NvidiaSmiTelemetry, parse_nvidia_smi_xml

GPU = "<gpu><product_name>X</product_name><uuid>GPU-1</uuid>{processes}</gpu>"


def _log(processes: str) -> str:
    return f"<nvidia_smi_log>{GPU.format(processes=processes)}</nvidia_smi_log>"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\necho started >> '{tmp_path / 'runs'}'\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs").read_text().splitlines())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_hung_run_that_ignores_sigterm_is_killed_and_reaped_within_the_timeout(tmp_path: Path) -> None:
    # The shell ignores SIGTERM and sleep inherits that: only SIGKILL ends it.
    executable = _script(tmp_path, "trap '' TERM\nexec sleep 30")
    started = time.monotonic()

    with pytest.raises(TelemetryError, match=r"did not finish within 0\.3 s .*it was killed \(PID \d+\)") as caught:
        NvidiaSmiTelemetry(executable, timeout_s=0.3).sample()

    assert time.monotonic() - started < 3
    pid = int(re.search(r"PID (\d+)", caught.value.message)[1])
    assert not _alive(pid)


def test_a_run_that_will_not_die_is_abandoned_and_no_other_is_started_until_it_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process in uninterruptible sleep inside the driver ignores even SIGKILL; a test cannot make one, so
    # kill() is made to do nothing: to the sampler the child then looks exactly like one stuck in the driver.
    monkeypatch.setattr(subprocess.Popen, "kill", lambda self: None)
    monkeypatch.setattr(nvidia_smi, "KILL_GRACE_S", 0.2)
    executable = _script(tmp_path, "exec sleep 30")
    telemetry = NvidiaSmiTelemetry(executable, timeout_s=0.2)
    started = time.monotonic()

    with pytest.raises(TelemetryError, match=r"did not die when killed \(PID \d+, stuck in the driver\?\)") as caught:
        telemetry.sample()
    pid = int(re.search(r"PID (\d+)", caught.value.message)[1])
    with pytest.raises(TelemetryError, match=rf"not started: an earlier nvidia-smi \(PID {pid}\) is still stuck"):
        telemetry.sample()

    assert time.monotonic() - started < 3
    assert _runs(tmp_path) == 1  # no pile of stuck children
    assert _alive(pid)
    # The driver lets go: the child dies, is reaped, and sampling resumes.
    os.kill(pid, signal.SIGKILL)
    Path(executable).write_text(f"#!/bin/sh\necho '{_log('<processes/>')}'\n")
    deadline = time.monotonic() + 3
    while True:
        try:
            host = telemetry.sample()
            break
        except TelemetryError:
            assert time.monotonic() < deadline, "the abandoned child was never reaped"
            time.sleep(0.05)
    assert [gpu.uuid for gpu in host.gpus] == ["GPU-1"]
    assert not Path(f"/proc/{pid}").exists()


def test_bytes_that_are_not_utf8_make_that_field_unknown(tmp_path: Path) -> None:
    xml = _log(
        "<processes><process_info><pid>7</pid><process_name>tr\\377in</process_name></process_info>"
        "<process_info><pid>8</pid><process_name>ctl\\001x</process_name></process_info>"
        "<process_info><pid>9</pid><process_name>python</process_name></process_info></processes>"
    )
    executable = _script(tmp_path, f"printf '{xml}\\n'")

    (gpu,) = NvidiaSmiTelemetry(executable, proc_root=tmp_path / "proc").sample().gpus

    assert [(p.pid, p.name) for p in gpu.processes] == [(7, None), (8, None), (9, "python")]


@pytest.mark.parametrize(
    ("processes", "reason"),
    [
        ("<processes>N/A</processes>", "nvidia-smi could not list processes (N/A)"),
        ("<processes>[Insufficient Permissions]</processes>", "(Insufficient Permissions)"),
        ("<processes>Not Supported</processes>", "(Not Supported)"),
        ("", "nvidia-smi did not list processes"),
    ],
    ids=["n/a", "permissions", "not-supported", "absent"],
)
def test_a_process_list_nvidia_smi_cannot_give_is_unknown_not_empty(processes: str, reason: str) -> None:
    (gpu,) = parse_nvidia_smi_xml(_log(processes), hostname="box").gpus

    assert gpu.processes == ()
    assert gpu.processes_unknown is not None and reason in gpu.processes_unknown


def test_a_process_without_a_usable_pid_makes_the_list_unknown_but_keeps_the_others() -> None:
    processes = (
        "<processes><process_info><pid>N/A</pid><process_name>ghost</process_name></process_info>"
        "<process_info><pid>12</pid><process_name>python</process_name></process_info></processes>"
    )

    (gpu,) = parse_nvidia_smi_xml(_log(processes), hostname="box").gpus

    assert [p.pid for p in gpu.processes] == [12]
    assert gpu.processes_unknown == "nvidia-smi listed a process without a usable PID"


def test_an_empty_process_list_is_known_to_be_empty() -> None:
    for processes in ("<processes/>", "<processes>\n    </processes>"):
        (gpu,) = parse_nvidia_smi_xml(_log(processes), hostname="box").gpus
        assert (gpu.processes, gpu.processes_unknown) == ((), None)


def test_in_a_pid_namespace_of_its_own_process_names_and_owners_are_unknown(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "pid").symlink_to("pid:[4026532461]")
    (proc / "9").mkdir()
    (proc / "9" / "status").write_text(f"Uid:\t{os.getuid()}\t0\t0\t0\n")
    xml = _log("<processes><process_info><pid>9</pid><process_name>python</process_name></process_info></processes>")
    executable = _script(tmp_path, f"echo '{xml}'")

    (gpu,) = NvidiaSmiTelemetry(executable, proc_root=proc).sample().gpus

    # nvidia-smi read the name from the container's /proc too: PID 9 there is not the host's PID 9.
    assert [(p.pid, p.name, p.user) for p in gpu.processes] == [(9, None, None)]
