"""Parse the text after `/gpu` into a command. Pure: no Slack, no state."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from gpubot.core.durations import is_duration, looks_like_duration, parse_duration
from gpubot.core.errors import CommandError, InvalidPurpose, quote

PURPOSE_MAX_CHARS = 200
# A selection is a handful of GPUs; this stops `0-99999999` from building a huge tuple.
_MAX_SELECTED = 256
# ASCII digits only (`isdigit()` and `int()` take `²`, `١` and `１`), and few enough that `int()` never refuses.
_INDEX = re.compile(r"[0-9]{1,9}", re.ASCII)
_RANGE = re.compile(r"([0-9]{1,9})-([0-9]{1,9})", re.ASCII)
# Characters that show nothing: format characters (zero-width space, ZWJ, BOM, soft hyphen), separators,
# controls, and the letters and symbols that render blank.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


@dataclass(frozen=True)
class GpuSelection:
    """Which GPUs a command names: explicit indices, or the first free one."""

    indices: tuple[int, ...] = ()
    any_free: bool = False

    def describe(self) -> str:
        return "any" if self.any_free else ",".join(str(i) for i in self.indices)


@dataclass(frozen=True)
class StatusCommand:
    """`/gpu` or `/gpu status`: the allocation dashboard."""


@dataclass(frozen=True)
class HelpCommand:
    """`/gpu help`: every command with an example."""


@dataclass(frozen=True)
class RealtimeCommand:
    """`/gpu realtime`: live telemetry per GPU."""


@dataclass(frozen=True)
class ClaimCommand:
    selection: GpuSelection
    purpose: str
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
    selection: GpuSelection
    duration: timedelta


Command = (
    StatusCommand | HelpCommand | RealtimeCommand | ClaimCommand | ClaimDialogCommand | ReleaseCommand | ExtendCommand
)


@dataclass(frozen=True)
class Usage:
    """One subcommand's syntax, what it does, and an example."""

    syntax: str
    summary: str
    example: str


USAGES: dict[str, Usage] = {
    "status": Usage("/gpu status", "every GPU, who holds it, for what and until when", "/gpu"),
    "claim": Usage(
        "/gpu claim <gpu> <purpose> [duration]",
        "claim GPUs: one index, a list `0,2`, a range `0-3` or `any`; with nothing after it, a form opens",
        "/gpu claim 0,2 fine-tune llama 3h",
    ),
    "release": Usage("/gpu release <gpu>|all", "release your claims", "/gpu release 0"),
    "extend": Usage("/gpu extend <gpu> <duration>", "push your claim's end later", "/gpu extend 0 1h"),
    "realtime": Usage("/gpu realtime", "live load, temperature, memory, power and processes", "/gpu realtime"),
    "help": Usage("/gpu help", "this list", "/gpu help"),
}


def parse_command(text: str) -> Command:
    """Parse what a person typed after `/gpu`.

    Raises:
        CommandError: unknown subcommand or malformed arguments; its `usage` holds the right syntax.
    """
    words = text.split()
    if not words:
        return StatusCommand()
    verb, args = words[0].lower(), words[1:]
    if verb in ("status", "list", "ls"):
        return StatusCommand()
    if verb in ("help", "-h", "--help"):
        return HelpCommand()
    if verb in ("realtime", "rt", "top"):
        return RealtimeCommand()
    if verb == "claim":
        return _parse_claim(args)
    if verb == "release":
        return _parse_release(args)
    if verb == "extend":
        return _parse_extend(args)
    raise CommandError(f"I don't know {quote(words[0])}.", usage=_all_syntax())


def _parse_claim(args: list[str]) -> ClaimCommand | ClaimDialogCommand:
    syntax = USAGES["claim"].syntax
    if not args:
        return ClaimDialogCommand()
    selection = parse_gpu_selection(args[0], allow_any=True, syntax=syntax)
    rest, duration = _split_duration(args[1:], syntax)
    purpose = validate_purpose(" ".join(rest), syntax)
    return ClaimCommand(selection=selection, purpose=purpose, duration=duration)


def _split_duration(words: list[str], syntax: str) -> tuple[list[str], timedelta | None]:
    """Take the duration off the end of a claim's words: the last two (`1h 30m`, `2 hours`) or the last one.

    Words at the end that look like a duration but are not a valid one are refused rather than guessed at:
    `90`, `-1h` or `1e9h` taken into the purpose would give a claim of the default length without a word.
    """
    for count in (2, 1):
        tail = " ".join(words[-count:])
        if len(words) >= count and is_duration(tail):
            if len(words) == count:
                raise CommandError("Say what the GPU is for, before the duration.", usage=syntax)
            return words[:-count], _parse_duration_arg(tail, syntax)
    for count in (1, 2):
        tail = " ".join(words[-count:])
        if len(words) >= count and looks_like_duration(tail):
            if not any(character.isalpha() for character in tail):
                raise CommandError(
                    f"{quote(tail)} at the end has no unit. If it is the duration, add one, e.g. `90m`;"
                    " if it belongs to the purpose, put the duration after it, e.g. `/gpu claim 0 train 3 2h`.",
                    usage=syntax,
                )
            _parse_duration_arg(tail, syntax)  # not a valid duration, so this raises with the accepted forms
    return words, None


def _parse_release(args: list[str]) -> ReleaseCommand:
    syntax = USAGES["release"].syntax
    if len(args) != 1:
        raise CommandError("Say which GPU to release, or `all`.", usage=syntax)
    if args[0].lower() == "all":
        return ReleaseCommand(selection=None)
    return ReleaseCommand(selection=parse_gpu_selection(args[0], allow_any=False, syntax=syntax))


def _parse_extend(args: list[str]) -> ExtendCommand:
    syntax = USAGES["extend"].syntax
    if len(args) < 2:
        raise CommandError("Say which GPU to extend and by how long.", usage=syntax)
    selection = parse_gpu_selection(args[0], allow_any=False, syntax=syntax)
    # Everything after the GPU is the duration, so `1h 30m` and `2 hours` work as in a claim.
    return ExtendCommand(selection=selection, duration=_parse_duration_arg(" ".join(args[1:]), syntax))


def parse_gpu_selection(text: str, *, allow_any: bool, syntax: str) -> GpuSelection:
    """Parse `3`, `0,2`, `0-3`, `0,4-5` or (where allowed) `any`.

    Raises:
        CommandError: the text names no GPU in a form we understand.
    """
    if text.lower() == "any":
        if not allow_any:
            raise CommandError("`any` only works with claim; name the GPU index.", usage=syntax)
        return GpuSelection(any_free=True)
    indices: list[int] = []
    for part in text.split(","):
        if _INDEX.fullmatch(part):
            indices.append(int(part))
            continue
        match = _RANGE.fullmatch(part)
        if not match:
            raise CommandError(
                f"{quote(text)} is not a GPU: use an index `0`, a list `0,2`, a range `0-3`"
                + (" or `any`." if allow_any else "."),
                usage=syntax,
            )
        first, last = int(match[1]), int(match[2])
        if first > last:
            raise CommandError(f"The range {quote(part)} runs backwards; write `{last}-{first}`.", usage=syntax)
        if last - first >= _MAX_SELECTED:
            raise CommandError(f"The range {quote(part)} names too many GPUs.", usage=syntax)
        indices.extend(range(first, last + 1))
    unique = tuple(dict.fromkeys(indices))
    if len(unique) > _MAX_SELECTED:
        raise CommandError("That names too many GPUs.", usage=syntax)
    return GpuSelection(indices=unique)


def validate_purpose(text: str, syntax: str) -> str:
    """Check a claim's purpose: present, visible, and within the length cap.

    Raises:
        InvalidPurpose: the purpose is empty, shows nothing (only zero-width or blank characters), or is too long.
    """
    purpose = " ".join(text.split())
    if all(_invisible(character) for character in purpose):
        raise InvalidPurpose("Say what the GPU is for, e.g. `fine-tune llama`.", usage=syntax)
    if len(purpose) > PURPOSE_MAX_CHARS:
        raise InvalidPurpose(
            f"The purpose is {len(purpose)} characters long; keep it within {PURPOSE_MAX_CHARS}.",
            usage=syntax,
        )
    return purpose


def _invisible(character: str) -> bool:
    return character in _BLANK_CHARACTERS or unicodedata.category(character) in _INVISIBLE_CATEGORIES


def _parse_duration_arg(text: str, syntax: str) -> timedelta:
    try:
        return parse_duration(text)
    except CommandError as error:
        raise CommandError(error.message, usage=syntax) from None


def _all_syntax() -> str:
    return "\n".join(usage.syntax for usage in USAGES.values())
