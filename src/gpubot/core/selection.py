"""Which GPUs a request names, and the rules for writing that down: `3`, `0.2`, `0,2`, `0-3`, `1,0.2`, `any`.

A MIG slice is named `CARD.SLICE` (`0.2`: slice 2 of card 0). Ranges name whole cards only (`0-3`):
slice numbers on a card need not be consecutive, so `0.1-0.3` is refused with a hint to list them.
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


@dataclass(frozen=True)
class GpuSelection:
    """Which GPUs a command names: their labels (`3`, `0.2`), or the first free one."""

    labels: tuple[str, ...] = ()
    any_free: bool = False


def parse_gpu_selection(text: str, *, allow_any: bool) -> GpuSelection:
    """Parse `3`, `0.2`, `0,2`, `0-3`, `0,4-5`, `1,0.2` or (where allowed) `any`.

    Raises:
        CommandError: the text names no GPU in a form we understand.
    """
    if text.lower() == "any":
        if not allow_any:
            raise CommandError("`any` only works with claim; name the GPU.")
        return GpuSelection(any_free=True)
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
                + (" or `any`." if allow_any else ".")
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
    return GpuSelection(labels=unique)
