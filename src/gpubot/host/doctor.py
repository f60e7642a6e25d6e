"""`gpubot doctor`: is this host ready to run gpubot? One line per check, and a fix for every failure.

The checks run in order and a check that depends on a failed one is skipped rather than failed again:
Python, settings, database, telemetry, this host's name in the fleet and the other hosts' last reports,
the bot token and its scopes, the app token (a real Socket Mode connection), then the Home and Messages
tabs. Nothing is created or changed, apart from what the tab
checks must do to be honest: they publish a one-line Home view to a person (the running daemon
replaces it when they open the tab) and send them one DM.
"""

from __future__ import annotations

import asyncio
import enum
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gpubot.core.clock import Clock
from gpubot.core.durations import format_duration
from gpubot.core.errors import (
    CheckFailed,
    ConfigError,
    GpubotError,
    NoDatabase,
    StoreUnavailable,
    TelemetryError,
)
from gpubot.core.models import HostReport, ProcessIdentity
from gpubot.settings import Settings
from gpubot.slack.doctor_checks import SlackProbe
from gpubot.slack.manifest import BOT_SCOPES
from gpubot.storage.claim_store import SqlClaimStore
from gpubot.storage.engine import make_engine
from gpubot.storage.fleet_store import pid_alive, this_process
from gpubot.storage.preflight import probe_database
from gpubot.system_clock import SystemClock
from gpubot.telemetry import open_configured
from gpubot.telemetry.process_owner import PROC_ROOT, namespaces

MIN_PYTHON = (3, 10)


class Outcome(str, enum.Enum):
    """How a check ended; the value is the mark printed before it."""

    PASSED = "✓"
    FAILED = "✗"
    SKIPPED = "·"
    # It works, but not entirely as it should: said, with its fix, without failing the report.
    WARNED = "!"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, what was found, and how to fix it when it failed."""

    name: str
    outcome: Outcome
    detail: str
    fix: str | None = None


def run_checks(
    env: Mapping[str, str],
    *,
    user: str | None = None,
    python: Sequence[int] = tuple(sys.version_info[:3]),
    slack_timeout_s: float = 10.0,
    proc_root: Path = PROC_ROOT,
    clock: Clock | None = None,
    process: ProcessIdentity | None = None,
    is_alive: Callable[[int], bool] = pid_alive,
) -> list[CheckResult]:
    """Run every check against the installation `env` describes.

    Args:
        env: The environment gpubot would run with (`os.environ`).
        user: The Slack user ID the tab checks publish to and DM; default the first of GPUBOT_ADMINS.
        python: The running interpreter's version.
        slack_timeout_s: How long each Slack call may take.
        proc_root: Where procfs is mounted, to see whether process owners can be read (a tree in tests).
        clock: The wall clock, to tell how long ago hosts reported (a fake one in tests).
        process: This process as the fleet's registry knows processes (another machine's, in tests).
        is_alive: Whether a PID of this machine runs.

    Returns:
        The results, in the order the checks ran.
    """
    results = [_check_python(python)]
    settings, partial = _parse_settings(env, results)
    if partial is None:
        for name in ("database", "telemetry"):
            results.append(CheckResult(name, Outcome.SKIPPED, "not checked until the settings parse"))
        results.append(_check_process_owners(None, proc_root))
        for name in ("host name", "fleet"):
            results.append(CheckResult(name, Outcome.SKIPPED, "not checked until the settings parse"))
        for name in ("bot token", "app token", "Home tab", "Messages tab"):
            results.append(CheckResult(name, Outcome.SKIPPED, "not checked until the settings parse"))
        return results
    database = _check_database(partial)
    telemetry, host_name = _check_telemetry(partial)
    results.extend([database, telemetry, _check_process_owners(partial.gpu_backend, proc_root)])
    fleet = Fleet(clock or SystemClock(), process or this_process(), is_alive)
    results.extend(_check_fleet(partial, host_name, database.outcome is Outcome.PASSED, fleet))
    if settings is None:
        for name in ("bot token", "app token", "Home tab", "Messages tab"):
            results.append(CheckResult(name, Outcome.SKIPPED, "not checked without both Slack tokens"))
        return results
    results.extend(asyncio.run(_check_slack(settings, user, slack_timeout_s)))
    return results


def render(results: Sequence[CheckResult]) -> str:
    """The report: a line per check, each failure followed by its fix, then a summary line."""
    lines = []
    for result in results:
        lines.append(f"{result.outcome.value} {result.name}: {result.detail}")
        if result.fix:
            lines.append(f"    fix: {result.fix}")
    failed = sum(1 for result in results if result.outcome is Outcome.FAILED)
    warned = sum(1 for result in results if result.outcome is Outcome.WARNED)
    if failed:
        lines.append(f"{failed} of {len(results)} checks failed.")
    elif warned:
        lines.append(f"All {len(results)} checks passed, {warned} with a warning: gpubot is ready.")
    else:
        lines.append(f"All {len(results)} checks passed: gpubot is ready.")
    return "\n".join(lines)


def all_passed(results: Sequence[CheckResult]) -> bool:
    """True when every check ran and passed, if only with a warning."""
    return all(result.outcome in (Outcome.PASSED, Outcome.WARNED) for result in results)


def _check_python(version: Sequence[int]) -> CheckResult:
    shown = ".".join(str(part) for part in version)
    needed = ".".join(str(part) for part in MIN_PYTHON)
    if tuple(version[:2]) >= MIN_PYTHON:
        return CheckResult("Python", Outcome.PASSED, f"{shown} ({needed} or newer needed)")
    return CheckResult(
        "Python",
        Outcome.FAILED,
        f"{shown} is too old",
        f"install gpubot into a virtual environment made with Python {needed} or newer",
    )


def _parse_settings(env: Mapping[str, str], results: list[CheckResult]) -> tuple[Settings | None, Settings | None]:
    """Parse the settings twice if need be: without the tokens, the database and GPUs can still be checked."""
    fix = "set it in /etc/gpubot/gpubot.env (or the environment); the README's Settings table lists every setting"
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        results.append(CheckResult("settings", Outcome.FAILED, f"{error.variable}: expected {error.expected}", fix))
        try:
            return None, Settings.from_env(env, require_tokens=False)
        except ConfigError:
            return None, None
    admins = len(settings.admins)
    results.append(
        CheckResult(
            "settings",
            Outcome.PASSED,
            f"GPU backend {settings.gpu_backend}, {admins} admin{'' if admins == 1 else 's'}, "
            f"time zone {settings.timezone.key}",
        )
    )
    return settings, settings


def _check_database(settings: Settings) -> CheckResult:
    try:
        probe = probe_database(settings.database_url)
    except ConfigError as error:
        return CheckResult("database", Outcome.FAILED, f"{error.variable}: expected {error.expected}")
    except NoDatabase as error:
        fix = "start the service (it creates the database), or run `gpubot db upgrade` as the service's user"
        return CheckResult("database", Outcome.FAILED, error.message, fix)
    except StoreUnavailable as error:
        fix = (
            "check GPUBOT_DATABASE_URL, that the database server is up, and that the service's user may "
            "write the database (for SQLite: the file and its directory)"
        )
        return CheckResult("database", Outcome.FAILED, error.message, fix)
    if not probe.at_head:
        return CheckResult(
            "database",
            Outcome.FAILED,
            f"{probe.location} is at schema {probe.revision or 'none (empty)'}, this gpubot needs {probe.head}",
            "run `gpubot db upgrade` as the service's user (or restart the service: it migrates on start)",
        )
    return CheckResult("database", Outcome.PASSED, f"{probe.location}: reachable, writable, schema {probe.head}")


def _check_telemetry(settings: Settings) -> tuple[CheckResult, str | None]:
    """The telemetry check, and the host's name as its sample gives it (None when it cannot sample)."""
    if settings.gpu_backend == "none":
        detail = "none: this host has no GPUs (GPUBOT_GPU_BACKEND=none); it only answers Slack for the fleet"
        return CheckResult("telemetry", Outcome.PASSED, detail), None
    fix = (
        "check that `nvidia-smi` works as the service's user, or choose another GPUBOT_GPU_BACKEND "
        "(nvml, nvidia-smi, fake)"
    )
    try:
        telemetry = open_configured(settings)
        try:
            sample = telemetry.sample()
        finally:
            telemetry.close()
    except TelemetryError as error:
        return CheckResult("telemetry", Outcome.FAILED, error.message, fix), None
    driver = f"driver {sample.driver_version}" if sample.driver_version else "driver n/a"
    count = len(sample.gpus)
    found = f"{telemetry.backend_name} sees {count} GPU{'' if count == 1 else 's'} on {sample.hostname} ({driver})"
    if not sample.gpus:
        return CheckResult("telemetry", Outcome.FAILED, found, fix), sample.hostname
    lost = sum(1 for gpu in sample.gpus if gpu.lost)
    if lost:
        found += f"; {lost} not responding"
    return CheckResult("telemetry", Outcome.PASSED, found), sample.hostname


@dataclass(frozen=True)
class Fleet:
    """What the fleet checks judge by: the time now, this process, and whether a PID of this machine runs."""

    clock: Clock
    process: ProcessIdentity
    is_alive: Callable[[int], bool]


def _check_fleet(settings: Settings, host_name: str | None, database_ok: bool, fleet: Fleet) -> list[CheckResult]:
    if not database_ok:
        reason = "not checked until the database passes"
        return [CheckResult("host name", Outcome.SKIPPED, reason), CheckResult("fleet", Outcome.SKIPPED, reason)]
    engine = make_engine(settings.database_url)
    try:
        hosts = SqlClaimStore(engine).hosts()
    except GpubotError as error:
        failed = CheckResult("host name", Outcome.FAILED, f"cannot read the fleet's hosts: {error}")
        return [failed, CheckResult("fleet", Outcome.SKIPPED, "not checked until the hosts can be read")]
    finally:
        engine.dispose()
    now = fleet.clock.now()
    others = [host for host in hosts if host.name != host_name]
    if settings.gpu_backend == "none":
        mine = CheckResult("host name", Outcome.PASSED, "none: a host without GPUs registers no host name")
    elif host_name is None:
        mine = CheckResult("host name", Outcome.SKIPPED, "not checked until the telemetry names the host")
    else:
        held = next((host for host in hosts if host.name == host_name), None)
        mine = _check_host_name(host_name, held, settings, now, fleet)
    return [mine, _check_other_hosts(others, settings, now)]


def _check_host_name(
    name: str, held: HostReport | None, settings: Settings, now: datetime, fleet: Fleet
) -> CheckResult:
    check = "host name"
    if held is None:
        return CheckResult(check, Outcome.PASSED, f"{name}: not in the database yet (the service registers it)")
    ago = _ago(held, now)
    if held.holder is None:
        return CheckResult(check, Outcome.PASSED, f"{name}: free, its last process stopped cleanly ({ago})")
    if not held.online(now, settings.host_timeout):
        detail = f"{name}: held by {held.holder}, silent for longer than {format_duration(settings.host_timeout)}"
        return CheckResult(check, Outcome.PASSED, f"{detail} ({ago}): the next start takes it over")
    if held.holder.same_boot(fleet.process):
        if fleet.is_alive(held.holder.pid):
            return CheckResult(check, Outcome.PASSED, f"{name}: reported for by {held.holder}, this machine ({ago})")
        detail = f"{name}: held by {held.holder}, this machine, whose process is gone: the next start takes it"
        return CheckResult(check, Outcome.PASSED, detail)
    return CheckResult(
        check,
        Outcome.FAILED,
        f"{name} is held by {held.holder}, another live gpubot ({ago}): two machines would mix their GPUs",
        "give this machine a name of its own: GPUBOT_HOST_NAME=… in /etc/gpubot/gpubot.env, then restart gpubot",
    )


def _check_other_hosts(others: Sequence[HostReport], settings: Settings, now: datetime) -> CheckResult:
    if not others:
        return CheckResult("fleet", Outcome.PASSED, "no other host reports to this database")
    described, offline = [], []
    for host in others:
        if host.online(now, settings.host_timeout):
            described.append(f"{host.name} ({host.role.value}, {_ago(host, now)})")
            continue
        since = "ever" if host.last_report_at is None else _local(host.last_report_at, settings)
        described.append(f"{host.name} ({host.role.value}, offline since {since})")
        offline.append(host.name)
    detail = f"{len(others)} other host{'' if len(others) == 1 else 's'}: " + ", ".join(described)
    if not offline:
        return CheckResult("fleet", Outcome.PASSED, detail)
    fix = f"check gpubot on {', '.join(offline)} (systemctl status gpubot-agent, or gpubot); their claims stay"
    return CheckResult("fleet", Outcome.WARNED, detail, fix)


def _local(at: datetime, settings: Settings) -> str:
    return f"{at.astimezone(settings.timezone):%Y-%m-%d %H:%M %Z}"


def _ago(host: HostReport, now: datetime) -> str:
    if host.last_report_at is None:
        return "no report yet"
    return f"last report {format_duration(now - host.last_report_at)} ago"


def _check_process_owners(backend: str | None, proc_root: Path) -> CheckResult:
    name = "process owners"
    if backend == "fake":
        return CheckResult(name, Outcome.PASSED, "not read from /proc: the fake backend names them itself")
    seen = namespaces(proc_root)
    if seen.finding:
        return CheckResult(name, Outcome.WARNED, seen.finding, seen.remedy)
    if seen.host_pids is None:
        return CheckResult(
            name,
            Outcome.WARNED,
            f"cannot tell whether gpubot shares the host's PID namespace ({proc_root}/self/ns/pid is unreadable); "
            "owners shown may be wrong if it does not",
            seen.remedy,
        )
    return CheckResult(name, Outcome.PASSED, "read from /proc in the host's PID namespace")


async def _check_slack(settings: Settings, user: str | None, timeout_s: float) -> list[CheckResult]:
    probe = SlackProbe(settings.slack_api_url, timeout_s=timeout_s)
    results: list[CheckResult] = []
    bot_ok = False
    try:
        identity = await probe.bot_token(settings.slack_bot_token)
    except CheckFailed as failure:
        results.append(CheckResult("bot token", Outcome.FAILED, failure.message, failure.fix))
    else:
        if identity.missing_scopes:
            results.append(
                CheckResult(
                    "bot token",
                    Outcome.FAILED,
                    f"valid, but lacks the scope{'s' if len(identity.missing_scopes) > 1 else ''} "
                    + ", ".join(identity.missing_scopes),
                    "add the bot scopes under OAuth & Permissions (or re-create the app from manifest.yml), "
                    "then reinstall the app to the workspace",
                )
            )
        else:
            extra = (
                f" (also {', '.join(identity.extra_scopes)}, more than gpubot needs)" if identity.extra_scopes else ""
            )
            results.append(
                CheckResult(
                    "bot token",
                    Outcome.PASSED,
                    f"bot {identity.bot_user_id} in {identity.team}, scopes {', '.join(BOT_SCOPES)}{extra}",
                )
            )
            bot_ok = True
    try:
        await probe.socket_mode(settings.slack_app_token)
    except CheckFailed as failure:
        results.append(CheckResult("app token", Outcome.FAILED, failure.message, failure.fix))
    else:
        results.append(CheckResult("app token", Outcome.PASSED, "opened a Socket Mode connection; Slack said hello"))
    results.extend(await _check_tabs(probe, settings, user, bot_ok))
    return results


async def _check_tabs(probe: SlackProbe, settings: Settings, user: str | None, bot_ok: bool) -> list[CheckResult]:
    if not bot_ok:
        reason = "not checked until the bot token passes"
        return [CheckResult("Home tab", Outcome.SKIPPED, reason), CheckResult("Messages tab", Outcome.SKIPPED, reason)]
    person = user or (sorted(settings.admins)[0] if settings.admins else None)
    if person is None:
        fix = (
            "run `gpubot doctor --user U…` with your Slack member ID (profile → ⋮ → Copy member ID), "
            "or list yourself in GPUBOT_ADMINS"
        )
        return [
            CheckResult("Home tab", Outcome.FAILED, "no one to check it with", fix),
            CheckResult("Messages tab", Outcome.FAILED, "no one to check it with", fix),
        ]
    results = []
    try:
        await probe.home_tab(settings.slack_bot_token, person)
    except CheckFailed as failure:
        results.append(CheckResult("Home tab", Outcome.FAILED, failure.message, failure.fix))
    else:
        results.append(CheckResult("Home tab", Outcome.PASSED, f"published a view to {person}"))
    try:
        await probe.messages_tab(settings.slack_bot_token, person)
    except CheckFailed as failure:
        results.append(CheckResult("Messages tab", Outcome.FAILED, failure.message, failure.fix))
    else:
        results.append(
            CheckResult("Messages tab", Outcome.PASSED, f"sent {person} a DM; it is in gpubot's Messages tab")
        )
    return results
