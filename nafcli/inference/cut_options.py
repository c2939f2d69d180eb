"""The user's ``--tile``, ``--overlap`` and ``--batch-size``: parsed once and checked against the model's
tiling before any work (the CLI, the workflows, ``Restorer`` and bench all call these). Apart from
:mod:`.sizing`, which decides sizes at run time from free memory, because these are rules about what the
user may ask for.
"""

from __future__ import annotations

from ..archs import Strips, TilingMode
from ..errors import UsageError

#: context pixels per side of a tile when ``--overlap`` is not given (see :mod:`.sizing` for why 16)
DEFAULT_OVERLAP = 16


def parse_size(value: int | str | None, name: str, *, minimum: int = 0) -> int | None:
    """``auto`` -> None, ``N`` -> N (>= ``minimum``). Raises :class:`UsageError` naming the option otherwise.

    The one parser of ``--tile``, ``--overlap`` and ``--batch-size`` values (the CLI and the API both call it);
    ``--batch-size`` passes ``minimum=1``: a batch of no tiles cannot mean anything (``--tile 0`` does: the
    whole image).
    """
    if value is None:
        return None
    if isinstance(value, int):
        n = value
    else:
        text = value.strip().lower()
        if text == "auto":
            return None
        try:
            n = int(text)
        except ValueError:
            raise UsageError(f"{name} must be 'auto' or a whole number, not {value!r}") from None
    if n < minimum:
        raise UsageError(f"{name} must be >= {minimum}, not {n}")
    return n


def check_cut(mode: TilingMode, tile: int | None, overlap: int | None) -> None:
    """Refuse, before any work, a ``--tile`` that cannot hold its overlap, naming the values the user gave.

    2-D tiles: neighbouring tiles share ``2 x overlap`` context pixels plus an ``overlap``-wide cross-fade, so
    a tile must be larger than ``3 x overlap`` (checked on the tile as given: rounding it up to the model's
    size multiple only makes it larger). Strips: the overlap must be below the strip height (strips shorter
    than the mode's least height are raised to it, as :class:`TiledRunner` does). ``tile`` None (auto) or 0
    (the whole image) always works: auto tiles are sized to hold the overlap.
    """
    if not tile:
        return
    if isinstance(mode, Strips):
        if overlap is not None and overlap >= max(tile, mode.min_rows):
            raise UsageError(f"--overlap {overlap} must be smaller than the strip height --tile {tile}")
        return
    ov = DEFAULT_OVERLAP if overlap is None else overlap
    if tile <= 3 * ov:
        given = f"--overlap {ov}" if overlap is not None else f"the default --overlap {ov}"
        raise UsageError(
            f"--tile {tile} is too small for {given}: tiles must be larger than 3 x overlap ({3 * ov}), "
            f"so use --tile {3 * ov + 1} or more, --tile 0 for the whole image, or a smaller --overlap"
        )
