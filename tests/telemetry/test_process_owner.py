"""Process owners and names from /proc: a fake proc tree, and this test's own process."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from gpubot.telemetry.process_owner import process_name, process_owner


def _own_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _unmapped_uid() -> int:
    uid = 60_000
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def _fake_process(proc: Path, pid: int, status: str, comm: str | None = None) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "status").write_text(status)
    if comm is not None:
        (proc / str(pid) / "comm").write_text(comm)


def test_owner_is_the_user_name_of_the_real_uid(tmp_path: Path) -> None:
    # Real UID first, then effective, saved and filesystem: a setuid program is still its caller's.
    other = _unmapped_uid()
    _fake_process(
        tmp_path,
        4242,
        f"Name:\tpython\nUmask:\t0022\nUid:\t{os.getuid()}\t{other}\t{other}\t{other}\nGid:\t0\t0\t0\t0\n",
    )

    assert process_owner(4242, tmp_path) == _own_user()


def test_a_uid_without_a_passwd_entry_is_shown_as_the_number(tmp_path: Path) -> None:
    uid = _unmapped_uid()
    _fake_process(tmp_path, 4242, f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n")

    assert process_owner(4242, tmp_path) == str(uid)


@pytest.mark.parametrize(
    "status", ["Name:\tpython\n", "Uid:\n", "Uid:\tabc\t0\t0\t0\n"], ids=["no-uid", "empty", "nan"]
)
def test_a_status_without_a_readable_uid_has_no_owner(tmp_path: Path, status: str) -> None:
    _fake_process(tmp_path, 4242, status)

    assert process_owner(4242, tmp_path) is None


def test_a_process_that_is_gone_has_no_owner_and_no_name(tmp_path: Path) -> None:
    assert process_owner(4242, tmp_path) is None
    assert process_name(4242, tmp_path) is None


def test_name_is_the_comm_without_its_newline(tmp_path: Path) -> None:
    _fake_process(tmp_path, 4242, "Uid:\t0\t0\t0\t0\n", comm="python3\n")

    assert process_name(4242, tmp_path) == "python3"


def test_an_empty_comm_is_no_name(tmp_path: Path) -> None:
    _fake_process(tmp_path, 4242, "Uid:\t0\t0\t0\t0\n", comm="\n")

    assert process_name(4242, tmp_path) is None


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux procfs")
def test_this_process_is_owned_by_whoever_runs_the_tests() -> None:
    pid = os.getpid()

    assert process_owner(pid) == _own_user()
    assert process_name(pid) == Path("/proc/self/comm").read_text().strip()
