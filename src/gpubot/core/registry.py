"""The fleet's rule for host names: one live process reports for a name; who may take it over, and when.

Every `FleetStore` applies this rule inside its registration transaction, so the in-memory fake and the SQL
store cannot disagree about it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpubot.core.models import ProcessIdentity


@dataclass(frozen=True)
class NameHold:
    """Who holds a host name in the registry, as its row says.

    Attributes:
        instance: the holding process's token; None once it released the name.
        process: the process that registered it last.
        last_report_at: its last sign of life (registration counts as one).
    """

    instance: str | None
    process: ProcessIdentity
    last_report_at: datetime | None


def may_take(
    hold: NameHold | None,
    me: ProcessIdentity,
    now: datetime,
    timeout: timedelta,
    pid_alive: Callable[[int], bool],
) -> bool:
    """Whether the process `me` may take a host name held as `hold` says, at `now`.

    It may when nobody holds it (no row, or released), when the holder has been silent for longer than
    `timeout`, when the holder is `me` itself, or when the holder ran on this machine in this boot and its
    PID is gone: a crash followed by a systemd restart must not wait out the time-out.

    Args:
        hold: the name's row; None when the name was never registered.
        me: the registering process.
        now: the current time.
        timeout: GPUBOT_HOST_TIMEOUT: how long a silent holder keeps the name.
        pid_alive: whether a PID of this machine names a running process.

    Returns:
        True when `me` may take the name now; False while another live process holds it.
    """
    if hold is None or hold.instance is None or hold.last_report_at is None:
        return True
    if now - hold.last_report_at > timeout:
        return True
    if not hold.process.same_boot(me):
        return False
    return hold.process.pid == me.pid or not pid_alive(hold.process.pid)
