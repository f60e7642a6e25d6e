"""The *durable* floor: the tuned floor that also commits one row to SQLite, durably, before each `/gpu` reply.

With `FLOOR_DATABASE=postgresql://…` it commits the row to PostgreSQL instead: the fleet's durable floor.

What any bot must at least pay for a command that changes state and says it is done: one SQLite
transaction on a file in WAL mode with `synchronous=FULL` (SQLite's default, and gpubot's: one fsync of
the WAL per commit), ``BEGIN IMMEDIATE``, one INSERT, COMMIT, run on one writer thread of its own so the
event loop never waits on the disk: one writer at a time, as SQLite allows, in the order the commands
came. Nothing else: no ORM, no reads, no rules. gpubot's `claim` and `release` do this much and more, so
this is their floor where the tuned floor (no I/O at all) is not. Run by the benchmarks as a process of
its own:

    FLOOR_DATABASE=/tmp/floor.db SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… \
        GPUBOT_SLACK_API_URL=http://127.0.0.1:…/api/ python bench/floor_durable.py

It prints `ready` on stderr once its Socket Mode connection is up and exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import floor_tuned


class PostgresLog:
    """The same table on PostgreSQL: one INSERT committed per command (durable: `synchronous_commit` on)."""

    def __init__(self, url: str) -> None:
        """Connect to the database at `url` (a libpq URL) and create the table."""
        import psycopg  # only this floor's PostgreSQL mode needs it

        self._connection = psycopg.connect(url)
        with self._connection.transaction():
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS commands"
                " (id SERIAL PRIMARY KEY, user_id TEXT, text TEXT, at DOUBLE PRECISION)"
            )

    def append(self, user_id: str, text: str) -> None:
        """Commit one row; returns once the commit is durable."""
        with self._connection.transaction():
            self._connection.execute(
                "INSERT INTO commands (user_id, text, at) VALUES (%s, %s, %s)", (user_id, text, time.time())
            )


class DurableLog:
    """One table of commands, each appended in a transaction of its own that is on disk when it returns.

    Used from one thread at a time (the floor's writer thread).
    """

    def __init__(self, path: str) -> None:
        """Open (or create) the database file at `path`."""
        # isolation_level=None: the driver issues no BEGIN of its own, so ours is the only one.
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = FULL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS commands (id INTEGER PRIMARY KEY, user_id TEXT, text TEXT, at REAL)"
        )

    def append(self, user_id: str, text: str) -> None:
        """Commit one row; returns once the commit is durable."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            self._connection.execute(
                "INSERT INTO commands (user_id, text, at) VALUES (?, ?, ?)", (user_id, text, time.time())
            )
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")


def main() -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    target = os.environ["FLOOR_DATABASE"]
    log = PostgresLog(target) if target.startswith("postgresql://") else DurableLog(target)
    # One thread, fed first come first served: the writes queue in order, with no lock to contend for.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-writer")

    async def append(command: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(writer, log.append, command.get("user_id", ""), command.get("text", ""))

    try:
        return asyncio.run(floor_tuned.serve(before_reply=append))
    finally:
        writer.shutdown()


if __name__ == "__main__":
    sys.exit(main())
