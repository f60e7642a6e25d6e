"""`gpubot db copy`: this host's one-host SQLite database into a fleet's PostgreSQL, and what was copied."""

from __future__ import annotations

from gpubot.settings import Settings
from gpubot.storage.database_copy import CopyReport, copy_database


def copy_to(settings: Settings, target_url: str) -> str:
    """Copy the database the service uses (as the host commands find it) into the empty database at `target_url`.

    Args:
        settings: the service's settings (`host_environment`): its database is the source.
        target_url: the fleet's PostgreSQL database.

    Returns:
        What was copied, for the terminal: where from, where to, and the rows of each table.

    Raises:
        NoDatabase: the SQLite file does not exist.
        CopyRefused: the source is not SQLite or not at the newest schema, the target is not PostgreSQL, or it
            holds any row; nothing was changed.
        StoreUnavailable: either database cannot be opened, or the copy failed (no row was copied).
    """
    return _render(copy_database(settings.database_url, target_url))


def _render(report: CopyReport) -> str:
    width = max(len(table.name) for table in report.tables)
    lines = [f"copied {report.source}", f"  into {report.target}:"]
    lines.extend(f"  {table.name:<{width}}  {table.rows:>9,}" for table in report.tables)
    lines.append(f"  {'in all':<{width}}  {sum(table.rows for table in report.tables):>9,} rows")
    return "\n".join(lines)
