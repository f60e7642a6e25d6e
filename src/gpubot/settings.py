"""Settings: the only place that reads the environment, once, into a frozen `Settings`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gpubot.core.digest import DigestSchedule
from gpubot.core.durations import parse_duration
from gpubot.core.errors import CommandError, ConfigError
from gpubot.core.load import LoadThresholds
from gpubot.core.policy import ClaimPolicy
from gpubot.core.usage import UsageRule
from gpubot.core.usage_report import VISIBILITIES, Visibility

GPU_BACKENDS = ("auto", "nvml", "nvidia-smi", "fake", "none")
# Where the installed service (systemd/gpubot.service) takes its settings and keeps its state; the host
# commands read the same (GPUBOT_ENV_FILE and GPUBOT_SERVICE_STATE_DIR override both, for tests).
SERVICE_ENV_FILE = Path("/etc/gpubot/gpubot.env")
SERVICE_STATE_DIR = Path("/var/lib/gpubot")
# Settings that say where the database is; when the shell and the env file set none, host commands use
# the service's state directory.
_DATABASE_LOCATORS = ("GPUBOT_DATABASE_URL", "GPUBOT_STATE_DIR", "STATE_DIRECTORY")
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
# A host name as people type it in `HOST:0`: a hostname's letters, digits, dots, hyphens and underscores.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class Settings:
    """Everything `gpubot serve` is configured with. Tokens are kept out of `repr` so they never reach a log."""

    slack_bot_token: str = field(repr=False)
    slack_app_token: str = field(repr=False)
    slack_api_url: str
    database_url: str = field(repr=False)
    state_dir: Path
    gpu_backend: str
    fake_gpus_path: Path | None
    nvidia_smi: str
    min_duration: timedelta
    max_duration: timedelta
    default_duration: timedelta
    duration_choices: tuple[timedelta, ...]
    warn_before: timedelta
    admins: frozenset[str]
    timezone: ZoneInfo
    log_level: int
    telemetry_interval: timedelta
    load_thresholds: LoadThresholds
    # GPUBOT_HOST_NAME: the name this host has in the fleet; None: the machine's short hostname, as the
    # telemetry backend names it (the fake backend's file may name one).
    host_name: str | None
    # A host silent for longer than this is offline, and another process may take its name.
    host_timeout: timedelta
    # Set by systemd for Type=notify units (see systemd_notify.py); None when not run by systemd.
    notify_socket: str | None
    # WatchdogSec= as passed in $WATCHDOG_USEC (for this process only); None without a watchdog.
    watchdog_interval: timedelta | None
    # Who sees other people's and the team's usage figures: "team" (everyone) or "admins".
    usage_visibility: Visibility
    # How long each GPU's hourly usage is kept.
    usage_retention: timedelta
    # Where the weekly digest goes (a channel ID); None: no digest. When: GPUBOT_DIGEST_AT in the team's zone.
    digest_channel: str | None
    digest_schedule: DigestSchedule

    def claim_policy(self) -> ClaimPolicy:
        """The claim rules these settings describe (the daemon and the host CLI share them)."""
        return ClaimPolicy(
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            default_duration=self.default_duration,
            warn_before=self.warn_before,
            admins=self.admins,
            duration_choices=self.duration_choices,
            load=self.load_thresholds,
        )

    def usage_rule(self) -> UsageRule:
        """How each host's samples are counted into the usage record."""
        return UsageRule(self.telemetry_interval, self.load_thresholds.active_pct, self.usage_retention)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, require_tokens: bool = True) -> Settings:
        """Read and validate every setting.

        Args:
            env: the environment (`os.environ` in production, a dict in tests). The Slack tokens are
                read from the files `slack-bot-token` and `slack-app-token` in `$CREDENTIALS_DIRECTORY`
                (systemd's `LoadCredential=`) when present there, else from the variables.
            require_tokens: False for host-only commands that never talk to Slack.

        Raises:
            ConfigError: a setting is missing or malformed; it names the variable and what it expects.
        """
        reader = _EnvReader(env)
        state_dir = reader.state_dir()
        min_duration = reader.duration("GPUBOT_MIN_DURATION", "30m")
        max_duration = reader.duration("GPUBOT_MAX_DURATION", "12h")
        if min_duration > max_duration:
            raise ConfigError("GPUBOT_MIN_DURATION", "a duration no longer than GPUBOT_MAX_DURATION")
        default_duration = reader.duration("GPUBOT_DEFAULT_DURATION", "2h")
        if not min_duration <= default_duration <= max_duration:
            raise ConfigError(
                "GPUBOT_DEFAULT_DURATION", "a duration between GPUBOT_MIN_DURATION and GPUBOT_MAX_DURATION"
            )
        backend = reader.choice("GPUBOT_GPU_BACKEND", GPU_BACKENDS, "auto")
        fake_path = reader.optional_path("GPUBOT_FAKE_GPUS")
        if backend == "fake" and fake_path is None:
            raise ConfigError("GPUBOT_FAKE_GPUS", "the path of a JSON file of fake GPUs (GPUBOT_GPU_BACKEND=fake)")
        telemetry_interval = reader.duration("GPUBOT_TELEMETRY_INTERVAL", "2s")
        host_timeout = reader.duration("GPUBOT_HOST_TIMEOUT", "30s")
        # A report a little late must not make a host look offline, nor let another process take its name. A
        # long interval set before there were fleets stretches the default instead of stopping the service.
        if host_timeout < 2 * telemetry_interval:
            if reader.text("GPUBOT_HOST_TIMEOUT") is not None:
                raise ConfigError("GPUBOT_HOST_TIMEOUT", "a duration at least twice GPUBOT_TELEMETRY_INTERVAL")
            host_timeout = 2 * telemetry_interval
        timezone = reader.timezone()
        usage_retention = reader.duration("GPUBOT_USAGE_RETENTION", "365d")
        if usage_retention < timedelta(days=1):
            raise ConfigError("GPUBOT_USAGE_RETENTION", "a duration of at least a day, such as 365d")
        active_pct = reader.percent("GPUBOT_ACTIVE_PCT", 10)
        high_load_pct = reader.percent("GPUBOT_HIGH_LOAD_PCT", 80)
        if active_pct > high_load_pct:
            raise ConfigError("GPUBOT_ACTIVE_PCT", "a percentage no higher than GPUBOT_HIGH_LOAD_PCT")
        return cls(
            slack_bot_token=reader.token("SLACK_BOT_TOKEN", "xoxb-", require_tokens, credential="slack-bot-token"),
            slack_app_token=reader.token("SLACK_APP_TOKEN", "xapp-", require_tokens, credential="slack-app-token"),
            slack_api_url=reader.api_url(),
            database_url=reader.text("GPUBOT_DATABASE_URL") or f"sqlite:///{state_dir / 'gpubot.db'}",
            state_dir=state_dir,
            gpu_backend=backend,
            fake_gpus_path=fake_path,
            nvidia_smi=reader.text("GPUBOT_NVIDIA_SMI") or "nvidia-smi",
            min_duration=min_duration,
            max_duration=max_duration,
            default_duration=default_duration,
            duration_choices=reader.durations("GPUBOT_DURATION_CHOICES", "30m,1h,2h,4h,8h,12h"),
            warn_before=reader.duration("GPUBOT_WARN_BEFORE", "15m"),
            admins=reader.admins(),
            timezone=timezone,
            log_level=reader.log_level(),
            telemetry_interval=telemetry_interval,
            load_thresholds=LoadThresholds(active_pct=active_pct, high_load_pct=high_load_pct),
            host_name=reader.host_name(),
            host_timeout=host_timeout,
            notify_socket=reader.text("NOTIFY_SOCKET"),
            watchdog_interval=reader.watchdog_interval(),
            usage_visibility=_visibility(reader.choice("GPUBOT_USAGE_VISIBILITY", VISIBILITIES, "team")),
            usage_retention=usage_retention,
            digest_channel=reader.channel("GPUBOT_DIGEST_CHANNEL"),
            digest_schedule=DigestSchedule.parse(reader.text("GPUBOT_DIGEST_AT") or "mon 09:00", timezone),
        )


def _visibility(value: str) -> Visibility:
    return "admins" if value == "admins" else "team"


@dataclass(frozen=True)
class HostEnvironment:
    """The environment a host command runs with: the service's, as far as the command can know it.

    Attributes:
        env: the env file's settings, overridden by the shell's, plus the service's state directory.
        env_file: the env file read; None when there was none.
    """

    env: dict[str, str]
    env_file: Path | None


def host_environment(env: Mapping[str, str]) -> HostEnvironment:
    """What the host commands (`status`, `claims`, `release`, `realtime`, `doctor`, `db upgrade`) read.

    The service's settings come from its env file (GPUBOT_ENV_FILE, default /etc/gpubot/gpubot.env, as
    the unit's EnvironmentFile=); a variable set in the shell wins over the file. Where neither names the
    database (GPUBOT_DATABASE_URL, GPUBOT_STATE_DIR), the service's state directory
    (GPUBOT_SERVICE_STATE_DIR, default /var/lib/gpubot, the unit's StateDirectory=) is used when the env
    file or that directory exists, i.e. where the service is installed; elsewhere, as for `serve`,
    ~/.local/state/gpubot. So root typing `gpubot status` reads the database the service writes.

    Args:
        env: the shell's environment (`os.environ`).

    Raises:
        ConfigError: the env file exists but cannot be read, or a line of it is not VAR=value.
    """
    reader = _EnvReader(env)
    env_file = Path(reader.text("GPUBOT_ENV_FILE") or SERVICE_ENV_FILE)
    merged: dict[str, str] = {}
    loaded: Path | None = None
    if env_file.is_file():
        merged.update(read_env_file(env_file))
        loaded = env_file
    merged.update(env)
    if not any(merged.get(name, "").strip() for name in _DATABASE_LOCATORS):
        service_dir = Path(reader.text("GPUBOT_SERVICE_STATE_DIR") or SERVICE_STATE_DIR)
        if loaded is not None or service_dir.is_dir():
            merged["STATE_DIRECTORY"] = str(service_dir)
    return HostEnvironment(env=merged, env_file=loaded)


def read_env_file(path: Path) -> dict[str, str]:
    """Read a systemd `EnvironmentFile=`: VAR=value lines; blank lines and lines starting # or ; are skipped.

    A value wholly in single or double quotes loses them, as systemd does.

    Raises:
        ConfigError: the file cannot be read, or a line is not VAR=value.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError("GPUBOT_ENV_FILE", f"a readable UTF-8 file at {path} ({error})") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        name, equals, value = stripped.partition("=")
        name = name.strip()
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError("GPUBOT_ENV_FILE", f"VAR=value lines in {path} (line {number} is not)")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


class _EnvReader:
    """Turns raw environment strings into typed values, each failure naming its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def token(self, name: str, prefix: str, required: bool, credential: str) -> str:
        value, source = self.credential(credential), f"{name} (credential {credential})"
        if value is None:
            value, source = self.text(name), name
        if value is None:
            if required:
                raise ConfigError(name, f"required: a Slack token starting with {prefix}")
            return ""
        if not value.startswith(prefix):
            # Never echo the value: it may be a real token pasted into the wrong variable.
            raise ConfigError(source, f"a Slack token starting with {prefix}")
        return value

    def credential(self, name: str) -> str | None:
        """A systemd credential's content (`LoadCredential=`), or None when there is none by that name."""
        directory = self.text("CREDENTIALS_DIRECTORY")
        if directory is None:
            return None
        path = Path(directory) / name
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"credential {name}", f"a readable UTF-8 file at {path} ({error})") from None
        return value or None

    def watchdog_interval(self) -> timedelta | None:
        value = self.text("WATCHDOG_USEC")
        if value is None:
            return None
        # systemd names the process the watchdog is for; a child that inherited the variable is not it.
        pid = self.text("WATCHDOG_PID")
        if pid is not None and pid != str(os.getpid()):
            return None
        if not value.isdigit() or int(value) == 0:
            raise ConfigError("WATCHDOG_USEC", "a positive number of microseconds (set by systemd's WatchdogSec=)")
        return timedelta(microseconds=int(value))

    def api_url(self) -> str:
        value = self.text("GPUBOT_SLACK_API_URL") or "https://slack.com/api/"
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError("GPUBOT_SLACK_API_URL", "an http(s) URL such as https://slack.com/api/")
        # slack_sdk joins method names onto the base URL, which therefore must end with a slash.
        return value if value.endswith("/") else value + "/"

    def state_dir(self) -> Path:
        value = self.text("GPUBOT_STATE_DIR")
        if value is None:
            # systemd's StateDirectory= may list several directories separated by colons.
            systemd_dirs = self.text("STATE_DIRECTORY")
            if systemd_dirs:
                value = systemd_dirs.split(":")[0]
        if value is None:
            home = self.text("HOME") or str(Path.home())
            return Path(home) / ".local" / "state" / "gpubot"
        return Path(value).expanduser()

    def host_name(self) -> str | None:
        value = self.text("GPUBOT_HOST_NAME")
        if value is not None and not _HOST_NAME.fullmatch(value):
            raise ConfigError(
                "GPUBOT_HOST_NAME", "a host name of letters, digits, '.', '-' and '_' (at most 63), such as gpu-a"
            )
        return value

    def channel(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ConfigError(name, "a channel ID such as C0123ABCDEF (in Slack: the channel's details, at the bottom)")
        return value

    def optional_path(self, name: str) -> Path | None:
        value = self.text(name)
        return Path(value).expanduser() if value else None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in choices:
            raise ConfigError(name, "one of " + ", ".join(choices))
        return value

    def durations(self, name: str, default: str) -> tuple[timedelta, ...]:
        value = self.text(name) or default
        try:
            return tuple(parse_duration(part) for part in value.split(",") if part.strip())
        except CommandError:
            raise ConfigError(name, "comma-separated durations such as 30m,1h,2h") from None

    def duration(self, name: str, default: str) -> timedelta:
        value = self.text(name) or default
        try:
            return parse_duration(value)
        except CommandError:
            raise ConfigError(name, "a duration such as 30m, 2h or 1h30m") from None

    def percent(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value.rstrip("%"))
        except ValueError:
            raise ConfigError(name, "a whole percentage from 0 to 100") from None
        if not 0 <= number <= 100:
            raise ConfigError(name, "a whole percentage from 0 to 100")
        return number

    def admins(self) -> frozenset[str]:
        value = self.text("GPUBOT_ADMINS") or ""
        admins = frozenset(part.strip() for part in value.split(",") if part.strip())
        for admin in admins:
            if not _SLACK_USER_ID.fullmatch(admin):
                raise ConfigError("GPUBOT_ADMINS", "comma-separated Slack user IDs such as U012AB3CD")
        return admins

    def timezone(self) -> ZoneInfo:
        value = self.text("GPUBOT_TIMEZONE")
        if value is None:
            return _host_timezone(self.text("TZ"))
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("GPUBOT_TIMEZONE", "an IANA time zone such as Europe/Berlin") from None

    def log_level(self) -> int:
        value = (self.text("GPUBOT_LOG_LEVEL") or "INFO").upper()
        level = logging.getLevelName(value)
        if not isinstance(level, int):
            raise ConfigError("GPUBOT_LOG_LEVEL", "one of DEBUG, INFO, WARNING, ERROR")
        return level


def _host_timezone(tz_variable: str | None) -> ZoneInfo:
    """The host's own IANA zone: $TZ, else the /etc/localtime link, else /etc/timezone, else UTC."""
    candidates = [tz_variable.lstrip(":")] if tz_variable else []
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = os.readlink(localtime)
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    timezone_file = Path("/etc/timezone")
    if timezone_file.is_file():
        candidates.append(timezone_file.read_text().strip())
    for name in candidates:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")
