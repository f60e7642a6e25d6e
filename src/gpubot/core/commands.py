"""Parse the text after the slash command into a command. Pure: no Slack, no state.

The parser knows the words of each subcommand; how their syntax is written out for people is the
renderers' business. A `CommandError` names the subcommand (`usage`) whose syntax would help.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from gpubot.core.durations import is_duration, looks_like_duration, parse_duration
from gpubot.core.errors import CommandError, quote
from gpubot.core.policy import Purpose, check_purpose
from gpubot.core.selection import GpuSelection, check_host_name, parse_gpu_selection

# The subcommands, in the order help lists them.
SUBCOMMANDS = ("status", "claim", "release", "extend", "realtime", "usage", "help")

# The periods `/gpu usage` reads back over: a whole number of days, at most about a year (the rollups' retention).
USAGE_DEFAULT_DAYS = 7
USAGE_MAX_DAYS = 366
_USAGE_PERIOD = re.compile(r"(\d{1,4})d", re.IGNORECASE)
# A mention as Slack writes it when it escapes one (`<@U123>` or `<@U123|alice>`).
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass(frozen=True)
class StatusCommand:
    """`/gpu`, `/gpu status` or `/gpu status HOST`: the allocation dashboard of the fleet, or of one host in full."""

    host: str | None = None


@dataclass(frozen=True)
class HelpCommand:
    """`/gpu help`: every command with an example."""


@dataclass(frozen=True)
class RealtimeCommand:
    """`/gpu realtime [HOST]`: live telemetry per GPU, of the fleet or of one host."""

    host: str | None = None


@dataclass(frozen=True)
class ClaimCommand:
    """`/gpu claim <gpus> <duration> <purpose>`; no duration means the policy's default."""

    selection: GpuSelection
    purpose: Purpose
    duration: timedelta | None


@dataclass(frozen=True)
class ClaimDialogCommand:
    """`/gpu claim` with nothing after it: open the claim form."""


@dataclass(frozen=True)
class ReleaseCommand:
    """Release the named GPUs, or every claim the caller holds when `selection` is None."""

    selection: GpuSelection | None


@dataclass(frozen=True)
class ExtendCommand:
    """`/gpu extend <gpus> <duration>`: push the end of the caller's claims back by `duration`."""

    selection: GpuSelection
    duration: timedelta


@dataclass(frozen=True)
class UsageScope:
    """Whose or what usage to show.

    `me`, a `person` (a user ID, or a display name to look up), the `team`, or a `name` that is a host or a GPU
    model (the service tells which, since the parser knows neither).
    """

    kind: Literal["me", "person", "team", "name"]
    value: str | None = None


@dataclass(frozen=True)
class UsageCommand:
    """`/gpu usage [me|@someone|team|HOST|MODEL] [Nd]`: GPU-hours held and busy over the last `days` days."""

    scope: UsageScope = UsageScope("me")
    days: int = USAGE_DEFAULT_DAYS


Command = (
    StatusCommand
    | HelpCommand
    | RealtimeCommand
    | ClaimCommand
    | ClaimDialogCommand
    | ReleaseCommand
    | ExtendCommand
    | UsageCommand
)


def parse_command(text: str) -> Command:
    """Parse what a person typed after `/gpu`.

    Raises:
        CommandError: unknown subcommand (`usage`: every subcommand) or malformed arguments (`usage`: the
            subcommand).
    """
    words = text.split()
    if not words:
        return StatusCommand()
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "-h", "--help"):
        return HelpCommand()
    parsers: dict[str, Callable[[list[str]], Command]] = {
        "status": _parse_status,
        "list": _parse_status,
        "ls": _parse_status,
        "realtime": _parse_realtime,
        "rt": _parse_realtime,
        "top": _parse_realtime,
        "claim": _parse_claim,
        "release": _parse_release,
        "extend": _parse_extend,
        "usage": parse_usage,
    }
    if verb not in parsers:
        raise CommandError(f"I don't know {quote(words[0])}.", usage=SUBCOMMANDS)
    try:
        return parsers[verb](args)
    except CommandError as error:
        # The rules below (selection, duration, purpose) know no subcommand; the reply shows this one's syntax.
        error.usage = (_CANONICAL.get(verb, verb),)
        raise


# The subcommand whose syntax an error shows, for the short forms.
_CANONICAL = {"list": "status", "ls": "status", "rt": "realtime", "top": "realtime"}


def _one_host(args: list[str]) -> str | None:
    if len(args) > 1:
        raise CommandError("Name one host, or none for the whole fleet.")
    return check_host_name(args[0]) if args else None


def _parse_status(args: list[str]) -> StatusCommand:
    return StatusCommand(_one_host(args))


def _parse_realtime(args: list[str]) -> RealtimeCommand:
    return RealtimeCommand(_one_host(args))


def _parse_claim(args: list[str]) -> ClaimCommand | ClaimDialogCommand:
    if not args:
        return ClaimDialogCommand()
    selection = parse_gpu_selection(args[0], allow_any=True)
    rest, duration = _split_duration(args[1:])
    return ClaimCommand(selection=selection, purpose=check_purpose(" ".join(rest)), duration=duration)


def _split_duration(words: list[str]) -> tuple[list[str], timedelta | None]:
    """Take the duration off the end of a claim's words: the last two (`1h 30m`, `2 hours`) or the last one.

    Words at the end that look like a duration but are not a valid one are refused rather than guessed at:
    `90`, `-1h` or `1e9h` taken into the purpose would give a claim of the default length without a word.
    """
    for count in (2, 1):
        tail = " ".join(words[-count:])
        if len(words) >= count and is_duration(tail):
            if len(words) == count:
                raise CommandError("Say what the GPU is for, before the duration.")
            return words[:-count], parse_duration(tail)
    for count in (1, 2):
        tail = " ".join(words[-count:])
        if len(words) >= count and looks_like_duration(tail):
            if not any(character.isalpha() for character in tail):
                raise CommandError(
                    f"{quote(tail)} at the end has no unit. If it is the duration, add one, e.g. `90m`;"
                    " if it belongs to the purpose, put the duration after it, e.g. `train 3 2h`."
                )
            parse_duration(tail)  # not a valid duration, so this raises with the accepted forms
    return words, None


def _parse_release(args: list[str]) -> ReleaseCommand:
    if len(args) != 1:
        raise CommandError("Say which GPU to release, or `all`.")
    if args[0].lower() == "all":
        return ReleaseCommand(selection=None)
    return ReleaseCommand(selection=parse_gpu_selection(args[0], allow_any=False))


def _parse_extend(args: list[str]) -> ExtendCommand:
    if len(args) < 2:
        raise CommandError("Say which GPU to extend and by how long.")
    selection = parse_gpu_selection(args[0], allow_any=False)
    # Everything after the GPU is the duration, so `1h 30m` and `2 hours` work as in a claim.
    return ExtendCommand(selection=selection, duration=parse_duration(" ".join(args[1:])))


def parse_usage(args: list[str]) -> UsageCommand:
    """The words after `usage`, in any order: at most one period (`30d`) and at most one scope.

    Raises:
        CommandError: a period out of range, two periods, or two scopes.
    """
    days: int | None = None
    scope_words: list[str] = []
    for word in args:
        period = _USAGE_PERIOD.fullmatch(word)
        if period is None:
            scope_words.append(word)
            continue
        if days is not None:
            raise CommandError("Give one period, e.g. `30d`.")
        days = int(period.group(1))
        if not 1 <= days <= USAGE_MAX_DAYS:
            raise CommandError(f"The period is a number of days from 1 to {USAGE_MAX_DAYS}, e.g. `30d`.")
    return UsageCommand(_usage_scope(scope_words), USAGE_DEFAULT_DAYS if days is None else days)


def _usage_scope(words: list[str]) -> UsageScope:
    if not words:
        return UsageScope("me")
    text = " ".join(words)
    mention = _MENTION.fullmatch(text)
    if mention is not None:
        return UsageScope("person", mention.group(1))
    if text.startswith("@"):
        if len(words) > 1 or len(text) == 1:
            raise CommandError("Name one person, e.g. `@alice`.")
        return UsageScope("person", text[1:])
    if len(words) == 1 and text.lower() in ("me", "team"):
        return UsageScope("me" if text.lower() == "me" else "team")
    if any(word.lower() in ("me", "team") or word.startswith("@") for word in words):
        raise CommandError("Ask for one of: `me`, `@someone`, `team`, a host or a GPU model.")
    # A host is one word; a GPU model may be several (`H100 80GB`).
    if len(text) > 100:
        raise CommandError("That is too long for a host or a GPU model.")
    return UsageScope("name", text)
