"""The registry as a table: each model with what the user wants to know, downloaded or not (``models list``)."""

from __future__ import annotations

from typing import Any

from .hub import present_file
from .registry import load_registry


def catalog() -> list[dict[str, Any]]:
    """One row per registry model: id, task, architecture, size, the authors' scores, default, whether
    and where it is cached, where it comes from and how it is fetched (``download``: ``hub``, which
    ``nafcli models download`` and a first run fetch, or ``manual``: published only on the authors'
    page, to be fetched by hand and registered with ``nafcli models import``). Reads no weights (and no
    torch)."""
    rows = []
    for e in load_registry():
        path = present_file(e)
        rows.append({
            "id": e.id, "task": e.task, "arch": e.arch, "params": e.params, "size": e.size, "psnr": e.psnr,
            "ssim": e.ssim, "benchmark": e.benchmark, "default": e.default, "downloaded": path is not None,
            "path": str(path) if path else None, "source": e.where,
            "download": "hub" if e.on_hub else "manual",
        })
    return rows
