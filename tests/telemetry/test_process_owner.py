"""Process owners and names from /proc: a fake proc tree, and this test's own process."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from gpubot.telemetry.process_owner import Namespaces, namespaces, process_name, process_owner

HOST_PID_NS = "pid:[4026531836]"  # 0xEFFFFFFC, the kernel's initial PID namespace
IDENTITY_UID_MAP = "         0          0 4294967295\n"


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
    if namespaces().host_pids is False:
        # Run in a container's own PID namespace: our PID is not the host's one the GPUs would report.
        assert (process_owner(pid), process_name(pid)) == (None, None)
    else:
        assert process_owner(pid) == _own_user()
        assert process_name(pid) == Path("/proc/self/comm").read_text().strip()


def _namespace(proc: Path, pid_link: str | None, uid_map: str | None, overflow_uid: str | None = None) -> None:
    (proc / "self" / "ns").mkdir(parents=True)
    if pid_link is not None:
        (proc / "self" / "ns" / "pid").symlink_to(pid_link)
    if uid_map is not None:
        (proc / "self" / "uid_map").write_text(uid_map)
    if overflow_uid is not None:
        (proc / "sys" / "kernel").mkdir(parents=True)
        (proc / "sys" / "kernel" / "overflowuid").write_text(overflow_uid)


def test_on_the_host_owners_and_names_are_read_and_nothing_is_said(tmp_path: Path) -> None:
    _namespace(tmp_path, HOST_PID_NS, IDENTITY_UID_MAP)
    _fake_process(tmp_path, 4242, f"Uid:\t{os.getuid()}\t0\t0\t0\n", comm="python3\n")

    assert namespaces(tmp_path) == Namespaces(host_pids=True, user_namespace=False)
    assert namespaces(tmp_path).warning is None
    assert (process_owner(4242, tmp_path), process_name(4242, tmp_path)) == (_own_user(), "python3")


def test_in_a_pid_namespace_of_its_own_owners_and_names_are_unknown_not_another_processes(tmp_path: Path) -> None:
    _namespace(tmp_path, "pid:[4026532461]", IDENTITY_UID_MAP)
    # PID 4242 exists here, but it is the container's 4242, not the host's one on the GPU.
    _fake_process(tmp_path, 4242, f"Uid:\t{os.getuid()}\t0\t0\t0\n", comm="bash\n")

    assert namespaces(tmp_path).host_pids is False
    assert (process_owner(4242, tmp_path), process_name(4242, tmp_path)) == (None, None)
    warning = namespaces(tmp_path).warning or ""
    assert "PID namespace of its own" in warning and "unknown" in warning and "--pid=host" in warning


def test_in_a_user_namespace_the_overflow_uid_is_unknown_and_mapped_uids_are_read(tmp_path: Path) -> None:
    _namespace(tmp_path, HOST_PID_NS, "         0     100000      65536\n")
    _fake_process(tmp_path, 4242, "Uid:\t65534\t65534\t65534\t65534\n")
    _fake_process(tmp_path, 4343, f"Uid:\t{os.getuid()}\t0\t0\t0\n")

    assert namespaces(tmp_path) == Namespaces(host_pids=True, user_namespace=True)
    assert process_owner(4242, tmp_path) is None  # "nobody": someone the namespace does not map
    assert process_owner(4343, tmp_path) == _own_user()
    assert "user namespace" in (namespaces(tmp_path).warning or "")


def test_the_overflow_uid_is_the_kernels_own_setting(tmp_path: Path) -> None:
    _namespace(tmp_path, HOST_PID_NS, "0 100000 65536\n", overflow_uid="4000\n")
    _fake_process(tmp_path, 4242, "Uid:\t4000\t4000\t4000\t4000\n")
    _fake_process(tmp_path, 4343, "Uid:\t65534\t65534\t65534\t65534\n")

    assert namespaces(tmp_path).overflow_uid == 4000
    assert process_owner(4242, tmp_path) is None
    assert process_owner(4343, tmp_path) is not None


def test_a_proc_that_does_not_say_reads_owners_as_before(tmp_path: Path) -> None:
    _namespace(tmp_path, None, None)
    _fake_process(tmp_path, 4242, f"Uid:\t{os.getuid()}\t0\t0\t0\n")

    assert namespaces(tmp_path) == Namespaces(host_pids=None, user_namespace=None)
    assert namespaces(tmp_path).warning is None
    assert process_owner(4242, tmp_path) == _own_user()


@pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="needs Linux procfs with namespaces")
def test_the_real_proc_says_where_this_process_runs() -> None:
    found = namespaces()

    assert found.host_pids is (os.stat("/proc/self/ns/pid").st_ino == 0xEFFFFFFC)
