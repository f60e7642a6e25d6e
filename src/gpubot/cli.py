"""The `gpubot` command line: a thin layer that turns domain errors into a message and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from gpubot import __version__
from gpubot.core.dashboard import Fleet
from gpubot.core.errors import ConfigError, GpubotError, SetupError
from gpubot.core.models import Claim
from gpubot.host.terminal import error_text
from gpubot.logs import configure_logging
from gpubot.settings import Settings, host_environment

# sysexits.h's EX_CONFIG, on a ConfigError (a setting) or a SetupError (a database gpubot cannot write, no
# GPU backend): restarting cannot fix either, and the systemd unit does not restart on 78.
EX_CONFIG = 78
EX_USAGE = 2  # what argparse itself exits with on a malformed command line


def build_parser() -> argparse.ArgumentParser:
    """The `gpubot` command line: `serve` and the host and maintenance commands, each with its help."""
    parser = argparse.ArgumentParser(prog="gpubot", description="Share a team's NVIDIA GPUs from Slack.")
    parser.add_argument("--version", action="version", version=f"gpubot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the Slack bot (Socket Mode) in the foreground until SIGTERM",
        description="Run the Slack bot over Socket Mode until SIGTERM or SIGINT. Settings come from the environment.",
    )
    commands.add_parser(
        "agent",
        help="report this host's GPUs to the fleet's database until SIGTERM (no Slack tokens needed)",
        description=(
            "Run on a GPU host of a fleet that a `gpubot serve` elsewhere answers Slack for: register the host "
            "name (GPUBOT_HOST_NAME, default the short hostname) in the shared database (GPUBOT_DATABASE_URL) "
            "and report its GPUs every GPUBOT_TELEMETRY_INTERVAL until SIGTERM or SIGINT. Needs no Slack tokens."
        ),
    )
    db = commands.add_parser("db", help="manage the claims database", description="Manage the claims database.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_commands.add_parser(
        "upgrade",
        help="create the database or bring it to the latest schema",
        description="Create the database or migrate it to the latest schema (safe to run while serve runs).",
    )
    copy = db_commands.add_parser(
        "copy",
        help="copy this host's SQLite database into a fleet's empty PostgreSQL database",
        description=(
            "Copy the SQLite database this host's service uses (claims, their history, the DM outbox, people) into "
            "an empty PostgreSQL database, ids kept, migrating it to the latest schema first. Refuses a target that "
            "holds any row, and a source not at the latest schema, changing nothing. Stop the service first."
        ),
    )
    copy.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the PostgreSQL database, e.g. postgresql+psycopg://gpubot@db/gpubot (password from ~/.pgpass)",
    )
    doctor = commands.add_parser(
        "doctor",
        help="check that this host is ready to run gpubot, with a fix for each problem",
        description=(
            "Check Python, the settings, the database, the GPUs, both Slack tokens and the bot's scopes, a "
            "Socket Mode connection, and the Home and Messages tabs. Prints one line per check and a fix for "
            "each failure; exits 0 only when every check passes. The tab checks publish a one-line Home view "
            "to a person and send them a DM."
        ),
    )
    doctor.add_argument(
        "--user",
        metavar="U…",
        help="Slack member ID to check the tabs with (default: the first of GPUBOT_ADMINS)",
    )
    status = commands.add_parser(
        "status",
        help="every GPU of the fleet (or of HOST), free or held, by whom and until when",
        description=(
            "Show every GPU, free or held, by whom, for what and until when; in a fleet of several hosts a line "
            "per host and every held GPU, or one HOST in full. Needs no Slack."
        ),
    )
    status.add_argument("host", nargs="?", help="show this host of the fleet in full")
    realtime = commands.add_parser(
        "realtime",
        help="live load, temperature, memory, power and processes of every GPU (of HOST)",
        description=(
            "Sample this host's GPUs once and show load, temperature, utilization, memory, power and processes, "
            "with the other hosts' figures as they last reported."
        ),
    )
    realtime.add_argument("host", nargs="?", help="show this host of the fleet only")
    claims = commands.add_parser(
        "claims",
        help="the active claims (--json for scripts)",
        description="List the active claims of the fleet: GPU, holder, since, until, time left and purpose.",
    )
    claims.add_argument("--json", action="store_true", help="print a JSON array (times in ISO 8601, UTC)")
    release = commands.add_parser(
        "release",
        help="end someone's claim from the host (admin; needs --force)",
        description=(
            "End the claims on the given GPUs whoever holds them, as an admin on the host would. Each holder "
            "gets a DM naming you, delivered by the running service. Needs --force."
        ),
    )
    release.add_argument(
        "gpu", help="GPU index, MIG slice (0.2), list (0,2 or 1,0.2) or range of cards (0-3); HOST:GPU in a fleet"
    )
    release.add_argument("--force", action="store_true", help="confirm: release even though it is someone else's")
    usage = commands.add_parser(
        "usage",
        help="GPU-hours held and busy over a period, by person, purpose, host or GPU (--csv, --json)",
        description=(
            "Show the fleet's GPU usage over the last days: GPU-hours held, observed and busy, idle while held, by "
            "person (default), purpose, host or GPU; optionally for one person (@name or a member ID), host or GPU "
            "model. As a table, or --csv for a spreadsheet, --json for a script. Needs no Slack."
        ),
    )
    usage.add_argument("scope", nargs="*", help="team (default), @name, a member ID, a host or a GPU model")
    usage.add_argument("--since", default="30d", metavar="Nd", help="how many days back (default 30d)")
    usage.add_argument("--by", choices=("user", "purpose", "host", "gpu"), default="user")
    formats = usage.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="print CSV with a header row")
    formats.add_argument("--json", action="store_true", help="print a JSON array")
    digest = commands.add_parser(
        "digest",
        help="the weekly usage digest: when it goes out, or (--now) post one at once",
        description=(
            "Say where and when the weekly digest goes (GPUBOT_DIGEST_CHANNEL, GPUBOT_DIGEST_AT), or with --now "
            "post a digest of the last seven days to that channel at once, as the service would (needs the bot "
            "token, and the bot in the channel)."
        ),
    )
    digest.add_argument("--now", action="store_true", help="post a digest of the last seven days now")
    commands.add_parser(
        "demo",
        help="watch gpubot at work with a pretend Slack and pretend GPUs (no setup needed)",
        description=(
            "Run the real bot against gpubot's Slack stand-in and fake GPUs, play a short scripted session "
            "(two people, a claim, a refusal, a release, an expiry warning and an expiry) and print what "
            "each person sees. Needs no Slack workspace, no GPU and no settings; takes about 20 seconds."
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gpubot` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "agent": _agent,
        "db": _db,
        "doctor": _doctor,
        "status": _status,
        "realtime": _realtime,
        "claims": _claims,
        "release": _release,
        "usage": _usage,
        "digest": _digest,
        "demo": _demo,
    }
    try:
        return commands[args.command](args)
    except GpubotError as error:
        print(f"gpubot: {error_text(error)}", file=sys.stderr)
        return EX_CONFIG if isinstance(error, (ConfigError, SetupError)) else 1
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level, secrets=(settings.slack_bot_token, settings.slack_app_token))
    from gpubot.daemon import serve as daemon  # Imported late: the host-only commands need no Slack libraries.

    return daemon.run(settings)


def _agent(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ, require_tokens=False)
    configure_logging(settings.log_level)
    from gpubot.daemon import agent  # Imported late, as serve is.

    return agent.run(settings)


def _db(args: argparse.Namespace) -> int:
    return _db_copy(args) if args.db_command == "copy" else _db_upgrade(args)


def _db_copy(args: argparse.Namespace) -> int:
    from gpubot.host.db_copy import copy_to

    print(f"gpubot: {copy_to(_host_settings(), args.to)}")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host_environment(os.environ).env, require_tokens=False)
    configure_logging(settings.log_level)
    from gpubot.storage.db_errors import location
    from gpubot.storage.engine import make_engine
    from gpubot.storage.migrate import upgrade_to_head

    engine = make_engine(settings.database_url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    print(f"gpubot: database at {location(engine)} is up to date")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    # Only warnings: the report is the output. The filter still scrubs any token from them.
    configure_logging(logging.WARNING)
    from gpubot.host import doctor

    results = doctor.run_checks(host_environment(os.environ).env, user=args.user)
    print(doctor.render(results))
    return 0 if doctor.all_passed(results) else 1


def _host_settings() -> Settings:
    """The service's settings (see `host_environment`); says on stderr which database they name."""
    from gpubot.storage.db_errors import location
    from gpubot.storage.engine import parse_database_url

    host = host_environment(os.environ)
    settings = Settings.from_env(host.env, require_tokens=False)
    configure_logging(max(settings.log_level, logging.WARNING))
    source = f"settings from {host.env_file}" if host.env_file is not None else "no env file"
    print(f"gpubot: database {location(parse_database_url(settings.database_url))} ({source})", file=sys.stderr)
    return settings


def _note(note: str | None) -> None:
    if note is not None:
        print(f"gpubot: {note}", file=sys.stderr)


def _status(args: argparse.Namespace) -> int:
    from gpubot.host.session import open_host
    from gpubot.host.terminal import render_fleet_status

    settings = _host_settings()
    with open_host(settings, missing_ok=True) as host:
        _note(host.note)
        fleet = host.service.fleet(host.sample)
        names = host.people.names(claim.user_id for claim in _held(fleet))
        print(render_fleet_status(fleet, args.host, settings.timezone, names))
    return 0


def _realtime(args: argparse.Namespace) -> int:
    from gpubot.host.session import open_host
    from gpubot.host.terminal import render_fleet_realtime

    settings = _host_settings()
    with open_host(settings, missing_ok=True) as host:
        _note(host.note)
        fleet = host.service.fleet(host.sample)
        names = host.people.names(claim.user_id for claim in _held(fleet))
        print(render_fleet_realtime(fleet, args.host, settings.load_thresholds, settings.timezone, names))
    return 0


def _claims(args: argparse.Namespace) -> int:
    from gpubot.host.session import open_host
    from gpubot.host.terminal import claims_json, render_claims

    settings = _host_settings()
    with open_host(settings, missing_ok=True) as host:
        _note(host.note)
        fleet = host.service.fleet(host.sample)
        active = _held(fleet)
        names = host.people.names(claim.user_id for claim in active)
        print(
            claims_json(active, fleet.now, names)
            if args.json
            else render_claims(active, fleet.now, settings.timezone, names, fleet.several)
        )
    return 0


def _held(fleet: Fleet) -> list[Claim]:
    """Every claim the fleet's GPUs are held by, host by host."""
    return [row.claim for dashboard in fleet.hosts for row in dashboard.rows if row.claim is not None]


def _release(args: argparse.Namespace) -> int:
    from gpubot.core.fleet import address
    from gpubot.core.selection import parse_gpu_selection
    from gpubot.host.session import host_actor, open_host
    from gpubot.host.terminal import person

    if not args.force:
        print(
            "gpubot: this ends the claim whoever holds it, and tells them by DM; add --force to do it",
            file=sys.stderr,
        )
        return EX_USAGE
    selection = parse_gpu_selection(args.gpu, allow_any=False)
    settings = _host_settings()
    with open_host(settings) as host:
        outcome = host.service.release(host_actor(), selection, as_admin=True)
        names = host.people.names(claim.user_id for claim in outcome.forced)
    for claim in outcome.forced:
        print(
            f"released GPU {address(claim.label, claim.host, outcome.several_hosts)}, held by"
            f" {person(claim.user_id, names)}; "
            "they will get a DM saying so (sent by the running service)"
        )
    if not outcome.forced:
        print("nothing to release: those claims had already ended")
    return 0


def _usage(args: argparse.Namespace) -> int:
    from gpubot.core.commands import parse_usage
    from gpubot.core.usage_report import UsageReports
    from gpubot.host.session import open_host
    from gpubot.host.usage_table import UsageFormat, render_usage

    words = [*args.scope, args.since] if args.scope else ["team", args.since]
    command = parse_usage(words)
    settings = _host_settings()
    with open_host(settings, missing_ok=True) as host:
        _note(host.note)
        store = host.store
        reports = UsageReports(
            store, store, store.list_gpus, host.clock, settings.timezone, settings.admins, settings.usage_visibility
        )
        view = reports.report(None, command, per_gpu=args.by in ("gpu", "host"))
        names = host.people.names(person.user_id for person in view.report.people)
    output: UsageFormat = "csv" if args.csv else "json" if args.json else "table"
    print(render_usage(view, args.by, output, names))
    return 0


def _digest(args: argparse.Namespace) -> int:
    host = host_environment(os.environ)
    settings = Settings.from_env(host.env, require_tokens=args.now)
    configure_logging(max(settings.log_level, logging.WARNING))
    if settings.digest_channel is None:
        print("gpubot: no weekly digest: set GPUBOT_DIGEST_CHANNEL to a channel ID to have one", file=sys.stderr)
        return EX_CONFIG if args.now else 0
    if not args.now:
        print(f"gpubot: the weekly digest goes to {settings.digest_channel} {settings.digest_schedule.describe()}")
        return 0
    import asyncio

    from gpubot.daemon.digest_job import post_digest_now

    ts = asyncio.run(post_digest_now(settings))
    if ts is None:
        print("gpubot: the digest was not posted (see the lines above)", file=sys.stderr)
        return 1
    print(f"gpubot: posted the digest of the last seven days to {settings.digest_channel} (message {ts})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gpubot.demo import tour as demo

    return demo.run(sys.stdout, os.environ)
