"""nafcli: image restoration with the NAFNet family (NAFNet, NAFNetLocal/TLC, NAFSSR).

The public API: :class:`Restorer` (a model on a device: ``restore`` numpy arrays or PIL images,
``restore_video`` video files), :func:`load` (the one way to get a model), and the workflows the command
line runs, :func:`restore_paths` and :func:`super_resolve`, with their option records.

The heavy parts (torch) are imported on first use, so ``import nafcli`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import NafcliError

__all__ = [
    "ModelChoice",
    "NafcliError",
    "OutputOptions",
    "Restorer",
    "RunSettings",
    "VideoOptions",
    "__version__",
    "detect",
    "load",
    "read_state_dict",
    "restore_paths",
    "super_resolve",
]

_LAZY = {
    "Restorer": "nafcli.inference.restorer",
    "load": "nafcli.weights.loader",
    "read_state_dict": "nafcli.weights.checkpoint",
    "detect": "nafcli.archs",
    "restore_paths": "nafcli.jobs.workflows",
    "super_resolve": "nafcli.jobs.workflows",
    "ModelChoice": "nafcli.jobs.workflows",
    "RunSettings": "nafcli.jobs.workflows",
    "OutputOptions": "nafcli.jobs.workflows",
    "VideoOptions": "nafcli.jobs.workflows",
}

if TYPE_CHECKING:
    from .archs import detect
    from .inference.restorer import Restorer
    from .jobs.workflows import (
        ModelChoice,
        OutputOptions,
        RunSettings,
        VideoOptions,
        restore_paths,
        super_resolve,
    )
    from .weights.checkpoint import read_state_dict
    from .weights.loader import load


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nafcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (PEP 562): tab completion and ``help(nafcli)`` list what :data:`__all__` names,
    loaded or not yet, and not this module's own imports (``Any``, ``import_module``, ...)."""
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
