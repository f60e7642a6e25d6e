"""Which GPUs a request names, and the rules for writing that down: `3`, `0,2`, `0-3`, `0,4-5`, `any`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpubot.core.errors import CommandError, quote

# A selection is a handful of GPUs; this stops `0-99999999` from building a huge tuple.
_MAX_SELECTED = 256
# ASCII digits only (`isdigit()` and `int()` take `²`, `١` and `１`), and few enough that `int()` never refuses.
_INDEX = re.compile(r"[0-9]{1,9}", re.ASCII)
_RANGE = re.compile(r"([0-9]{1,9})-([0-9]{1,9})", re.ASCII)


@dataclass(frozen=True)
class GpuSelection:
    """Which GPUs a command names: explicit indices, or the first free one."""

    indices: tuple[int, ...] = ()
    any_free: bool = False


def parse_gpu_selection(text: str, *, allow_any: bool) -> GpuSelection:
    """Parse `3`, `0,2`, `0-3`, `0,4-5` or (where allowed) `any`.

    Raises:
        CommandError: the text names no GPU in a form we understand.
    """
    if text.lower() == "any":
        if not allow_any:
            raise CommandError("`any` only works with claim; name the GPU index.")
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
                + (" or `any`." if allow_any else ".")
            )
        first, last = int(match[1]), int(match[2])
        if first > last:
            raise CommandError(f"The range {quote(part)} runs backwards; write `{last}-{first}`.")
        if last - first >= _MAX_SELECTED:
            raise CommandError(f"The range {quote(part)} names too many GPUs.")
        indices.extend(range(first, last + 1))
    unique = tuple(dict.fromkeys(indices))
    if len(unique) > _MAX_SELECTED:
        raise CommandError("That names too many GPUs.")
    return GpuSelection(indices=unique)
