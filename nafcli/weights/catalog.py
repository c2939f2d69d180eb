"""The registry as a table: each model with what the user wants to know, downloaded or not (``models list``)."""

from __future__ import annotations

from typing import Any

from .hub import present_file
from .registry import load_registry


def catalog() -> list[dict[str, Any]]:
    """One row per registry model: id, task, architecture, size, the authors' scores, default, whether
    and where it is cached, and where it comes from. Reads no weights (and no torch)."""
    rows = []
    for e in load_registry():
        path = present_file(e)
        rows.append({
            "id": e.id, "task": e.task, "arch": e.arch, "params": e.params, "size": e.size, "psnr": e.psnr,
            "ssim": e.ssim, "benchmark": e.benchmark, "default": e.default, "downloaded": path is not None,
            "path": str(path) if path else None, "source": e.where,
        })
    return rows
