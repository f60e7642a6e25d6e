"""The fleet's registry of hosts (the core's `FleetStore` port), which `SqlClaimStore` inherits from here.

A host name has one live reporter at a time, decided in the database: registration reads the name's row under a
lock (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transaction excludes every other writer) and applies
`gpubot.core.registry.may_take`; a report is one conditional ``UPDATE ... WHERE instance = mine``, so a process
that lost its name learns it from the row count of its next report.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from gpubot.core.errors import HostNameTaken
from gpubot.core.models import HostReport, HostRole, HostSample, ProcessIdentity
from gpubot.core.registry import NameHold, may_take
from gpubot.core.usage import UsageRule
from gpubot.storage import tables
from gpubot.storage.pg_notify import PgNotifications
from gpubot.storage.rows import require_aware
from gpubot.storage.sample_json import sample_from_json, sample_to_json
from gpubot.storage.tables import UtcDateTime
from gpubot.storage.usage_store import UsageTransactions

if TYPE_CHECKING:
    from gpubot.storage.rows import AnyRow

logger = logging.getLogger(__name__)

# Linux's identity of the current boot: a PID recorded before a reboot names nothing after it.
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

_hosts = tables.hosts
_NAME = _hosts.c.name == bindparam("host_name")
_HOLDING = (_NAME, _hosts.c.instance == bindparam("holding_instance"))
HOST_FOR_UPDATE = select(*_hosts.c).where(_NAME).with_for_update()
ALL_HOSTS = select(*_hosts.c).order_by(_hosts.c.name)
# One statement per report, whatever it carries: with a sample, or (its telemetry failing) only a sign of life.
REPORT_SAMPLE = (
    update(_hosts)
    .where(*_HOLDING)
    .values(
        last_report_at=bindparam("at", type_=UtcDateTime()),
        sampled_at=bindparam("at", type_=UtcDateTime()),
        sample=bindparam("sample_json"),
        driver_version=bindparam("driver"),
    )
)
REPORT_ALIVE = update(_hosts).where(*_HOLDING).values(last_report_at=bindparam("at", type_=UtcDateTime()), sample=None)
RELEASE_HOST = update(_hosts).where(*_HOLDING).values(instance=None)


def this_process(boot_id_file: Path = BOOT_ID) -> ProcessIdentity:
    """The running process as the registry records it: this machine's hostname, its PID and the boot's id."""
    try:
        boot_id: str | None = boot_id_file.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        boot_id = None
    return ProcessIdentity(machine=socket.gethostname(), pid=os.getpid(), boot_id=boot_id)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs on this machine (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, and belongs to someone else
    return True


class FleetTransactions(UsageTransactions):
    """Registering, reporting for and releasing host names, and reading the fleet's hosts.

    Args:
        engine: from `gpubot.storage.engine.make_engine`; SQLite or PostgreSQL.
        on_notice_queued: see `SqlTransactions`.
        process: the process registering names; default this one (`this_process()`, read when first needed).
        pid_alive: whether a PID of this machine runs (`pid_alive`); tests replace it.

    Raises:
        ValueError: the engine's database is neither SQLite nor PostgreSQL.
    """

    def __init__(
        self,
        engine: Engine,
        on_notice_queued: Callable[[], None] = lambda: None,
        notifications: PgNotifications | None = None,
        *,
        process: ProcessIdentity | None = None,
        pid_alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        super().__init__(engine, on_notice_queued, notifications)
        self._process = process
        self._pid_alive = pid_alive
        self._undecodable: set[str] = set()

    def register_host(
        self, name: str, role: HostRole, instance: str, holder: str, now: datetime, timeout: timedelta
    ) -> None:
        """Take the host name for `instance`, unless another live process holds it (see `may_take`).

        Args:
            name: the host name (GPUBOT_HOST_NAME, or the machine's short hostname).
            role: what the registering process does.
            instance: the registering process's token, which its reports and release name.
            holder: who it is, for the message another process gets.
            now: when; counts as its first sign of life.
            timeout: GPUBOT_HOST_TIMEOUT: how long a silent holder keeps the name.

        Raises:
            HostNameTaken: another live process holds the name; nothing was written.
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        require_aware(now=now)
        me = self._process if self._process is not None else this_process()
        values: dict[str, object] = {
            "name": name,
            "role": role.value,
            "instance": instance,
            "holder": holder,
            "machine": me.machine,
            "pid": me.pid,
            "boot_id": me.boot_id,
            "started_at": now,
            "last_report_at": now,
        }
        try:
            self._register(name, me, now, timeout, values)
        except IntegrityError:
            # Another process inserted the name's first row meanwhile: its row is there to lock and judge now.
            self._register(name, me, now, timeout, values)

    def _register(
        self, name: str, me: ProcessIdentity, now: datetime, timeout: timedelta, values: dict[str, object]
    ) -> None:
        with self._writing() as write:
            row = write.execute(HOST_FOR_UPDATE, {"host_name": name}).first()
            if row is None:
                write.execute(insert(_hosts).values(values))
                return
            hold = NameHold(row.instance, _process_of(row), row.last_report_at)
            if not may_take(hold, me, now, timeout, self._pid_alive):
                raise HostNameTaken(name, row.holder, row.last_report_at)
            write.execute(update(_hosts).where(_hosts.c.name == name).values(values))

    def report(
        self, name: str, instance: str, sample: HostSample | None, now: datetime, usage: UsageRule | None = None
    ) -> bool:
        """Record the host's latest sample and that it is alive, in one UPDATE; with `usage`, count the sample too.

        Args:
            name: the host name registered.
            instance: the token it was registered with.
            sample: the latest telemetry; None when it could not be read (the stored one is cleared: an old
                sample must not pass for a current one).
            now: when.
            usage: how to count the sample into the usage tables, in the same transaction (once per sample time);
                None: not counted.

        Returns:
            False when the name is no longer this instance's (released, or taken over after a silence).

        Raises:
            StoreBusy: the database stayed locked.
            ValueError: `now` is naive.
        """
        require_aware(now=now)
        parameters: dict[str, object] = {"host_name": name, "holding_instance": instance, "at": now}
        if sample is None:
            statement = REPORT_ALIVE
        else:
            statement = REPORT_SAMPLE
            parameters.update(sample_json=sample_to_json(sample), driver=sample.driver_version)
        with self._writing() as write:
            reported = write.execute(statement, parameters).rowcount == 1
            if reported and sample is not None:
                write.telemetry_written()
                if usage is not None:
                    self._count_usage(write, name, instance, sample, now, usage)
            return reported

    def release_host(self, name: str, instance: str) -> None:
        """Give the name up (only while `instance` holds it), so that a successor takes it at once.

        Its last report stays: the host shows offline only once it has been silent for the time-out, so a
        restart does not flicker.

        Raises:
            StoreBusy: the database stayed locked.
        """
        with self._writing() as write:
            write.execute(RELEASE_HOST, {"host_name": name, "holding_instance": instance})

    def hosts(self) -> list[HostReport]:
        """Every host that ever registered, by name, each with its latest sample.

        A sample that cannot be read back (written by an incompatible gpubot) counts as none, logged once.
        """
        with self._reading() as connection:
            found = connection.execute(ALL_HOSTS).all()
        return [self._report_of(row) for row in found]

    def _report_of(self, row: AnyRow) -> HostReport:
        sample = None
        if row.sample is not None:
            try:
                sample = sample_from_json(row.sample)
            except ValueError as error:
                if row.name not in self._undecodable:
                    logger.warning("the stored sample of host %s cannot be read (%s); shown as none", row.name, error)
                    self._undecodable.add(row.name)
        holder = _process_of(row) if row.instance is not None else None
        return HostReport(row.name, HostRole(row.role), row.last_report_at, sample, holder)


def _process_of(row: AnyRow) -> ProcessIdentity:
    return ProcessIdentity(machine=row.machine, pid=row.pid, boot_id=row.boot_id)
