"""nafcli: image restoration with the NAFNet family (NAFNet, NAFNetLocal/TLC, NAFSSR).

The heavy parts (torch) are imported on first use, so ``import nafcli`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Restorer",
    "load_model",
    "read_state_dict",
    "detect",
    "NafcliError",
]

_LAZY = {
    "Restorer": ("nafcli.pipeline", "Restorer"),
    "load_model": ("nafcli.checkpoint", "load_model"),
    "read_state_dict": ("nafcli.checkpoint", "read_state_dict"),
    "detect": ("nafcli.checkpoint", "detect"),
}

from .errors import NafcliError  # noqa: E402  (no torch inside)

if TYPE_CHECKING:
    from .checkpoint import detect, load_model, read_state_dict
    from .pipeline import Restorer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nafcli' has no attribute {name!r}")
