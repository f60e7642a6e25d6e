"""Which GPUs a request names, and the rules for writing that down: `3`, `0.2`, `0,2`, `0-3`, `1,0.2`, `any`.

A MIG slice is named `CARD.SLICE` (`0.2`: slice 2 of card 0). Ranges name whole cards only (`0-3`):
slice numbers on a card need not be consecutive, so `0.1-0.3` is refused with a hint to list them.
In a fleet a GPU is named `HOST:SEL` (`box-2:0,2`); `2xany` asks for two free GPUs on any one host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpubot.core.errors import CommandError, quote
from gpubot.core.models import gpu_label

# A selection is a handful of GPUs; this stops `0-99999999` from building a huge tuple.
_MAX_SELECTED = 256
# ASCII digits only (`isdigit()` and `int()` take `²`, `١` and `１`), and few enough that `int()` never refuses.
_ADDRESS = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,9}))?", re.ASCII)
_RANGE = re.compile(r"([0-9]{1,9})-([0-9]{1,9})", re.ASCII)
_SLICE_RANGE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?-[0-9]{1,9}(?:\.[0-9]{1,9})?", re.ASCII)
# `any`, or `2xany`: that many free GPUs, all on one host.
_ANY = re.compile(r"(?:([0-9]{1,3})x)?any", re.ASCII | re.IGNORECASE)
# A host's short name as `hostname` gives it (letters, digits, `-`, `_`; dots for a name set by hand).
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", re.ASCII)


@dataclass(frozen=True)
class GpuSelection:
    """Which GPUs a command names: their labels (`3`, `0.2`), or the first free ones (`any`, `2xany`).

    `host` is the host it names (`box-2:0`), None when it names none: fine while the fleet has one host, and for
    `any`, which then looks on every host. `count` is how many GPUs `any` takes, all on one host.
    """

    labels: tuple[str, ...] = ()
    any_free: bool = False
    host: str | None = None
    count: int = 1


def parse_gpu_selection(text: str, *, allow_any: bool) -> GpuSelection:
    """Parse `3`, `0.2`, `0,2`, `0-3`, `0,4-5`, `1,0.2` or (where allowed) `any`, `2xany`; each may follow `HOST:`.

    Raises:
        CommandError: the text names no GPU in a form we understand.
    """
    host, colon, rest = text.partition(":")
    if not colon:
        return _parse_on_host(text, None, allow_any)
    if not HOST_NAME.fullmatch(host):
        raise CommandError(f"{quote(host)} is not a host name: write `HOST:GPU`, e.g. `box-2:0`.")
    if not rest:
        raise CommandError(f"Say which GPU of {quote(host)}, e.g. `{host}:0`.")
    return _parse_on_host(rest, host, allow_any)


def check_host_name(text: str) -> str:
    """`text` as a host name (`/gpu status box-2`).

    Raises:
        CommandError: it cannot be a host's name.
    """
    if not HOST_NAME.fullmatch(text):
        raise CommandError(f"{quote(text)} is not a host name.")
    return text


def _parse_on_host(text: str, host: str | None, allow_any: bool) -> GpuSelection:
    wanted = _ANY.fullmatch(text)
    if wanted:
        if not allow_any:
            raise CommandError("`any` only works with claim; name the GPU.")
        count = 1 if wanted[1] is None else int(wanted[1])
        if not 1 <= count <= _MAX_SELECTED:
            raise CommandError(f"{quote(text)} asks for {count} GPUs; ask for 1 to {_MAX_SELECTED}.")
        return GpuSelection(any_free=True, host=host, count=count)
    labels: list[str] = []
    for part in text.split(","):
        address = _ADDRESS.fullmatch(part)
        if address:
            # `00.02` and `0.2` name one slice: keep the form people read.
            labels.append(gpu_label(int(address[1]), None if address[2] is None else int(address[2])))
            continue
        match = _RANGE.fullmatch(part)
        if not match:
            if _SLICE_RANGE.fullmatch(part):
                raise CommandError(
                    f"The range {quote(part)} names MIG slices; ranges name whole cards (`0-3`),"
                    " so list slices one by one: `0.1,0.2`."
                )
            raise CommandError(
                f"{quote(text)} is not a GPU: use an index `0`, a MIG slice `0.1`, a list `0,2`, a range `0-3`"
                + (", `any` or `2xany`" if allow_any else "")
                + ", each after `HOST:` in a fleet (`box-2:0`)."
            )
        first, last = int(match[1]), int(match[2])
        if first > last:
            raise CommandError(f"The range {quote(part)} runs backwards; write `{last}-{first}`.")
        if last - first >= _MAX_SELECTED:
            raise CommandError(f"The range {quote(part)} names too many GPUs.")
        labels.extend(str(index) for index in range(first, last + 1))
    unique = tuple(dict.fromkeys(labels))
    if len(unique) > _MAX_SELECTED:
        raise CommandError("That names too many GPUs.")
    return GpuSelection(labels=unique, host=host)
