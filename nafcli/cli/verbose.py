"""``--verbose``: one line on stderr about how an image was run (device, tile grid, time)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..pipeline import RunInfo


def describe_run(info: RunInfo) -> str:
    """``cpu fp32, 3x4 tiles of 512 px (overlap 16, batch 1), 12.3 s`` or ``..., whole image, ...``."""
    if info.tile_size == 0:
        tiling = "whole image"
    else:
        rows, cols = info.grid
        th, tw = info.tile_shape
        tiling = f"{rows}x{cols} tiles of {tw}x{th} px (overlap {info.overlap}, batch {info.batch_size})"
    return f"{info.device} {info.precision}, {tiling}, {info.seconds:.1f} s"


def print_run(name: str, info: RunInfo) -> None:
    print(f"{name}: {describe_run(info)}", file=sys.stderr, flush=True)


def verbose_work(work, restorer):  # noqa: ANN001, ANN201 - wraps a batch job function
    """After each job, one stderr line on how it ran (device, tile grid, time)."""

    def wrapped(job, events):  # noqa: ANN001, ANN202
        outcome = work(job, events)
        print_run(" + ".join(str(p) for p in job.inputs), restorer.last_run)
        return outcome

    return wrapped
