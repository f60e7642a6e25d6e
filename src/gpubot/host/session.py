"""The host commands' wiring (`gpubot status`, `realtime`, `claims`, `release`): no Slack, one sample.

Telemetry is sampled once to learn the host's name and GPUs (the same name the daemon files claims
under), then the claim service reads and writes the same database the daemon uses. A DM a change owes
(e.g. to the holder of a force-released claim) goes into the outbox, which the running daemon delivers.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gpubot.core.errors import NoDatabase
from gpubot.core.models import HostSample
from gpubot.core.people import PeopleDirectory
from gpubot.core.service import ClaimService
from gpubot.settings import Settings
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.preflight import missing_sqlite_file, require_head
from gpubot.storage.tables import metadata
from gpubot.system_clock import SystemClock
from gpubot.telemetry import sample_once


@dataclass(frozen=True)
class HostSession:
    """What a host command works with: the claim service for this host and the sample taken."""

    service: ClaimService
    sample: HostSample
    clock: SystemClock
    store: SqlClaimStore
    # Names the daemon looked up in Slack: the host has no Slack connection of its own.
    people: PeopleDirectory
    # Said beside the output: e.g. that there is no claims database yet, so every GPU shows free.
    note: str | None = None


@contextmanager
def open_host(settings: Settings, *, missing_ok: bool = False) -> Iterator[HostSession]:
    """Sample the GPUs once and open the claims database, for the length of one command.

    The database must already be at the newest schema: a host command never migrates it, since the
    service running an older gpubot could not use the result.

    Args:
        settings: the service's settings (`host_environment`).
        missing_ok: for commands that only read: a SQLite file that does not exist yet (the service
            never ran) is not created; the session works on an empty database in memory, every GPU
            free, and its `note` says so.

    Raises:
        TelemetryError: the GPU backend cannot sample.
        NoDatabase: the SQLite file does not exist yet (and `missing_ok` is not set).
        StoreUnavailable: the database cannot be opened or is not at the newest schema.
        ConfigError: GPUBOT_DATABASE_URL is malformed.
    """
    sample = sample_once(settings)
    missing = missing_sqlite_file(settings.database_url)
    note = None
    if missing is not None:
        # Not created here: a host command run as root would leave a file the service cannot write.
        if not missing_ok:
            raise NoDatabase(str(missing))
        note = f"no claims database exists yet at {missing}: every GPU is shown free (the service creates it)"
        engine = make_engine("sqlite://")
        metadata.create_all(engine)
    else:
        engine = make_engine(settings.database_url)
    try:
        if missing is None:
            require_head(engine)
        clock = SystemClock()
        store = SqlClaimStore(engine)
        service = ClaimService(
            store, clock, settings.claim_policy(), host=sample.hostname, host_timeout=settings.host_timeout
        )
        # As the daemon does on start: claims name GPUs by index, which the store must know.
        service.sync_inventory(sample)
        # The other hosts of the fleet, as they last reported: a host command answers for the whole fleet.
        service.fleet_reported(store.hosts())
        yield HostSession(
            service=service, sample=sample, clock=clock, store=store, people=PeopleDirectory(store, clock), note=note
        )
    finally:
        engine.dispose()


def host_actor() -> str:
    """Who acts from the host, as the claim's audit log and the holder's DM name them: "host:<login>".

    The login of the terminal comes first, so `sudo -u gpubot gpubot release …` names the admin who
    typed it rather than the service's user.
    """
    try:
        login = os.getlogin()
    except OSError:
        login = getpass.getuser()
    return f"host:{login}"
