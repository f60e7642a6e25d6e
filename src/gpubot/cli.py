"""The `gpubot` command line: a thin layer that turns domain errors into a message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gpubot import __version__
from gpubot.core.errors import ConfigError, GpubotError
from gpubot.logs import configure_logging
from gpubot.settings import Settings

EX_CONFIG = 78  # sysexits.h: the systemd unit does not restart on a configuration error.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpubot", description="Share a team's NVIDIA GPUs from Slack.")
    parser.add_argument("--version", action="version", version=f"gpubot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the Slack bot (Socket Mode) in the foreground until SIGTERM",
        description="Run the Slack bot over Socket Mode until SIGTERM or SIGINT. Settings come from the environment.",
    )
    db = commands.add_parser("db", help="manage the claims database", description="Manage the claims database.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_commands.add_parser(
        "upgrade",
        help="create the database or bring it to the latest schema",
        description="Create the database or migrate it to the latest schema (safe to run while serve runs).",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gpubot` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve()
        if args.command == "db":
            return _db_upgrade()
    except ConfigError as error:
        print(f"gpubot: {error.variable}: expected {error.expected}", file=sys.stderr)
        return EX_CONFIG
    except GpubotError as error:
        print(f"gpubot: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _serve() -> int:
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level, secrets=(settings.slack_bot_token, settings.slack_app_token))
    from gpubot import daemon  # Imported late: the host-only commands need no Slack libraries.

    return daemon.run(settings)


def _db_upgrade() -> int:
    settings = Settings.from_env(os.environ, require_tokens=False)
    configure_logging(settings.log_level)
    from gpubot.storage.engine import make_engine
    from gpubot.storage.migrate import upgrade_to_head

    engine = make_engine(settings.database_url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    print(f"gpubot: database at {settings.database_url.split('@')[-1]} is up to date")
    return 0
