"""Where nafcli keeps what it makes for itself on this machine (compiled kernels, measurements).

One place for the cache folder, at the bottom of the layers, because both the architectures (their native
CPU kernels, :mod:`nafcli.archs.native`) and the inference layer (``torch.compile``'s caches,
:mod:`nafcli.inference.compiled`) keep files there. The downloaded weights are not here: they live in the
Hugging Face cache, where the hub's own tools find them.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NAFCLI_CACHE_DIR"


def cache_root() -> Path:
    """nafcli's cache folder: ``NAFCLI_CACHE_DIR``, else ``$XDG_CACHE_HOME/nafcli`` (``~/.cache/nafcli``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "nafcli"
