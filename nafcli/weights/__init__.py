"""Weights: checkpoint files, the ``weights.toml`` registry, the Hugging Face hub, and the one loader.

:func:`load` is the only way the rest of nafcli gets a model. It is imported lazily (it needs torch), so
that reading the registry (``nafcli models list``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loader import load

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from .loader import load

        return load
    raise AttributeError(f"module 'nafcli.weights' has no attribute {name!r}")
